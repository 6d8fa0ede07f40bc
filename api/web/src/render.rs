//! The templates and what they share: compiled once from files embedded in
//! the binary, autoescaped (every template name ends in `.html`, so every
//! `{{ value }}` is HTML-escaped: a company called `<script>` is text), and
//! given the layout's context by [`Page`]. Numbers, dates and URLs are
//! formatted here in Rust, so the templates only place strings.

use axum::response::Html;
use serde::Serialize;

use crate::WebState;
use crate::auth::Signed;
use crate::error::{Error, WebError};

/// Every template, by name. Fragments start with `_`.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("signin.html", include_str!("../templates/signin.html")),
    ("table.html", include_str!("../templates/table.html")),
    ("_rows.html", include_str!("../templates/_rows.html")),
    ("record.html", include_str!("../templates/record.html")),
    ("_field.html", include_str!("../templates/_field.html")),
    ("_cell.html", include_str!("../templates/_cell.html")),
    (
        "_timeline.html",
        include_str!("../templates/_timeline.html"),
    ),
    ("board.html", include_str!("../templates/board.html")),
    ("_board.html", include_str!("../templates/_board.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("today.html", include_str!("../templates/today.html")),
    (
        "_today_tasks.html",
        include_str!("../templates/_today_tasks.html"),
    ),
    ("palette.html", include_str!("../templates/palette.html")),
    (
        "_palette_results.html",
        include_str!("../templates/_palette_results.html"),
    ),
    ("new.html", include_str!("../templates/new.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
];

/// Compiles the embedded templates.
pub fn templates() -> Result<tera::Tera, Error> {
    let mut t = tera::Tera::default();
    t.add_raw_templates(TEMPLATES.iter().copied())?;
    // Belt and braces: `.html` names already turn autoescape on.
    t.autoescape_on(vec![".html"]);
    Ok(t)
}

/// A page's template context with the layout's values in it.
pub struct Page {
    pub ctx: tera::Context,
}

impl Page {
    /// A page outside a session (sign-in).
    pub fn bare(title: &str) -> Page {
        let mut ctx = tera::Context::new();
        ctx.insert("title", title);
        ctx.insert("signed_in", &false);
        insert_assets(&mut ctx);
        Page { ctx }
    }

    /// A page of a signed-in user; `nav` names the navigation entry to mark.
    pub fn new(title: &str, who: &Signed, nav: &str) -> Page {
        let mut page = Page::bare(title);
        let c = &mut page.ctx;
        c.insert("signed_in", &true);
        c.insert("user_name", &who.user.name);
        c.insert("user_email", &who.user.email);
        c.insert("role", &role_name(who.user.role));
        c.insert("workspace", &who.workspace);
        c.insert("csrf", &who.csrf);
        c.insert("nav", nav);
        c.insert("can_write", &who.can_write());
        c.insert("manages", &who.manages());
        c.insert("nav_items", &nav_items());
        page
    }

    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.ctx.insert(key, value);
        self
    }

    pub fn render(&self, state: &WebState, template: &str) -> Result<Html<String>, WebError> {
        Ok(Html(state.templates.render(template, &self.ctx)?))
    }
}

fn insert_assets(ctx: &mut tera::Context) {
    use crate::assets::url;
    ctx.insert("css_url", &url("app.css"));
    ctx.insert("htmx_url", &url("htmx.min.js"));
    ctx.insert("sse_url", &url("hx-sse.min.js"));
    ctx.insert("sortable_url", &url("Sortable.min.js"));
    ctx.insert("app_js_url", &url("app.js"));
    ctx.insert("palette_js_url", &url("palette.js"));
}

#[derive(Serialize)]
struct NavItem {
    key: &'static str,
    label: &'static str,
    href: String,
}

fn nav_items() -> Vec<NavItem> {
    let mut items = vec![
        NavItem {
            key: "today",
            label: "Today",
            href: "/today".into(),
        },
        NavItem {
            key: "dashboard",
            label: "Dashboard",
            href: "/dashboard".into(),
        },
        NavItem {
            key: "board",
            label: "Pipeline",
            href: "/deals/board".into(),
        },
    ];
    for k in crate::meta::Kind::ALL {
        items.push(NavItem {
            key: k.path(),
            label: k.plural_label(),
            href: format!("/{}", k.path()),
        });
    }
    items
}

pub fn role_name(role: rapport_crm::model::Role) -> &'static str {
    use rapport_crm::model::Role;
    match role {
        Role::Viewer => "viewer",
        Role::Rep => "rep",
        Role::Manager => "manager",
        Role::Admin => "admin",
    }
}

/// HTML-escapes text for the few strings built outside templates.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2F;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs.
pub fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One toast for the live region.
pub fn toast(message: &str, error: bool) -> String {
    let class = if error { "toast toast-error" } else { "toast" };
    format!("<p class=\"{class}\">{}</p>", escape(message))
}

/// The out-of-band toast appended to a fragment answer.
pub fn oob_toast(message: &str) -> String {
    format!(
        "<div hx-swap-oob=\"beforeend:#toasts\">{}</div>",
        toast(message, false)
    )
}

/// 1234567.8 → "1,234,568".
pub fn money(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// An ISO timestamp as "2026-11-21 09:30" (UTC); other text unchanged.
pub fn when(s: &str) -> String {
    match rapport_crm::schema::parse_timestamp(s) {
        Some(t) if s.len() > 10 => t.format("%Y-%m-%d %H:%M").to_string(),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_compile() {
        templates().expect("templates");
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(0.0), "0");
        assert_eq!(money(999.0), "999");
        assert_eq!(money(1234567.8), "1,234,568");
        assert_eq!(money(-1000.0), "-1,000");
    }

    #[test]
    fn escape_and_encode() {
        assert_eq!(escape("<img onerror=x>"), "&lt;img onerror=x&gt;");
        assert_eq!(url_encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }
}
