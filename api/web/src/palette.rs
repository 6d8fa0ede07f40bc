//! The command palette (Ctrl/Cmd+K): one box that finds records by name or
//! email, interactions by meaning, pages, and actions (new contact, new deal,
//! new task, log a call).
//!
//! - Records come from the store's loose lookup, the one `find_records`
//!   calls (word similarity, tolerant of typos), so the palette finds what
//!   the agent finds.
//! - Interactions come from the semantic search service that
//!   `search_interactions` calls (snippet, date, who), when the server has an
//!   index; otherwise the results say semantic search is not available.
//!   The service is called directly, as the store is for the records: a
//!   keystroke is a page read, not a tool call to audit.
//!
//! In the browser the palette is a WAI-ARIA combobox in a modal dialog
//! (`layout.html`, keys in `palette.js`); htmx asks `GET /palette?q=` for
//! the options as a fragment. Without JavaScript the same URL is a page of
//! links.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use rapport_crm::{LookupQuery, RecordType};
use rapport_tools::SearchFilters;
use serde::{Deserialize, Serialize};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::meta;
use crate::render::Page;

/// Records shown.
pub const RECORDS: usize = 8;
/// Interactions shown.
pub const INTERACTIONS: usize = 5;
/// Semantic search starts at this many characters (fewer carry no meaning).
pub const MIN_SEMANTIC: usize = 3;
/// Longest query read (the lookup's own limit).
const MAX_QUERY: usize = 200;

#[derive(Debug, Deserialize)]
pub struct PaletteParams {
    #[serde(default)]
    pub q: String,
}

/// One option.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The option's HTML id.
    pub id: String,
    pub label: String,
    pub detail: String,
    /// A longer second line (an interaction's snippet).
    pub snippet: String,
    pub href: String,
}

/// One group of options.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub key: &'static str,
    pub title: &'static str,
    pub items: Vec<Item>,
}

/// What the palette answers for a query.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub groups: Vec<Group>,
    pub count: usize,
    /// Why interactions are missing, when they are.
    pub notes: Vec<String>,
}

/// The pages a person can jump to.
fn pages() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Today", "/today".to_owned()),
        ("Dashboard", "/dashboard".to_owned()),
        ("Pipeline board", "/deals/board".to_owned()),
    ];
    for k in meta::Kind::ALL {
        out.push((k.plural_label(), format!("/{}", k.path())));
    }
    out
}

/// The actions, for people who may write.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("New contact", "/new/contact", "create a contact"),
    ("New deal", "/new/deal", "create a deal"),
    ("New task", "/new/task", "add a task for yourself"),
    ("Log a call", "/new/call", "log a call with a contact"),
];

/// Whether every word of the query starts a word of `label` (or the query
/// is empty): "new c" finds "New contact", "deal" finds "New deal".
fn matches(query: &str, label: &str) -> bool {
    let label = label.to_lowercase();
    let words: Vec<&str> = label.split_whitespace().collect();
    query
        .to_lowercase()
        .split_whitespace()
        .all(|q| words.iter().any(|w| w.starts_with(q)))
}

/// Builds the results: records, interactions, pages, actions.
pub async fn results(state: &WebState, who: &Signed, raw: &str) -> Result<Results, WebError> {
    let q: String = raw.trim().chars().take(MAX_QUERY).collect();
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    let mut n = 0usize;
    let mut next_id = || {
        n += 1;
        format!("pal-opt-{n}")
    };
    if !q.is_empty() {
        let found = state
            .store
            .lookup(
                &who.ctx(),
                &LookupQuery {
                    text: q.clone(),
                    types: vec![
                        RecordType::Contact,
                        RecordType::Company,
                        RecordType::Deal,
                        RecordType::Lead,
                    ],
                    limit: Some(RECORDS),
                },
            )
            .await?;
        let items: Vec<Item> = found
            .into_iter()
            .filter_map(|c| {
                Some(Item {
                    href: meta::href(c.record_type, c.id)?,
                    id: next_id(),
                    detail: meta::Kind::of(c.record_type)?.label().to_owned(),
                    label: c.label,
                    snippet: String::new(),
                })
            })
            .collect();
        groups.push(Group {
            key: "records",
            title: "Records",
            items,
        });
        let (items, note) = interactions(state, who, &q, &mut next_id).await;
        notes.extend(note);
        groups.push(Group {
            key: "interactions",
            title: "Interactions",
            items,
        });
    }
    let items = pages()
        .into_iter()
        .filter(|(label, _)| matches(&q, label))
        .map(|(label, href)| Item {
            id: next_id(),
            label: label.to_owned(),
            detail: "page".into(),
            snippet: String::new(),
            href,
        })
        .collect();
    groups.push(Group {
        key: "pages",
        title: "Pages",
        items,
    });
    if who.can_write() {
        let items = ACTIONS
            .iter()
            .filter(|(label, _, _)| matches(&q, label))
            .map(|(label, href, detail)| Item {
                id: next_id(),
                label: (*label).to_owned(),
                detail: (*detail).to_owned(),
                snippet: String::new(),
                href: (*href).to_owned(),
            })
            .collect();
        groups.push(Group {
            key: "actions",
            title: "Actions",
            items,
        });
    }
    groups.retain(|g| !g.items.is_empty());
    let count = groups.iter().map(|g| g.items.len()).sum();
    Ok(Results {
        groups,
        count,
        notes,
    })
}

/// Interactions by meaning, or a note saying why there are none.
async fn interactions(
    state: &WebState,
    who: &Signed,
    q: &str,
    next_id: &mut impl FnMut() -> String,
) -> (Vec<Item>, Option<String>) {
    let Some(search) = state.registry.services().search.clone() else {
        return (
            Vec::new(),
            Some(
                "Semantic search is not available on this server: it has no index of interactions."
                    .into(),
            ),
        );
    };
    if q.chars().count() < MIN_SEMANTIC {
        return (Vec::new(), None);
    }
    let ctx = who.ctx();
    let hits = match search
        .search(&ctx, q, &SearchFilters::default(), INTERACTIONS)
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e.message, "palette: semantic search failed");
            return (
                Vec::new(),
                Some(format!("Semantic search failed: {}", e.message)),
            );
        }
    };
    let items = hits
        .into_iter()
        .map(|h| {
            let mut detail = vec![h.occurred_at.format("%Y-%m-%d").to_string()];
            if let Some(w) = &h.who {
                detail.push(w.clone());
            }
            if let Some(c) = &h.company {
                detail.push(c.clone());
            }
            let label = match &h.subject {
                Some(s) if !s.trim().is_empty() => format!("{}: {s}", capital(&h.kind)),
                _ => capital(&h.kind),
            };
            Item {
                id: next_id(),
                label,
                detail: detail.join(" · "),
                snippet: h.snippet.chars().take(160).collect(),
                href: format!("/activities/{}", h.activity_id),
            }
        })
        .collect();
    (items, None)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `GET /palette?q=`: the options fragment for htmx, a page of links
/// otherwise.
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    Query(params): Query<PaletteParams>,
) -> Result<Response, WebError> {
    let results = results(&state, &who, &params.q).await?;
    let mut page = Page::new("Search", &who, "search");
    page.insert("q", params.q.trim())
        .insert("results", &results);
    let template = if who.htmx {
        "_palette_results.html"
    } else {
        "palette.html"
    };
    Ok(page.render(&state, template)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_actions_match_by_word_prefixes() {
        assert!(matches("", "New contact"));
        assert!(matches("new c", "New contact"));
        assert!(matches("deal", "New deal"));
        assert!(matches("DASH", "Dashboard"));
        assert!(!matches("contact x", "New contact"));
        assert!(!matches("ontact", "New contact"));
    }
}
