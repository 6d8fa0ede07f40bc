//! Writing generated data into a workspace: all or nothing.

use super::*;

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn ts(t: DateTime<Utc>) -> Value {
    Value::String(format_timestamp(&t))
}

/// Writes generated data into a workspace in one transaction: all or nothing.
/// Creates the default pipeline if the workspace has none.
pub async fn write(
    store: &Store,
    ctx: &Ctx,
    data: &DemoData,
    progress: &ProgressBar,
) -> Result<SeededIds> {
    let pipeline = match store
        .list::<Pipeline>(ctx, &crate::ListQuery::default().limit(1))
        .await?
        .items
        .pop()
    {
        Some(p) => p,
        None => create_default_pipeline(store, ctx).await?,
    };
    let stages = store
        .list::<Stage>(
            ctx,
            &crate::ListQuery::filtered(crate::Filter::eq("pipeline_id", pipeline.id))
                .sorted("position", crate::filter::Direction::Asc),
        )
        .await?
        .items;
    progress.set_length(data.len() as u64);
    let mut tx = store.begin().await?;
    let mut ids = SeededIds::default();
    let chunked = |n: usize| n.div_ceil(2000).max(1);

    let rows = data
        .users
        .iter()
        .map(|u| obj(json!({"name": u.name, "email": u.email, "role": u.role, "timezone": "America/Chicago"})))
        .collect();
    ids.users = tx.bulk_insert(ctx, RecordType::User, rows).await?;
    progress.inc(data.users.len() as u64);

    for part in data.companies.chunks(
        data.companies
            .len()
            .div_ceil(chunked(data.companies.len()))
            .max(1),
    ) {
        let rows = part
            .iter()
            .map(|c| {
                obj(json!({"name": c.name, "domain": c.domain, "industry": c.industry, "employees": c.employees,
                    "country": c.country, "city": c.city, "owner_id": ids.users[c.owner],
                    "created_at": ts(c.created_at), "updated_at": ts(c.created_at)}))
            })
            .collect();
        ids.companies
            .extend(tx.bulk_insert(ctx, RecordType::Company, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.contacts.chunks(2000) {
        let rows = part
            .iter()
            .map(|c| {
                obj(json!({"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "title": c.title,
                    "phone": c.phone, "company_id": ids.companies[c.company], "owner_id": ids.users[data.companies[c.company].owner]}))
            })
            .collect();
        ids.contacts
            .extend(tx.bulk_insert(ctx, RecordType::Contact, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.leads.chunks(2000) {
        let rows = part
            .iter()
            .map(|l| {
                obj(json!({"name": l.name, "email": l.email, "company_name": l.company_name, "title": l.title,
                    "source": l.source, "status": l.status, "owner_id": ids.users[l.owner],
                    "company_id": l.company.map(|c| ids.companies[c]),
                    "converted_at": (l.status == "converted").then(|| ts(l.created_at + Duration::days(10))),
                    "created_at": ts(l.created_at), "updated_at": ts(l.created_at)}))
            })
            .collect();
        ids.leads
            .extend(tx.bulk_insert(ctx, RecordType::Lead, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.deals.chunks(2000) {
        let rows = part
            .iter()
            .map(|dl| {
                let stage = &stages[*dl.stage_path.last().unwrap_or(&0)];
                let entered = *dl.stage_times.last().unwrap_or(&data.companies[dl.company].created_at);
                let status = match stage.outcome {
                    crate::model::StageOutcome::Open => "open",
                    crate::model::StageOutcome::Won => "won",
                    crate::model::StageOutcome::Lost => "lost",
                };
                obj(json!({"name": dl.name, "pipeline_id": pipeline.id, "stage_id": stage.id, "value": dl.value,
                    "currency": "USD", "probability": stage.probability,
                    "expected_close_date": dl.expected_close.format("%Y-%m-%d").to_string(),
                    "status": status, "close_reason": dl.close_reason,
                    "closed_at": (status != "open").then(|| ts(entered)),
                    "company_id": ids.companies[dl.company], "owner_id": ids.users[dl.owner],
                    "contact_ids": dl.contacts.iter().map(|c| ids.contacts[*c]).collect::<Vec<_>>(),
                    "stage_entered_at": ts(entered),
                    "created_at": ts(dl.stage_times[0]), "updated_at": ts(entered)}))
            })
            .collect();
        let new_ids = tx.bulk_insert(ctx, RecordType::Deal, rows).await?;
        let mut changes = Vec::new();
        for (dl, id) in part.iter().zip(&new_ids) {
            for (i, (s, t)) in dl.stage_path.iter().zip(&dl.stage_times).enumerate() {
                changes.push(NewStageChange {
                    deal_id: *id,
                    from_stage_id: (i > 0).then(|| stages[dl.stage_path[i - 1]].id),
                    to_stage_id: stages[*s].id,
                    changed_by: Some(ids.users[dl.owner]),
                    changed_at: *t,
                    seconds_in_previous: (i > 0)
                        .then(|| (*t - dl.stage_times[i - 1]).num_seconds()),
                });
            }
        }
        tx.insert_stage_changes(ctx, &changes).await?;
        ids.deals.extend(new_ids);
        progress.inc(part.len() as u64);
    }

    for part in data.activities.chunks(2000) {
        let rows = part
            .iter()
            .map(|a| {
                obj(json!({"kind": a.kind, "direction": a.direction, "subject": a.subject, "body": a.body,
                    "occurred_at": ts(a.occurred_at), "duration_seconds": a.duration_seconds,
                    "company_id": ids.companies[a.company], "contact_id": a.contact.map(|c| ids.contacts[c]),
                    "deal_id": a.deal.map(|x| ids.deals[x]), "owner_id": ids.users[a.owner],
                    "created_at": ts(a.occurred_at), "updated_at": ts(a.occurred_at)}))
            })
            .collect();
        ids.activities
            .extend(tx.bulk_insert(ctx, RecordType::Activity, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.tasks.chunks(2000) {
        let rows = part
            .iter()
            .map(|t| {
                obj(json!({"title": t.title, "due_at": ts(t.due_at), "priority": t.priority, "status": t.status,
                    "completed_at": (t.status == "done").then(|| ts(t.due_at)),
                    "assignee_id": ids.users[t.assignee], "company_id": ids.companies[t.company],
                    "contact_id": t.contact.map(|c| ids.contacts[c]), "deal_id": t.deal.map(|x| ids.deals[x])}))
            })
            .collect();
        ids.tasks
            .extend(tx.bulk_insert(ctx, RecordType::Task, rows).await?);
        progress.inc(part.len() as u64);
    }
    tx.commit().await?;
    progress.finish();
    Ok(ids)
}
