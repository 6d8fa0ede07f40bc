//! The dashboard: the pipeline summary (count, value and weighted value per
//! stage), the weighted forecast by month, win rate and cycle time over the
//! last quarters, activity volume per rep per week, and the sentiment trend
//! of interactions. Each is a chart drawn on the server ([`crate::charts`])
//! with its numbers in a table beside it.
//!
//! The pipeline summary and the forecast are the tools' own answers
//! (`pipeline_summary`, `forecast`, called through the registry as the
//! signed-in user), so the page can never disagree with what the agent or
//! the API says. The other figures have no tool; they are computed here
//! from the records, read through the store's typed listings.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rapport_crm::filter::Direction;
use rapport_crm::{Filter, Id, ListQuery, Op, RecordMap, RecordType};
use rapport_tools::ErrorCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::charts::{self, Series};
use crate::error::WebError;
use crate::render::{Page, money};

/// Quarters of win rate and cycle time, the current one included.
pub const QUARTERS: usize = 4;
/// Weeks of activity volume and sentiment, the current one included.
pub const WEEKS: usize = 8;
/// Reps drawn in the activity chart (the table lists everyone).
const CHART_REPS: usize = 6;

/// One row of a figures table: the cells as shown, and the raw numbers in
/// `data-value` attributes for a check against the tools.
#[derive(Serialize)]
struct Cell {
    text: String,
    raw: String,
}

#[derive(Serialize)]
struct Row {
    label: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct Figure {
    id: &'static str,
    title: String,
    caption: String,
    svg: String,
    columns: Vec<String>,
    rows: Vec<Row>,
    foot: Option<Row>,
    empty: Option<String>,
}

fn cell(text: String, raw: f64) -> Cell {
    Cell {
        text,
        raw: format!("{raw}"),
    }
}

/// A row of a tool's grouped figures (a stage, a month): the group's name
/// under `label`, then its deal count, total value and weighted value.
fn value_row(group: &Value, label: &str) -> Row {
    Row {
        label: group
            .get(label)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        cells: vec![
            count_cell(int(group, "deals")),
            cell(money(num(group, "total_value")), num(group, "total_value")),
            cell(
                money(num(group, "weighted_value")),
                num(group, "weighted_value"),
            ),
        ],
    }
}

fn count_cell(n: u64) -> Cell {
    Cell {
        text: n.to_string(),
        raw: n.to_string(),
    }
}

/// `GET /dashboard`.
pub async fn page(State(state): State<WebState>, who: Signed) -> Result<Response, WebError> {
    let now = state.registry.services().now();
    let mut figures = Vec::new();
    figures.push(pipeline(&state, &who).await?);
    figures.push(forecast(&state, &who).await?);
    let closed = closed_deals(&state, &who, now).await?;
    figures.push(win_rate(&closed, now)?);
    let activities = recent_activities(&state, &who, now).await?;
    figures.push(activity_volume(&state, &who, &activities, now).await?);
    figures.push(sentiment(&activities, now)?);
    let mut page = Page::new("Dashboard", &who, "dashboard");
    page.insert("figures", &figures);
    Ok(page.render(&state, "dashboard.html")?.into_response())
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or_default()
}

fn int(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or_default()
}

fn short_money(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `pipeline_summary`: per stage, count, value, weighted value.
async fn pipeline(state: &WebState, who: &Signed) -> Result<Figure, WebError> {
    let mut fig = Figure {
        id: "pipeline",
        title: "Pipeline by stage".into(),
        caption: String::new(),
        svg: String::new(),
        columns: vec![
            "Stage".into(),
            "Deals".into(),
            "Value".into(),
            "Weighted value".into(),
        ],
        rows: Vec::new(),
        foot: None,
        empty: None,
    };
    let out = match state
        .registry
        .call(&state.store, &who.caller, "pipeline_summary", json!({}))
        .await
    {
        Ok(v) => v,
        Err(e) if e.code == ErrorCode::NotFound => {
            fig.empty = Some("There is no pipeline yet.".into());
            return Ok(fig);
        }
        Err(e) => return Err(e.into()),
    };
    let stages: Vec<Value> = out
        .get("stages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    fig.title = format!(
        "Pipeline by stage: {}",
        out.get("pipeline")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    fig.caption = "Every deal of the pipeline by its stage; weighted value is value × probability. The open totals are below the table.".into();
    for s in &stages {
        fig.rows.push(value_row(s, "name"));
    }
    fig.foot = Some(Row {
        label: "Open".into(),
        cells: vec![
            count_cell(int(&out, "open_deals")),
            cell(money(num(&out, "open_value")), num(&out, "open_value")),
            cell(
                money(num(&out, "open_weighted_value")),
                num(&out, "open_weighted_value"),
            ),
        ],
    });
    let cats: Vec<String> = fig.rows.iter().map(|r| r.label.clone()).collect();
    fig.svg = charts::bars(
        "Bar chart of value and weighted value per stage; the numbers are in the table",
        &cats,
        &[
            Series {
                name: "value".into(),
                values: stages.iter().map(|s| num(s, "total_value")).collect(),
            },
            Series {
                name: "weighted".into(),
                values: stages.iter().map(|s| num(s, "weighted_value")).collect(),
            },
        ],
        &short_money,
    )?;
    Ok(fig)
}

/// `forecast`: open deals by expected close month.
async fn forecast(state: &WebState, who: &Signed) -> Result<Figure, WebError> {
    let out = state
        .registry
        .call(&state.store, &who.caller, "forecast", json!({}))
        .await?;
    let months: Vec<Value> = out
        .get("months")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut fig = Figure {
        id: "forecast",
        title: "Weighted forecast by month".into(),
        caption: "Open deals by the month of their expected close date.".into(),
        svg: String::new(),
        columns: vec![
            "Month".into(),
            "Deals".into(),
            "Value".into(),
            "Weighted value".into(),
        ],
        rows: Vec::new(),
        foot: None,
        empty: None,
    };
    for m in &months {
        fig.rows.push(value_row(m, "month"));
    }
    if let Some(u) = out.get("unscheduled").filter(|u| int(u, "deals") > 0) {
        fig.foot = Some(Row {
            label: "No date".into(),
            cells: vec![
                count_cell(int(u, "deals")),
                cell(money(num(u, "total_value")), num(u, "total_value")),
                cell(money(num(u, "weighted_value")), num(u, "weighted_value")),
            ],
        });
    }
    if months.is_empty() {
        fig.empty = Some("No open deal has an expected close date.".into());
        return Ok(fig);
    }
    let cats: Vec<String> = fig.rows.iter().map(|r| r.label.clone()).collect();
    fig.svg = charts::bars(
        "Bar chart of the weighted forecast per month; the numbers are in the table",
        &cats,
        &[Series {
            name: "weighted".into(),
            values: months.iter().map(|m| num(m, "weighted_value")).collect(),
        }],
        &short_money,
    )?;
    Ok(fig)
}

/// Reads every row of a filtered listing, page by page.
async fn all(
    state: &WebState,
    who: &Signed,
    rt: RecordType,
    filter: Filter,
    sort: &str,
) -> Result<Vec<RecordMap>, WebError> {
    let ctx = who.ctx();
    let mut out = Vec::new();
    let mut q = ListQuery::filtered(filter)
        .sorted(sort, Direction::Asc)
        .limit(rapport_crm::filter::MAX_LIMIT);
    loop {
        let page = state.store.list_dyn(&ctx, rt, &q).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The first day of the quarter `back` quarters before the one of `d`.
pub fn quarter_start(d: NaiveDate, back: usize) -> NaiveDate {
    let q = (d.year() * 4 + (d.month0() / 3) as i32) - back as i32;
    NaiveDate::from_ymd_opt(q.div_euclid(4), (q.rem_euclid(4) * 3 + 1) as u32, 1).unwrap_or(d)
}

fn quarter_label(d: NaiveDate) -> String {
    format!("{} Q{}", d.year(), d.month0() / 3 + 1)
}

/// The Monday of the week `back` weeks before the one of `d`.
pub fn week_start(d: NaiveDate, back: usize) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64 + 7 * back as i64)
}

fn ts(r: &RecordMap, k: &str) -> Option<DateTime<Utc>> {
    r.get(k)
        .and_then(Value::as_str)
        .and_then(rapport_crm::schema::parse_timestamp)
}

async fn closed_deals(
    state: &WebState,
    who: &Signed,
    now: DateTime<Utc>,
) -> Result<Vec<RecordMap>, WebError> {
    let since = quarter_start(now.date_naive(), QUARTERS - 1);
    all(
        state,
        who,
        RecordType::Deal,
        Filter::and(vec![
            Filter::cond("status", Op::In, json!(["won", "lost"])),
            Filter::cond("closed_at", Op::Gte, json!(format!("{since}T00:00:00Z"))),
        ]),
        "closed_at",
    )
    .await
}

/// Win rate (won of closed) and cycle time (days from creation to close of
/// the won deals) per quarter of the close date.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QuarterStats {
    pub won: u64,
    pub lost: u64,
    pub cycle_days: Vec<f64>,
}

impl QuarterStats {
    pub fn win_rate(&self) -> Option<f64> {
        let n = self.won + self.lost;
        (n > 0).then(|| self.won as f64 / n as f64)
    }

    pub fn mean_cycle(&self) -> Option<f64> {
        (!self.cycle_days.is_empty())
            .then(|| self.cycle_days.iter().sum::<f64>() / self.cycle_days.len() as f64)
    }
}

/// Closed deals grouped into the last [`QUARTERS`] quarters, oldest first.
pub fn by_quarter(closed: &[RecordMap], now: DateTime<Utc>) -> Vec<(NaiveDate, QuarterStats)> {
    let today = now.date_naive();
    let mut out: Vec<(NaiveDate, QuarterStats)> = (0..QUARTERS)
        .rev()
        .map(|b| (quarter_start(today, b), QuarterStats::default()))
        .collect();
    for d in closed {
        let Some(at) = ts(d, "closed_at") else {
            continue;
        };
        let q = quarter_start(at.date_naive(), 0);
        let Some((_, stats)) = out.iter_mut().find(|(s, _)| *s == q) else {
            continue;
        };
        match d.get("status").and_then(Value::as_str) {
            Some("won") => {
                stats.won += 1;
                if let Some(created) = ts(d, "created_at") {
                    stats
                        .cycle_days
                        .push((at - created).num_seconds().max(0) as f64 / 86_400.0);
                }
            }
            Some("lost") => stats.lost += 1,
            _ => {}
        }
    }
    out
}

fn win_rate(closed: &[RecordMap], now: DateTime<Utc>) -> Result<Figure, WebError> {
    let quarters = by_quarter(closed, now);
    let cats: Vec<String> = quarters.iter().map(|(q, _)| quarter_label(*q)).collect();
    let mut fig = Figure {
        id: "win-rate",
        title: format!("Win rate and cycle time, last {QUARTERS} quarters"),
        caption: "Deals closed in each quarter: the share won, and the average days from creation to a win.".into(),
        svg: String::new(),
        columns: vec![
            "Quarter".into(),
            "Won".into(),
            "Lost".into(),
            "Win rate".into(),
            "Cycle time (days)".into(),
        ],
        rows: Vec::new(),
        foot: None,
        empty: None,
    };
    for ((_, s), label) in quarters.iter().zip(&cats) {
        let rate = s.win_rate();
        let cycle = s.mean_cycle();
        fig.rows.push(Row {
            label: label.clone(),
            cells: vec![
                count_cell(s.won),
                count_cell(s.lost),
                cell(
                    rate.map_or("—".into(), |r| format!("{:.0}%", r * 100.0)),
                    rate.unwrap_or(f64::NAN),
                ),
                cell(
                    cycle.map_or("—".into(), |c| format!("{c:.0}")),
                    cycle.unwrap_or(f64::NAN),
                ),
            ],
        });
    }
    if quarters.iter().all(|(_, s)| s.won + s.lost == 0) {
        fig.empty = Some(format!(
            "No deal was won or lost in the last {QUARTERS} quarters."
        ));
        return Ok(fig);
    }
    fig.svg = charts::lines(
        "Line chart of the win rate per quarter; the numbers, with cycle times, are in the table",
        &cats,
        &[(
            "win rate".into(),
            quarters.iter().map(|(_, s)| s.win_rate()).collect(),
        )],
        Some((0.0, 1.0)),
        &|v| format!("{:.0}%", v * 100.0),
    )?;
    Ok(fig)
}

async fn recent_activities(
    state: &WebState,
    who: &Signed,
    now: DateTime<Utc>,
) -> Result<Vec<RecordMap>, WebError> {
    let since = week_start(now.date_naive(), WEEKS - 1);
    all(
        state,
        who,
        RecordType::Activity,
        Filter::cond("occurred_at", Op::Gte, json!(format!("{since}T00:00:00Z"))),
        "occurred_at",
    )
    .await
}

/// The index of the week (of the last [`WEEKS`]) an activity falls in.
fn week_index(weeks: &[NaiveDate], r: &RecordMap) -> Option<usize> {
    let d = ts(r, "occurred_at")?.date_naive();
    let w = week_start(d, 0);
    weeks.iter().position(|s| *s == w)
}

fn week_labels(now: DateTime<Utc>) -> Vec<NaiveDate> {
    (0..WEEKS)
        .rev()
        .map(|b| week_start(now.date_naive(), b))
        .collect()
}

/// Activities per owner per week: owner → counts, oldest week first.
pub fn volume(activities: &[RecordMap], weeks: &[NaiveDate]) -> BTreeMap<Option<Id>, Vec<u64>> {
    let mut out: BTreeMap<Option<Id>, Vec<u64>> = BTreeMap::new();
    for a in activities {
        let Some(i) = week_index(weeks, a) else {
            continue;
        };
        let owner = a.get("owner_id").and_then(Value::as_i64);
        out.entry(owner).or_insert_with(|| vec![0; weeks.len()])[i] += 1;
    }
    out
}

async fn activity_volume(
    state: &WebState,
    who: &Signed,
    activities: &[RecordMap],
    now: DateTime<Utc>,
) -> Result<Figure, WebError> {
    let weeks = week_labels(now);
    let cats: Vec<String> = weeks
        .iter()
        .map(|w| w.format("%b %-d").to_string())
        .collect();
    let counts = volume(activities, &weeks);
    let names: BTreeMap<Id, String> = crate::tables::workspace_users(state, who)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let mut reps: Vec<(String, Vec<u64>)> = counts
        .into_iter()
        .map(|(owner, c)| {
            let name = owner
                .and_then(|o| names.get(&o).cloned())
                .unwrap_or_else(|| "No owner".into());
            (name, c)
        })
        .collect();
    // Busiest first; by name among equals, so the order is stable.
    reps.sort_by(|a, b| {
        b.1.iter()
            .sum::<u64>()
            .cmp(&a.1.iter().sum::<u64>())
            .then(a.0.cmp(&b.0))
    });
    let mut columns = vec!["Rep".to_owned()];
    columns.extend(cats.iter().cloned());
    columns.push("Total".into());
    let mut fig = Figure {
        id: "activity",
        title: format!("Activity per rep per week, last {WEEKS} weeks"),
        caption: "Emails, calls, meetings and notes by their owner and the week (Monday to Sunday, UTC; each column is the week's Monday) they happened in.".into(),
        svg: String::new(),
        columns,
        rows: reps
            .iter()
            .map(|(name, c)| {
                let mut cells: Vec<Cell> = c.iter().map(|n| count_cell(*n)).collect();
                cells.push(count_cell(c.iter().sum()));
                Row {
                    label: name.clone(),
                    cells,
                }
            })
            .collect(),
        foot: None,
        empty: None,
    };
    if reps.is_empty() {
        fig.empty = Some(format!("No activity in the last {WEEKS} weeks."));
        return Ok(fig);
    }
    let series: Vec<(String, Vec<Option<f64>>)> = reps
        .iter()
        .take(CHART_REPS)
        .map(|(name, c)| (name.clone(), c.iter().map(|n| Some(*n as f64)).collect()))
        .collect();
    let label = if reps.len() > CHART_REPS {
        format!(
            "Line chart of activities per week for the {CHART_REPS} busiest reps; every rep is in the table"
        )
    } else {
        "Line chart of activities per rep per week; the numbers are in the table".to_owned()
    };
    fig.svg = charts::lines(&label, &cats, &series, None, &|v| format!("{v:.0}"))?;
    Ok(fig)
}

/// Mean sentiment and the number of scored interactions per week.
pub fn sentiment_by_week(activities: &[RecordMap], weeks: &[NaiveDate]) -> Vec<(Option<f64>, u64)> {
    let mut sums = vec![(0.0f64, 0u64); weeks.len()];
    for a in activities {
        let (Some(i), Some(s)) = (
            week_index(weeks, a),
            a.get("sentiment").and_then(Value::as_f64),
        ) else {
            continue;
        };
        sums[i].0 += s;
        sums[i].1 += 1;
    }
    sums.into_iter()
        .map(|(sum, n)| ((n > 0).then(|| sum / n as f64), n))
        .collect()
}

fn sentiment(activities: &[RecordMap], now: DateTime<Utc>) -> Result<Figure, WebError> {
    let weeks = week_labels(now);
    let cats: Vec<String> = weeks
        .iter()
        .map(|w| w.format("%b %-d").to_string())
        .collect();
    let trend = sentiment_by_week(activities, &weeks);
    let mut fig = Figure {
        id: "sentiment",
        title: format!("Sentiment of interactions, last {WEEKS} weeks"),
        caption:
            "The mean sentiment (−1 negative to +1 positive) of the week's scored interactions."
                .into(),
        svg: String::new(),
        columns: vec![
            "Week".into(),
            "Scored interactions".into(),
            "Mean sentiment".into(),
        ],
        rows: weeks
            .iter()
            .zip(&trend)
            .map(|(w, (mean, n))| Row {
                label: format!("Week of {w}"),
                cells: vec![
                    count_cell(*n),
                    cell(
                        mean.map_or("—".into(), |m| format!("{m:+.2}")),
                        mean.unwrap_or(f64::NAN),
                    ),
                ],
            })
            .collect(),
        foot: None,
        empty: None,
    };
    if trend.iter().all(|(_, n)| *n == 0) {
        fig.empty = Some(format!(
            "No interaction of the last {WEEKS} weeks has a sentiment score yet."
        ));
        return Ok(fig);
    }
    fig.svg = charts::lines(
        "Line chart of the mean sentiment per week; the numbers are in the table",
        &cats,
        &[(
            "mean sentiment".into(),
            trend.iter().map(|(m, _)| *m).collect(),
        )],
        Some((-1.0, 1.0)),
        &|v| format!("{v:+.1}"),
    )?;
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn rec(v: Value) -> RecordMap {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn quarters_and_weeks_count_back_across_years() {
        assert_eq!(quarter_start(d("2026-12-07"), 0), d("2026-10-01"));
        assert_eq!(quarter_start(d("2026-12-07"), 3), d("2026-01-01"));
        assert_eq!(quarter_start(d("2026-02-10"), 1), d("2025-10-01"));
        assert_eq!(week_start(d("2026-12-07"), 0), d("2026-12-07"));
        assert_eq!(week_start(d("2026-12-09"), 1), d("2026-11-30"));
    }

    #[test]
    fn win_rate_and_cycle_time_per_quarter() {
        let now = rapport_crm::schema::parse_timestamp("2026-12-07T10:00:00Z").unwrap();
        let closed = vec![
            rec(
                json!({"status": "won", "closed_at": "2026-11-10T00:00:00Z", "created_at": "2026-11-01T00:00:00Z"}),
            ),
            rec(
                json!({"status": "won", "closed_at": "2026-10-20T00:00:00Z", "created_at": "2026-10-01T00:00:00Z"}),
            ),
            rec(
                json!({"status": "lost", "closed_at": "2026-10-02T00:00:00Z", "created_at": "2026-09-01T00:00:00Z"}),
            ),
            rec(
                json!({"status": "lost", "closed_at": "2026-05-02T00:00:00Z", "created_at": "2026-04-01T00:00:00Z"}),
            ),
            rec(
                json!({"status": "won", "closed_at": "2025-05-02T00:00:00Z", "created_at": "2025-04-01T00:00:00Z"}),
            ),
        ];
        let q = by_quarter(&closed, now);
        assert_eq!(q.len(), QUARTERS);
        assert_eq!(q[0].0, d("2026-01-01"));
        let last = &q[3].1;
        assert_eq!((last.won, last.lost), (2, 1));
        assert!((last.win_rate().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!((last.mean_cycle().unwrap() - 14.0).abs() < 1e-9);
        assert_eq!(q[1].1.win_rate(), Some(0.0));
        assert_eq!(q[0].1.win_rate(), None, "nothing closed then");
    }

    #[test]
    fn volume_and_sentiment_by_week() {
        let now = rapport_crm::schema::parse_timestamp("2026-12-09T10:00:00Z").unwrap();
        let weeks = week_labels(now);
        let acts = vec![
            rec(json!({"owner_id": 1, "occurred_at": "2026-12-08T10:00:00Z", "sentiment": 0.5})),
            rec(json!({"owner_id": 1, "occurred_at": "2026-12-07T00:00:00Z", "sentiment": -0.1})),
            rec(json!({"owner_id": 2, "occurred_at": "2026-12-06T23:00:00Z"})),
            rec(json!({"owner_id": 2, "occurred_at": "2026-01-01T00:00:00Z", "sentiment": 1.0})),
        ];
        let v = volume(&acts, &weeks);
        assert_eq!(v[&Some(1)][WEEKS - 1], 2);
        assert_eq!(
            v[&Some(2)][WEEKS - 2],
            1,
            "Sunday belongs to the week before"
        );
        assert_eq!(
            v[&Some(2)].iter().sum::<u64>(),
            1,
            "old activities fall out"
        );
        let s = sentiment_by_week(&acts, &weeks);
        assert_eq!(s[WEEKS - 1].1, 2);
        assert!((s[WEEKS - 1].0.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(s[WEEKS - 2], (None, 0));
    }
}
