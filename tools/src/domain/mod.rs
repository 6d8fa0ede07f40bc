//! Domain operations beyond plain records: loose references, logging an
//! interaction, moving and closing deals, task routines, tags, users and the
//! pipeline summary. Each is a thin composition of store calls inside the
//! call's transaction. One module per concern; the rules they rely on (a
//! deal's lifecycle, references, roles) live in `rapport-crm`.

mod activities;
mod deals;
mod find;
mod merge;
mod tags;
mod tasks;
mod timeline;
mod users;

pub use activities::*;
pub use deals::*;
pub use find::*;
pub use merge::*;
pub use tags::*;
pub use tasks::*;
pub use timeline::*;
pub use users::*;

use chrono::{DateTime, Utc};
use rapport_crm::filter::Direction as SortDir;
use rapport_crm::{
    Candidate, DealMoved, Filter, Id, ListQuery, LookupQuery, Op, RecordMap, RecordType,
    StageLabel, StageTarget,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, ToolError};
use crate::records::id_of;
use crate::registry::Registry;
use crate::tool::{Call, Effect, Tool};
use rapport_crm::model::Role;

pub fn register(r: &mut Registry) {
    r.register(FindRecords);
    r.register(LogActivity);
    r.register(MoveDealStage);
    r.register(CloseDeal);
    r.register(CompleteTask);
    r.register(RescheduleTask);
    r.register(MyTasks);
    r.register(TagTool { add: true });
    r.register(TagTool { add: false });
    r.register(ListUsers);
    r.register(PipelineSummary);
    r.register(ReassignOwner);
    r.register(Timeline);
    r.register(Forecast);
    r.register(MergeContacts);
}

/// Every record of a listing, page by page.
async fn list_all(cx: &mut Call, rt: RecordType, filter: Filter) -> Result<Vec<RecordMap>> {
    let mut q = ListQuery::filtered(filter).limit(500);
    let mut out = Vec::new();
    loop {
        let page = cx.tx.list_dyn(&cx.ctx, rt, &q).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn text(r: &RecordMap, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
