//! Deals: moving and closing (the rules live in crm), the pipeline summary and the forecast.

use super::*;

#[derive(Debug, Serialize, JsonSchema)]
pub struct StageRef {
    pub id: Id,
    pub name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DealMove {
    pub deal: RecordMap,
    pub from_stage: StageRef,
    pub to_stage: StageRef,
}

pub(super) async fn stages_of(cx: &mut Call, pipeline_id: Id) -> Result<Vec<RecordMap>> {
    let q = ListQuery::filtered(Filter::eq("pipeline_id", pipeline_id))
        .sorted("position", SortDir::Asc)
        .limit(500);
    Ok(cx.tx.list_dyn(&cx.ctx, RecordType::Stage, &q).await?.items)
}

pub(super) fn stage_ref(stages: &[RecordMap], id: Id) -> StageRef {
    let name = stages
        .iter()
        .find(|s| id_of(s) == id)
        .map(|s| text(s, "name"))
        .unwrap_or_default();
    StageRef { id, name }
}

pub(super) async fn deal_for_change(cx: &mut Call, deal_id: Id) -> Result<RecordMap> {
    let deal = cx
        .tx
        .get_dyn(&cx.ctx, RecordType::Deal, deal_id)
        .await
        .map_err(|e| ToolError::from(e).with_field("deal_id"))?;
    cx.ensure_can_change(RecordType::Deal, &deal)?;
    Ok(deal)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveArgs {
    pub deal_id: Id,
    /// The target stage's id; give this or `stage`.
    pub stage_id: Option<Id>,
    /// The target stage's name within the deal's pipeline (case-insensitive), e.g. "Proposal".
    pub stage: Option<String>,
}

pub struct MoveDealStage;

impl Tool for MoveDealStage {
    type Args = MoveArgs;
    type Output = DealMove;

    fn name(&self) -> &'static str {
        "move_deal_stage"
    }
    fn description(&self) -> String {
        "Move a deal to another open stage of its pipeline, by stage id or name. The stage history is recorded and the probability follows the new stage. To win or lose a deal use close_deal.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"deal_id": 1, "stage": "Proposal"})
    }
    fn targets(&self, a: &MoveArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Deal, a.deal_id)]
    }
    async fn call(&self, cx: &mut Call, a: MoveArgs) -> Result<DealMove> {
        deal_for_change(cx, a.deal_id).await?;
        let target = match (a.stage_id, a.stage) {
            (Some(id), None) => StageTarget::Id(id),
            (None, Some(name)) => StageTarget::Name(name),
            _ => {
                return Err(ToolError::invalid(
                    "stage",
                    "give exactly one of stage_id and stage",
                ));
            }
        };
        let moved = cx.tx.move_deal_stage(&cx.ctx, a.deal_id, &target).await?;
        Ok(moved.into())
    }
}

impl From<DealMoved> for DealMove {
    fn from(m: DealMoved) -> Self {
        let stage = |s: StageLabel| StageRef {
            id: s.id,
            name: s.name,
        };
        DealMove {
            deal: m.deal,
            from_stage: stage(m.from),
            to_stage: stage(m.to),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Won,
    Lost,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseArgs {
    pub deal_id: Id,
    pub outcome: Outcome,
    /// Why it was won or lost, in the customer's terms where possible.
    #[schemars(length(min = 1))]
    pub reason: String,
}

pub struct CloseDeal;

impl Tool for CloseDeal {
    type Args = CloseArgs;
    type Output = DealMove;

    fn name(&self) -> &'static str {
        "close_deal"
    }
    fn description(&self) -> String {
        "Mark an open deal won or lost, with the reason. It moves to its pipeline's won or lost stage; status, probability and close time follow.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn example(&self) -> Value {
        json!({"deal_id": 1, "outcome": "lost", "reason": "Chose a cheaper competitor."})
    }
    fn targets(&self, a: &CloseArgs) -> Vec<(RecordType, Id)> {
        vec![(RecordType::Deal, a.deal_id)]
    }
    async fn call(&self, cx: &mut Call, a: CloseArgs) -> Result<DealMove> {
        if a.reason.trim().is_empty() {
            return Err(ToolError::invalid("reason", "must not be blank"));
        }
        deal_for_change(cx, a.deal_id).await?;
        let outcome = match a.outcome {
            Outcome::Won => rapport_crm::Outcome::Won,
            Outcome::Lost => rapport_crm::Outcome::Lost,
        };
        let moved = cx
            .tx
            .close_deal(&cx.ctx, a.deal_id, outcome, &a.reason)
            .await?;
        Ok(moved.into())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryArgs {
    /// The pipeline (default: the workspace's default pipeline).
    pub pipeline_id: Option<Id>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StageSummary {
    pub stage_id: Id,
    pub name: String,
    pub outcome: String,
    pub deals: u64,
    /// Sum of deal values (currencies are not converted).
    pub total_value: f64,
    /// Sum of value × probability.
    pub weighted_value: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SummaryOutput {
    pub pipeline_id: Id,
    pub pipeline: String,
    /// In pipeline order.
    pub stages: Vec<StageSummary>,
    /// Open deals only.
    pub open_deals: u64,
    pub open_value: f64,
    pub open_weighted_value: f64,
}

pub struct PipelineSummary;

impl Tool for PipelineSummary {
    type Args = SummaryArgs;
    type Output = SummaryOutput;

    fn name(&self) -> &'static str {
        "pipeline_summary"
    }
    fn description(&self) -> String {
        "Summarise a pipeline: per stage the number of deals, their total value and their probability-weighted value, plus open totals. Values are summed as stored, without currency conversion.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({})
    }
    async fn call(&self, cx: &mut Call, a: SummaryArgs) -> Result<SummaryOutput> {
        let pipeline = match a.pipeline_id {
            Some(id) => cx
                .tx
                .get_dyn(&cx.ctx, RecordType::Pipeline, id)
                .await
                .map_err(|e| ToolError::from(e).with_field("pipeline_id"))?,
            None => {
                let q = ListQuery::default().sorted("id", SortDir::Asc).limit(500);
                let all = cx
                    .tx
                    .list_dyn(&cx.ctx, RecordType::Pipeline, &q)
                    .await?
                    .items;
                all.iter()
                    .find(|p| p.get("is_default") == Some(&Value::Bool(true)))
                    .or(all.first())
                    .cloned()
                    .ok_or_else(|| ToolError::not_found("this workspace has no pipeline"))?
            }
        };
        let pid = id_of(&pipeline);
        let stages = stages_of(cx, pid).await?;
        let deals = list_all(cx, RecordType::Deal, Filter::eq("pipeline_id", pid)).await?;
        let num = |d: &RecordMap, k: &str| d.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let mut out = SummaryOutput {
            pipeline_id: pid,
            pipeline: text(&pipeline, "name"),
            stages: Vec::new(),
            open_deals: 0,
            open_value: 0.0,
            open_weighted_value: 0.0,
        };
        for s in &stages {
            let sid = id_of(s);
            let mut st = StageSummary {
                stage_id: sid,
                name: text(s, "name"),
                outcome: text(s, "outcome"),
                deals: 0,
                total_value: 0.0,
                weighted_value: 0.0,
            };
            for d in deals
                .iter()
                .filter(|d| d.get("stage_id").and_then(Value::as_i64) == Some(sid))
            {
                let (v, w) = (num(d, "value"), num(d, "value") * num(d, "probability"));
                st.deals += 1;
                st.total_value += v;
                st.weighted_value += w;
                if text(d, "status") == "open" {
                    out.open_deals += 1;
                    out.open_value += v;
                    out.open_weighted_value += w;
                }
            }
            out.stages.push(st);
        }
        Ok(out)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastArgs {
    /// Only deals of this pipeline (default: every pipeline).
    pub pipeline_id: Option<Id>,
    /// Only deals of this owner.
    pub owner_id: Option<Id>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Bucket {
    pub deals: u64,
    pub total_value: f64,
    /// Sum of value × probability.
    pub weighted_value: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Month {
    /// YYYY-MM of the expected close date.
    pub month: String,
    #[serde(flatten)]
    pub bucket: Bucket,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastOutput {
    /// Open deals by expected close month, in order.
    pub months: Vec<Month>,
    /// Open deals without an expected close date.
    pub unscheduled: Bucket,
}

pub struct Forecast;

impl Tool for Forecast {
    type Args = ForecastArgs;
    type Output = ForecastOutput;

    fn name(&self) -> &'static str {
        "forecast"
    }
    fn description(&self) -> String {
        "Forecast open deals by expected close month: per month the number of deals, their total value and their probability-weighted value; deals without a date are reported apart. Values are summed as stored, without currency conversion.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({})
    }
    async fn call(&self, cx: &mut Call, a: ForecastArgs) -> Result<ForecastOutput> {
        let mut parts = vec![Filter::eq("status", "open")];
        if let Some(p) = a.pipeline_id {
            cx.tx
                .get_dyn(&cx.ctx, RecordType::Pipeline, p)
                .await
                .map_err(|e| ToolError::from(e).with_field("pipeline_id"))?;
            parts.push(Filter::eq("pipeline_id", p));
        }
        if let Some(o) = a.owner_id {
            cx.tx
                .get_dyn(&cx.ctx, RecordType::User, o)
                .await
                .map_err(|e| ToolError::from(e).with_field("owner_id"))?;
            parts.push(Filter::eq("owner_id", o));
        }
        let deals = list_all(cx, RecordType::Deal, Filter::and(parts)).await?;
        let mut months: std::collections::BTreeMap<String, Bucket> = Default::default();
        let mut unscheduled = Bucket::default();
        for d in &deals {
            let v = d.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            let p = d.get("probability").and_then(Value::as_f64).unwrap_or(0.0);
            let b = match d.get("expected_close_date").and_then(Value::as_str) {
                Some(date) if date.len() >= 7 => months.entry(date[..7].to_owned()).or_default(),
                _ => &mut unscheduled,
            };
            b.deals += 1;
            b.total_value += v;
            b.weighted_value += v * p;
        }
        Ok(ForecastOutput {
            months: months
                .into_iter()
                .map(|(month, bucket)| Month { month, bucket })
                .collect(),
            unscheduled,
        })
    }
}
