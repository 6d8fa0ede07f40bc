//! Charts drawn on the server as SVG with `plotters` (its SVG backend only),
//! placed inline in the page.
//!
//! Why inline, and why it passes the CSP: plotters writes presentation
//! attributes (`fill="#…"`, `stroke-width="1"`, `font-size="…"`), never a
//! `style` attribute or element, and no script; the Content-Security-Policy
//! (`style-src 'self'`, `script-src 'self'`) governs style attributes and
//! elements, not presentation attributes, so the markup is allowed as it is.
//! [`finish`] checks that this stays true (a `style=` or `<script` in the
//! output is an error, not a page). Inline, the chart's text and axes can
//! take the page's text colour: they are drawn in a marker colour that
//! [`finish`] replaces with `currentColor`, so the light and the dark theme
//! both read. (An `<img src>` of a separate route would have been isolated
//! from the page's CSP too, but could not follow the theme.)
//!
//! Text that comes from records (a rep's name in a legend) is escaped by
//! plotters' SVG writer; each chart is `role="img"` with a label, and the
//! page puts the same numbers in a table beside it for screen readers.

use plotters::coord::Shift;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::Error;

/// The marker colour of text, axes and grid; becomes `currentColor`.
const INK: RGBColor = RGBColor(1, 2, 3);
const INK_HEX: &str = "#010203";

/// Series colours, readable on the light and the dark background.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(76, 111, 255),
    RGBColor(224, 122, 46),
    RGBColor(42, 157, 143),
    RGBColor(181, 23, 158),
    RGBColor(138, 143, 152),
    RGBColor(196, 151, 20),
];

/// The drawing size (the SVG scales to its box; this sets the proportions
/// and the text size relative to it).
pub const WIDTH: u32 = 560;
pub const HEIGHT: u32 = 260;

/// One named series of values, one per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

fn chart_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Chart(e.to_string())
}

/// The label of category `x` (a tick position) or nothing between them.
fn category(categories: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    categories.get(i as usize).cloned().unwrap_or_default()
}

/// A y range that holds every value, zero included, with some headroom.
fn y_range(series: &[Series], fixed: Option<(f64, f64)>) -> (f64, f64) {
    if let Some(r) = fixed {
        return r;
    }
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in series.iter().flat_map(|s| &s.values) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi + (hi - lo) * 0.08)
}

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&INK)
}

/// Grouped vertical bars: one group per category, one bar per series.
pub fn bars(
    label: &str,
    categories: &[String],
    series: &[Series],
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_bars(&root, categories, series, y_fmt)?;
        root.present().map_err(chart_err)?;
    }
    finish(&svg, label)
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    categories: &[String],
    series: &[Series],
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<(), Error> {
    let mut chart = category_axes(root, categories, y_range(series, None), y_fmt)?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (si, s) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        chart
            .draw_series(s.values.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 - 0.4 + width * si as f64;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *v)], color.filled())
            }))
            .map_err(chart_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    legend(&mut chart, series.len(), SeriesLabelPosition::UpperRight)
}

/// The chart area both kinds share: the categories along x (one slot each,
/// centred on 0, 1, …), `lo..hi` up the y axis with its labels in `y_fmt`,
/// and the light horizontal grid.
fn category_axes<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    categories: &[String],
    (lo, hi): (f64, f64),
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<
    plotters::chart::ChartContext<
        'a,
        SVGBackend<'b>,
        plotters::coord::cartesian::Cartesian2d<
            plotters::coord::types::RangedCoordf64,
            plotters::coord::types::RangedCoordf64,
        >,
    >,
    Error,
> {
    let n = categories.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)
        .map_err(chart_err)?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .y_labels(5)
        .x_label_formatter(&|x| category(&cats, *x))
        .y_label_formatter(&|y| y_fmt(*y))
        .axis_style(INK)
        .bold_line_style(INK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .label_style(font(12))
        .draw()
        .map_err(chart_err)?;
    Ok(chart)
}

/// Lines with points: one line per series over the categories. `fixed`
/// pins the y range (a rate, a sentiment); a `None` value is a gap.
pub fn lines(
    label: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    fixed: Option<(f64, f64)>,
    y_fmt: &dyn Fn(f64) -> String,
) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let flat: Vec<Series> = series
            .iter()
            .map(|(name, v)| Series {
                name: name.clone(),
                values: v.iter().flatten().copied().collect(),
            })
            .collect();
        let n = categories.len().max(1);
        let (lo, hi) = y_range(&flat, fixed);
        let mut chart = category_axes(&root, categories, (lo, hi), y_fmt)?;
        if lo < 0.0 && hi > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                    INK.mix(0.5),
                ))
                .map_err(chart_err)?;
        }
        for (si, (name, values)) in series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            // Each run of known values is its own line: a gap stays a gap.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (i, v) in values.iter().enumerate() {
                match (v, runs.last_mut()) {
                    (Some(v), Some(run)) => run.push((i as f64, *v)),
                    _ => runs.push(Vec::new()),
                }
            }
            let points: Vec<(f64, f64)> = runs.iter().flatten().copied().collect();
            for run in runs.into_iter().filter(|r| r.len() > 1) {
                chart
                    .draw_series(LineSeries::new(run, color.stroke_width(2)))
                    .map_err(chart_err)?;
            }
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(chart_err)?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 5, y), 4, color.filled()));
        }
        // Lines of recent weeks and quarters tend to end high on the right.
        legend(&mut chart, series.len(), SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(chart_err)?;
    }
    finish(&svg, label)
}

type Plane = Cartesian2d<RangedCoordf64, RangedCoordf64>;

fn legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Plane>,
    series: usize,
    position: SeriesLabelPosition,
) -> Result<(), Error> {
    if series < 2 {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(position)
        .label_font(font(12))
        .border_style(INK.mix(0.2))
        .background_style(TRANSPARENT)
        .draw()
        .map_err(chart_err)
}

/// The SVG as the page embeds it: the marker colour becomes `currentColor`,
/// the fixed size gives way to the viewBox (CSS sizes it), and the root
/// says what it shows. Refuses output the CSP would block.
pub fn finish(svg: &str, label: &str) -> Result<String, Error> {
    if svg.contains("style=") || svg.contains("<style") || svg.contains("<script") {
        return Err(Error::Chart(
            "the chart's SVG holds style or script, which the CSP forbids".into(),
        ));
    }
    let head = format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" ");
    let Some(rest) = svg.strip_prefix(&head) else {
        return Err(Error::Chart("unexpected SVG header from plotters".into()));
    };
    let label = crate::render::escape(label);
    let body = rest.replace(INK_HEX, "currentColor");
    Ok(format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" focusable=\"false\" {body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_csp_clean_svg_in_the_page_colour() {
        let cats = vec!["Q1".to_owned(), "Q2".to_owned(), "Q3".to_owned()];
        let svg = bars(
            "Deals <by> stage",
            &cats,
            &[
                Series {
                    name: "<script>alert(1)</script>".into(),
                    values: vec![1.0, 5.0, 3.0],
                },
                Series {
                    name: "weighted".into(),
                    values: vec![0.5, 2.0, 1.0],
                },
            ],
            &|v| format!("{v:.0}"),
        )
        .expect("bars");
        assert!(svg.starts_with(
            "<svg class=\"chart\" role=\"img\" aria-label=\"Deals &lt;by&gt; stage\""
        ));
        assert!(!svg.contains("style="), "no style attributes: {svg}");
        assert!(!svg.contains("<script"), "names are escaped");
        assert!(
            svg.contains("&lt;script&gt;"),
            "the legend shows the name as text"
        );
        assert!(svg.contains("currentColor"));
        assert!(!svg.contains(INK_HEX));
        for q in ["Q1", "Q2", "Q3"] {
            assert!(svg.contains(q), "category {q} labelled");
        }
        let svg = lines(
            "Win rate",
            &cats,
            &[("win rate".into(), vec![Some(0.5), None, Some(0.25)])],
            Some((0.0, 1.0)),
            &|v| format!("{:.0}%", v * 100.0),
        )
        .expect("lines");
        assert!(svg.contains("<circle"), "points drawn");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn ticks_between_categories_have_no_label() {
        let cats = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(category(&cats, 1.0), "b");
        assert_eq!(category(&cats, 0.5), "");
        assert_eq!(category(&cats, 2.0), "");
        assert_eq!(category(&cats, -1.0), "");
    }
}
