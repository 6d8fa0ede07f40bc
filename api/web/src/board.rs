//! The pipeline board: one column per open stage with its count, total value
//! and probability-weighted value (one grouped query), the stage's deal cards
//! (name, company, value, owner, days in stage), filters by owner and
//! expected close date.
//!
//! A card moves by drag and drop (SortableJS with `forceFallback`, so
//! WebDriver can drag too) or by the "Move to…" menu every card carries (for
//! the keyboard, and WCAG 2.2's rule that dragging must have an alternative).
//! Both submit the same form to `move_deal_stage`, which records the stage
//! history; won and lost are not columns here, since closing a deal needs a
//! reason (`close_deal`).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use rapport_crm::filter::Direction;
use rapport_crm::model::{Pipeline, Stage, StageOutcome};
use rapport_crm::{Filter, Id, ListQuery, Op, RecordType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::Signed;
use crate::error::WebError;
use crate::meta::{self, Labels};
use crate::render::{Page, money, oob_toast, query_string};

/// Cards shown per column (the column's figures count every deal).
pub const CARDS_PER_COLUMN: u32 = 50;

/// The board's filters, from its query string (and the move forms' hidden
/// fields, so a move answers with the same board).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BoardParams {
    pub pipeline: Option<String>,
    pub owner: Option<String>,
    pub close_from: Option<String>,
    pub close_to: Option<String>,
}

impl BoardParams {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (k, v) in [
            ("pipeline", &self.pipeline),
            ("owner", &self.owner),
            ("close_from", &self.close_from),
            ("close_to", &self.close_to),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.trim().is_empty()) {
                p.push((k.to_owned(), v.trim().to_owned()));
            }
        }
        p
    }

    fn owner_id(&self) -> Result<Option<Id>, WebError> {
        match self
            .owner
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| WebError::BadRequest("owner: choose a user".into())),
        }
    }

    fn date(v: &Option<String>, name: &str) -> Result<Option<String>, WebError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| Some(d.to_string()))
                .map_err(|_| {
                    WebError::BadRequest(format!("{name}: expected a date such as 2026-12-31"))
                }),
        }
    }

    /// The filter of the board's deals (open, in the pipeline, and the
    /// person's choices).
    fn filter(&self, pipeline: Id) -> Result<Filter, WebError> {
        let mut parts = vec![
            Filter::eq("pipeline_id", pipeline),
            Filter::eq("status", "open"),
        ];
        if let Some(o) = self.owner_id()? {
            parts.push(Filter::eq("owner_id", o));
        }
        if let Some(d) = Self::date(&self.close_from, "close_from")? {
            parts.push(Filter::cond("expected_close_date", Op::Gte, d));
        }
        if let Some(d) = Self::date(&self.close_to, "close_to")? {
            parts.push(Filter::cond("expected_close_date", Op::Lte, d));
        }
        Ok(Filter::and(parts))
    }
}

#[derive(Serialize)]
struct Card {
    id: Id,
    name: String,
    company: Option<String>,
    company_href: Option<String>,
    value: String,
    owner: Option<String>,
    days_in_stage: i64,
    /// Text, to compare with the stage menu's values in the template.
    stage_id: String,
}

#[derive(Serialize)]
struct Column {
    stage_id: Id,
    name: String,
    count: i64,
    total: String,
    weighted: String,
    probability: String,
    cards: Vec<Card>,
    hidden: i64,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// `GET /deals/board`.
pub async fn page(
    State(state): State<WebState>,
    who: Signed,
    Query(params): Query<BoardParams>,
) -> Result<Response, WebError> {
    let mut page = Page::new("Pipeline", &who, "board");
    fill(&state, &who, &params, &mut page).await?;
    let template = if who.htmx {
        "_board.html"
    } else {
        "board.html"
    };
    Ok(page.render(&state, template)?.into_response())
}

async fn fill(
    state: &WebState,
    who: &Signed,
    params: &BoardParams,
    page: &mut Page,
) -> Result<(), WebError> {
    let ctx = who.ctx();
    // What the templates read, so an empty workspace renders too.
    page.insert("pipeline_name", "")
        .insert("pipelines", &Vec::<Choice>::new())
        .insert("stages", &Vec::<Choice>::new())
        .insert("owners", &Vec::<Choice>::new())
        .insert("close_from", &params.close_from.clone().unwrap_or_default())
        .insert("close_to", &params.close_to.clone().unwrap_or_default())
        .insert(
            "filters",
            &json!({
                "pipeline": params.pipeline.clone().unwrap_or_default(),
                "owner": params.owner.clone().unwrap_or_default(),
                "close_from": params.close_from.clone().unwrap_or_default(),
                "close_to": params.close_to.clone().unwrap_or_default(),
            }),
        );
    let pipelines = state
        .store
        .list::<Pipeline>(
            &ctx,
            &ListQuery::default()
                .sorted("name", Direction::Asc)
                .limit(100),
        )
        .await?
        .items;
    let chosen = params
        .pipeline
        .as_deref()
        .and_then(|p| p.parse::<Id>().ok());
    let Some(pipeline) = pipelines
        .iter()
        .find(|p| Some(p.id) == chosen)
        .or_else(|| pipelines.iter().find(|p| p.is_default))
        .or(pipelines.first())
        .cloned()
    else {
        page.insert("columns", &Vec::<Column>::new())
            .insert("no_pipeline", &true);
        return Ok(());
    };
    let stages: Vec<Stage> = state
        .store
        .list::<Stage>(
            &ctx,
            &ListQuery::filtered(Filter::eq("pipeline_id", pipeline.id))
                .sorted("position", Direction::Asc)
                .limit(100),
        )
        .await?
        .items
        .into_iter()
        .filter(|s| s.outcome == StageOutcome::Open)
        .collect();
    let filter = params.filter(pipeline.id)?;
    let totals = state
        .store
        .deal_totals_by_stage(&ctx, Some(&filter))
        .await?;
    let now = Utc::now();
    let mut columns = Vec::with_capacity(stages.len());
    let mut all_cards = Vec::new();
    for s in &stages {
        let q = ListQuery::filtered(Filter::and(vec![
            filter.clone(),
            Filter::eq("stage_id", s.id),
        ]))
        .sorted("value", Direction::Desc)
        .limit(CARDS_PER_COLUMN);
        let deals = state
            .store
            .list_dyn(&ctx, RecordType::Deal, &q)
            .await?
            .items;
        let t = totals.iter().find(|t| t.stage_id == s.id);
        let count = t.map_or(0, |t| t.deals);
        columns.push(Column {
            stage_id: s.id,
            name: s.name.clone(),
            count,
            total: money(t.map_or(0.0, |t| t.total_value)),
            weighted: money(t.map_or(0.0, |t| t.weighted_value)),
            probability: format!("{:.0}%", s.probability * 100.0),
            cards: Vec::new(),
            hidden: count - deals.len() as i64,
        });
        all_cards.push(deals);
    }
    let deal_fields: Vec<&rapport_crm::schema::FieldDef> = ["company_id", "owner_id"]
        .iter()
        .filter_map(|f| RecordType::Deal.def().field(f))
        .collect();
    let flat: Vec<_> = all_cards.iter().flatten().cloned().collect();
    let labels = Labels::load(&state.store, &ctx, &flat, &deal_fields).await?;
    for (col, deals) in columns.iter_mut().zip(all_cards) {
        col.cards = deals
            .iter()
            .map(|d| {
                let int = |k: &str| d.get(k).and_then(Value::as_i64);
                let entered = d
                    .get("stage_entered_at")
                    .and_then(Value::as_str)
                    .and_then(rapport_crm::schema::parse_timestamp)
                    .unwrap_or(now);
                Card {
                    id: int("id").unwrap_or_default(),
                    name: meta::label(RecordType::Deal, d),
                    company: int("company_id")
                        .and_then(|c| labels.get(RecordType::Company, c))
                        .map(str::to_owned),
                    company_href: int("company_id")
                        .and_then(|c| meta::href(RecordType::Company, c)),
                    value: money(d.get("value").and_then(Value::as_f64).unwrap_or_default()),
                    owner: int("owner_id")
                        .and_then(|o| labels.get(RecordType::User, o))
                        .map(str::to_owned),
                    days_in_stage: (now - entered).num_days().max(0),
                    stage_id: col.stage_id.to_string(),
                }
            })
            .collect();
    }
    let owner = params.owner_id()?;
    let owners: Vec<Choice> = crate::tables::workspace_users(state, who)
        .await?
        .into_iter()
        .map(|u| Choice {
            selected: Some(u.id) == owner,
            value: u.id.to_string(),
            label: u.name,
        })
        .collect();
    let pipeline_choices: Vec<Choice> = pipelines
        .iter()
        .map(|p| Choice {
            value: p.id.to_string(),
            label: p.name.clone(),
            selected: p.id == pipeline.id,
        })
        .collect();
    let stage_choices: Vec<Choice> = stages
        .iter()
        .map(|s| Choice {
            value: s.id.to_string(),
            label: s.name.clone(),
            selected: false,
        })
        .collect();
    page.insert("pipeline_name", &pipeline.name)
        .insert("pipeline_id", &pipeline.id)
        .insert("pipelines", &pipeline_choices)
        .insert("columns", &columns)
        .insert("stages", &stage_choices)
        .insert("owners", &owners);
    Ok(())
}

/// `POST /deals/{id}/move` (`stage_id` and the board's filters): runs
/// `move_deal_stage`. htmx gets the whole board back (figures change in two
/// columns) with a toast; a plain form is redirected to the board.
pub async fn move_deal(
    State(state): State<WebState>,
    who: Signed,
    Path(id): Path<Id>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let stage_id: Id = get("stage_id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WebError::BadRequest("choose the stage to move the deal to".into()))?;
    let board = BoardParams {
        pipeline: get("pipeline"),
        owner: get("owner"),
        close_from: get("close_from"),
        close_to: get("close_to"),
    };
    let moved = state
        .registry
        .call(
            &state.store,
            &who.caller,
            "move_deal_stage",
            json!({"deal_id": id, "stage_id": stage_id}),
        )
        .await?;
    if !who.htmx {
        let qs = query_string(&board.pairs());
        let sep = if qs.is_empty() { "" } else { "?" };
        return Ok(Redirect::to(&format!("/deals/board{sep}{qs}")).into_response());
    }
    let name = moved
        .pointer("/deal/name")
        .and_then(Value::as_str)
        .unwrap_or("The deal")
        .to_owned();
    let to = moved
        .pointer("/to_stage/name")
        .and_then(Value::as_str)
        .unwrap_or("its new stage")
        .to_owned();
    let mut page = Page::new("Pipeline", &who, "board");
    fill(&state, &who, &board, &mut page).await?;
    let mut html = page.render(&state, "_board.html")?.0;
    html.push_str(&oob_toast(&format!("{name} moved to {to}.")));
    Ok(axum::response::Html(html).into_response())
}
