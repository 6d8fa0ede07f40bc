//! The candidate rules: each looks at the CRM as it is (a [`World`]) and
//! proposes actions for one rep, with the numbers behind each. Pure functions
//! of the world, the rep, the config and the instant `now`: no I/O.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rapport_crm::Id;
use rapport_crm::model::{
    Activity, ActivityKind, Company, Deal, DealStatus, Direction, Lead, LeadStatus, Stage,
    StageChange, StageOutcome, Task, TaskStatus,
};
use serde::Serialize;

use super::NbaConfig;

/// What the rules read: records of the workspace and the scores written by the
/// pipelines (empty before any model is trained).
#[derive(Debug, Clone, Default)]
pub struct World {
    pub stages: Vec<Stage>,
    pub stage_changes: Vec<StageChange>,
    pub companies: Vec<Company>,
    pub leads: Vec<Lead>,
    pub deals: Vec<Deal>,
    pub activities: Vec<Activity>,
    pub tasks: Vec<Task>,
    /// Lead id → probability of converting (task `lead-score`).
    pub lead_scores: HashMap<Id, f64>,
    /// Company id → probability of churning (task `churn`).
    pub churn_scores: HashMap<Id, f64>,
}

/// The kinds of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    FollowUpLead,
    ReviveStalledDeal,
    CloseDatePassed,
    OverdueTask,
    UnansweredInbound,
    AccountAtRisk,
    MeetingWithoutNotes,
    OnboardWonDeal,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::FollowUpLead,
        Rule::ReviveStalledDeal,
        Rule::CloseDatePassed,
        Rule::OverdueTask,
        Rule::UnansweredInbound,
        Rule::AccountAtRisk,
        Rule::MeetingWithoutNotes,
        Rule::OnboardWonDeal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::FollowUpLead => "follow_up_lead",
            Rule::ReviveStalledDeal => "revive_stalled_deal",
            Rule::CloseDatePassed => "close_date_passed",
            Rule::OverdueTask => "overdue_task",
            Rule::UnansweredInbound => "unanswered_inbound",
            Rule::AccountAtRisk => "account_at_risk",
            Rule::MeetingWithoutNotes => "meeting_without_notes",
            Rule::OnboardWonDeal => "onboard_won_deal",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The numbers behind an action; the reason line is built from these only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// Chance that acting moves the record forward, 0–1.
    pub probability: f64,
    /// Where the probability comes from: lead-score model, churn model, stage
    /// probability, heuristic.
    pub probability_source: &'static str,
    /// Value at stake (deal value, account value, default).
    pub value: f64,
    /// 1 at a rule's threshold, growing with time past it, capped.
    pub urgency: f64,
    /// Days past the rule's threshold or due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_overdue: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_since_last_touch: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_in_stage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical_stage_days: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment_mean: Option<f64>,
}

/// A suggested action before ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub rule: Rule,
    /// crm record type name: lead, deal, task, activity, company.
    pub record_type: &'static str,
    pub record_id: Id,
    /// The record's name or subject, for people.
    pub label: String,
    /// The account (company) it concerns, for diversity.
    pub company_id: Option<Id>,
    pub facts: Facts,
    pub reason: String,
}

impl Candidate {
    /// Stable across runs: feedback and experiment exposures name actions by it.
    pub fn key(&self) -> String {
        action_key(self.rule, self.record_type, self.record_id)
    }
}

pub fn action_key(rule: Rule, record_type: &str, id: Id) -> String {
    format!("{}:{record_type}:{id}", rule.as_str())
}

fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds() as f64 / 86_400.0
}

/// Days since a record's own timestamp (created, entered a stage), never
/// negative: under a fixed clock (evals replaying a recording) a record
/// written during the run is stamped after "now", and its age must read 0,
/// not a figure that changes with the wall clock.
fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    days(since.min(now), now)
}

fn urgency(cfg: &NbaConfig, days_past: f64) -> f64 {
    (1.0 + days_past.max(0.0) / cfg.urgency_scale_days).min(cfg.max_urgency)
}

fn money(v: f64) -> String {
    let whole = v.round() as i64;
    let s = whole.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    format!("${out}")
}

fn pct(p: f64) -> String {
    format!("{:.0}%", p * 100.0)
}

/// Lookups over a world, built once per computation.
pub struct Index<'a> {
    pub world: &'a World,
    stages: HashMap<Id, &'a Stage>,
    companies: HashMap<Id, &'a Company>,
    leads: HashMap<Id, &'a Lead>,
    deals: HashMap<Id, &'a Deal>,
    /// Median days deals spent in each stage before leaving it, and how many exits.
    typical: HashMap<Id, (f64, usize)>,
    /// Each lead's activities.
    by_lead: HashMap<Id, Vec<&'a Activity>>,
}

impl<'a> Index<'a> {
    pub fn new(world: &'a World) -> Index<'a> {
        let mut spent: HashMap<Id, Vec<f64>> = HashMap::new();
        for c in &world.stage_changes {
            if let (Some(from), Some(s)) = (c.from_stage_id, c.seconds_in_previous) {
                spent.entry(from).or_default().push(s as f64 / 86_400.0);
            }
        }
        let typical = spent
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(f64::total_cmp);
                let n = v.len();
                let median = if n % 2 == 1 {
                    v[n / 2]
                } else {
                    (v[n / 2 - 1] + v[n / 2]) / 2.0
                };
                (k, (median, n))
            })
            .collect();
        let mut by_lead: HashMap<Id, Vec<&Activity>> = HashMap::new();
        for a in &world.activities {
            if let Some(l) = a.lead_id {
                by_lead.entry(l).or_default().push(a);
            }
        }
        Index {
            world,
            by_lead,
            stages: world.stages.iter().map(|s| (s.id, s)).collect(),
            companies: world.companies.iter().map(|c| (c.id, c)).collect(),
            leads: world.leads.iter().map(|l| (l.id, l)).collect(),
            deals: world.deals.iter().map(|d| (d.id, d)).collect(),
            typical,
        }
    }

    /// Days a deal typically spends in a stage (history median, else the default).
    pub fn typical_stage_days(&self, cfg: &NbaConfig, stage_id: Id) -> f64 {
        match self.typical.get(&stage_id) {
            Some((median, n)) if *n >= cfg.min_stage_samples && *median > 0.0 => *median,
            _ => cfg.default_stage_days,
        }
    }

    fn stage_name(&self, id: Id) -> String {
        self.stages
            .get(&id)
            .map_or_else(|| format!("stage {id}"), |s| s.name.clone())
    }

    fn is_open_stage(&self, id: Id) -> bool {
        self.stages
            .get(&id)
            .is_none_or(|s| s.outcome == StageOutcome::Open)
    }

    /// The chance a lead converts: its lead-score if scored, else a heuristic
    /// from its status and recent engagement.
    pub fn lead_probability(&self, lead: &Lead, now: DateTime<Utc>) -> (f64, &'static str) {
        if let Some(p) = self.world.lead_scores.get(&lead.id) {
            return (*p, "lead-score model");
        }
        let acts = self
            .lead_activities(lead.id)
            .filter(|a| a.occurred_at <= now);
        (
            heuristic_lead_probability(lead.status, acts, now),
            "heuristic",
        )
    }

    fn lead_activities(&self, lead: Id) -> impl Iterator<Item = &'a Activity> + '_ {
        self.by_lead.get(&lead).into_iter().flatten().copied()
    }

    /// Open deal value tied to a lead, else the default.
    fn lead_value(&self, cfg: &NbaConfig, lead: &Lead, now: DateTime<Utc>) -> f64 {
        let v: f64 = self
            .world
            .deals
            .iter()
            .filter(|d| {
                d.lead_id == Some(lead.id) && d.status == DealStatus::Open && d.created_at <= now
            })
            .map(|d| d.value)
            .sum();
        if v > 0.0 { v } else { cfg.default_lead_value }
    }

    /// Won deal value of an account (what renewing keeps), else the default.
    fn account_value(&self, cfg: &NbaConfig, company_id: Id) -> f64 {
        let v: f64 = self
            .world
            .deals
            .iter()
            .filter(|d| d.company_id == Some(company_id) && d.status == DealStatus::Won)
            .map(|d| d.value)
            .sum();
        if v > 0.0 {
            v
        } else {
            cfg.default_account_value
        }
    }

    /// Probability and value of whatever an activity or task is tied to.
    fn linked_stakes(
        &self,
        cfg: &NbaConfig,
        deal: Option<Id>,
        lead: Option<Id>,
        company: Option<Id>,
        default_p: f64,
        now: DateTime<Utc>,
    ) -> (f64, &'static str, f64) {
        if let Some(d) = deal.and_then(|d| self.deals.get(&d)) {
            return (
                d.probability,
                "deal probability",
                d.value.max(cfg.default_value),
            );
        }
        if let Some(l) = lead.and_then(|l| self.leads.get(&l)) {
            let (p, src) = self.lead_probability(l, now);
            return (p, src, self.lead_value(cfg, l, now));
        }
        if let Some(c) = company {
            return (default_p, "default", self.account_value(cfg, c));
        }
        (default_p, "default", cfg.default_value)
    }

    /// Who answers for an activity: its owner, else the owner of its lead,
    /// deal or company.
    fn responsible(&self, a: &Activity) -> Option<Id> {
        a.owner_id
            .or_else(|| a.lead_id.and_then(|l| self.leads.get(&l)?.owner_id))
            .or_else(|| a.deal_id.and_then(|d| self.deals.get(&d)?.owner_id))
            .or_else(|| a.company_id.and_then(|c| self.companies.get(&c)?.owner_id))
    }
}

/// Status prior plus engagement: +0.05 per inbound interaction in the last 30
/// days (at most 4), +0.10 for a meeting held, +0.05 for pricing or demo page
/// views in the last 30 days; capped at 0.9. Used before a lead-score model
/// exists (and by the offline backtest).
pub fn heuristic_lead_probability<'a>(
    status: LeadStatus,
    activities: impl Iterator<Item = &'a Activity>,
    now: DateTime<Utc>,
) -> f64 {
    let mut p: f64 = match status {
        LeadStatus::New => 0.10,
        LeadStatus::Working => 0.15,
        LeadStatus::Qualified => 0.40,
        LeadStatus::Unqualified => 0.02,
        LeadStatus::Converted => 1.0,
    };
    let (mut inbound, mut meeting, mut pricing) = (0u32, false, false);
    for a in activities {
        let recent = days(a.occurred_at, now) <= 30.0;
        if recent && a.direction == Some(Direction::Inbound) {
            inbound += 1;
        }
        meeting |= a.kind == ActivityKind::Meeting;
        let views = |k: &str| a.custom.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        pricing |= recent && views("pricing_page_views") + views("demo_page_views") > 0.0;
    }
    p += 0.05 * f64::from(inbound.min(4)) + if meeting { 0.10 } else { 0.0 };
    p += if pricing { 0.05 } else { 0.0 };
    p.min(0.9)
}

/// Every candidate action for `rep` as of `now`.
pub fn candidates(ix: &Index<'_>, cfg: &NbaConfig, rep: Id, now: DateTime<Utc>) -> Vec<Candidate> {
    let mut out = Vec::new();
    out.extend(follow_up_leads(ix, cfg, rep, now));
    out.extend(deals(ix, cfg, rep, now));
    out.extend(overdue_tasks(ix, cfg, rep, now));
    out.extend(unanswered_inbound(ix, cfg, rep, now));
    out.extend(accounts_at_risk(ix, cfg, rep, now));
    out.extend(meetings_without_notes(ix, cfg, rep, now));
    out.extend(onboard_won_deals(ix, cfg, rep, now));
    out
}

/// The follow-up candidate of one lead, or why not: it fires when the lead is
/// open, not contacted for `lead_followup_days` and likely enough to convert.
pub fn follow_up_lead(
    ix: &Index<'_>,
    cfg: &NbaConfig,
    lead: &Lead,
    now: DateTime<Utc>,
) -> Option<Candidate> {
    if !matches!(
        lead.status,
        LeadStatus::New | LeadStatus::Working | LeadStatus::Qualified
    ) {
        return None;
    }
    let last = ix
        .lead_activities(lead.id)
        .filter(|a| a.occurred_at <= now && a.direction == Some(Direction::Outbound))
        .map(|a| a.occurred_at)
        .max();
    let since = age(last.unwrap_or(lead.created_at), now);
    if since < cfg.lead_followup_days {
        return None;
    }
    let (p, src) = ix.lead_probability(lead, now);
    if p < cfg.min_lead_probability {
        return None;
    }
    let value = ix.lead_value(cfg, lead, now);
    let u = urgency(cfg, since - cfg.lead_followup_days);
    let touch = match last {
        Some(_) => format!("not contacted for {since:.0} days"),
        None => format!("never contacted, created {since:.0} days ago"),
    };
    let score = match src {
        "lead-score model" => format!("lead score {}", pct(p)),
        _ => format!("est. {} to convert (no model yet)", pct(p)),
    };
    Some(Candidate {
        rule: Rule::FollowUpLead,
        record_type: "lead",
        record_id: lead.id,
        label: lead.name.clone(),
        company_id: lead.company_id,
        facts: Facts {
            probability: p,
            probability_source: src,
            value,
            urgency: u,
            days_overdue: Some(since - cfg.lead_followup_days),
            days_since_last_touch: Some(since),
            ..Facts::default()
        },
        reason: format!(
            "Follow up lead {}: {score}, {touch}, {} at stake",
            lead.name,
            money(value)
        ),
    })
}

fn follow_up_leads(ix: &Index<'_>, cfg: &NbaConfig, rep: Id, now: DateTime<Utc>) -> Vec<Candidate> {
    ix.world
        .leads
        .iter()
        .filter(|l| l.owner_id == Some(rep))
        .filter_map(|l| follow_up_lead(ix, cfg, l, now))
        .collect()
}

fn deals(ix: &Index<'_>, cfg: &NbaConfig, rep: Id, now: DateTime<Utc>) -> Vec<Candidate> {
    let today: NaiveDate = now.date_naive();
    let mut out = Vec::new();
    for d in ix.world.deals.iter().filter(|d| {
        d.owner_id == Some(rep) && d.status == DealStatus::Open && ix.is_open_stage(d.stage_id)
    }) {
        let stage = ix.stage_name(d.stage_id);
        let in_stage = age(d.stage_entered_at, now);
        let typical = ix.typical_stage_days(cfg, d.stage_id);
        let base = Facts {
            probability: d.probability,
            probability_source: "stage probability",
            value: d.value,
            days_in_stage: Some(in_stage),
            typical_stage_days: Some(typical),
            ..Facts::default()
        };
        if in_stage > cfg.stall_factor * typical {
            let past = in_stage - cfg.stall_factor * typical;
            out.push(Candidate {
                rule: Rule::ReviveStalledDeal,
                record_type: "deal",
                record_id: d.id,
                label: d.name.clone(),
                company_id: d.company_id,
                facts: Facts {
                    urgency: urgency(cfg, past),
                    days_overdue: Some(past),
                    ..base.clone()
                },
                reason: format!(
                    "Revive deal {}: {} days in {stage}, {:.1}× the typical {:.0} days; {} at {}",
                    d.name,
                    in_stage.floor(),
                    in_stage / typical,
                    typical,
                    money(d.value),
                    pct(d.probability)
                ),
            });
        }
        if let Some(close) = d.expected_close_date
            && close < today
        {
            let late = (today - close).num_days() as f64;
            out.push(Candidate {
                rule: Rule::CloseDatePassed,
                record_type: "deal",
                record_id: d.id,
                label: d.name.clone(),
                company_id: d.company_id,
                facts: Facts {
                    urgency: urgency(cfg, late),
                    days_overdue: Some(late),
                    ..base.clone()
                },
                reason: format!(
                    "Update deal {}: expected to close {close} ({late:.0} days ago), still open in {stage}; {} at {}",
                    d.name,
                    money(d.value),
                    pct(d.probability)
                ),
            });
        }
    }
    out
}

fn overdue_tasks(ix: &Index<'_>, cfg: &NbaConfig, rep: Id, now: DateTime<Utc>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for t in ix.world.tasks.iter().filter(|t| {
        t.assignee_id == Some(rep)
            && t.status == TaskStatus::Open
            && t.due_at.is_some_and(|d| d < now)
    }) {
        let late = days(t.due_at.expect("filtered"), now);
        let (p, src, value) = ix.linked_stakes(
            cfg,
            t.deal_id,
            t.lead_id,
            t.company_id,
            cfg.task_probability,
            now,
        );
        // Priority raises urgency: an urgent task counts as a week later.
        let bump = match t.priority {
            rapport_crm::model::Priority::Urgent => cfg.urgency_scale_days,
            rapport_crm::model::Priority::High => cfg.urgency_scale_days / 2.0,
            _ => 0.0,
        };
        let company = t.company_id.or_else(|| {
            t.deal_id
                .and_then(|d| ix.deals.get(&d)?.company_id)
                .or_else(|| t.lead_id.and_then(|l| ix.leads.get(&l)?.company_id))
        });
        out.push(Candidate {
            rule: Rule::OverdueTask,
            record_type: "task",
            record_id: t.id,
            label: t.title.clone(),
            company_id: company,
            facts: Facts {
                probability: p,
                probability_source: src,
                value,
                urgency: urgency(cfg, late + bump),
                days_overdue: Some(late),
                ..Facts::default()
            },
            reason: format!(
                "Do overdue task \"{}\": due {late:.0} days ago ({} priority), {} at stake",
                t.title,
                rapport_crm::model::Priority::as_str(t.priority),
                money(value)
            ),
        });
    }
    out
}

fn same_party(a: &Activity, b: &Activity) -> bool {
    let eq = |x: Option<Id>, y: Option<Id>| x.is_some() && x == y;
    eq(a.contact_id, b.contact_id)
        || (a.contact_id.is_none() && eq(a.lead_id, b.lead_id))
        || (a.contact_id.is_none() && a.lead_id.is_none() && eq(a.company_id, b.company_id))
}

fn unanswered_inbound(
    ix: &Index<'_>,
    cfg: &NbaConfig,
    rep: Id,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let acts = &ix.world.activities;
    let mut out = Vec::new();
    for a in acts.iter().filter(|a| {
        matches!(a.kind, ActivityKind::Email | ActivityKind::Call)
            && a.direction == Some(Direction::Inbound)
            && a.occurred_at <= now
            && days(a.occurred_at, now) <= cfg.inbound_lookback_days
            && days(a.occurred_at, now) * 24.0 >= cfg.reply_within_hours
    }) {
        if ix.responsible(a) != Some(rep) {
            continue;
        }
        let answered = acts.iter().any(|b| {
            b.direction == Some(Direction::Outbound)
                && b.occurred_at > a.occurred_at
                && b.occurred_at <= now
                && same_party(a, b)
        });
        if answered {
            continue;
        }
        let hours = days(a.occurred_at, now) * 24.0;
        let (p, src, value) = ix.linked_stakes(
            cfg,
            a.deal_id,
            a.lead_id,
            a.company_id,
            cfg.task_probability,
            now,
        );
        let what = match a.kind {
            ActivityKind::Call => "call",
            _ => "email",
        };
        let subject = a
            .subject
            .clone()
            .unwrap_or_else(|| format!("{what} {}", a.id));
        let sentiment = a
            .sentiment
            .map(|s| format!(", sentiment {s:+.2}"))
            .unwrap_or_default();
        out.push(Candidate {
            rule: Rule::UnansweredInbound,
            record_type: "activity",
            record_id: a.id,
            label: subject.clone(),
            company_id: a.company_id,
            facts: Facts {
                probability: p,
                probability_source: src,
                value,
                urgency: urgency(cfg, (hours - cfg.reply_within_hours) / 24.0),
                days_overdue: Some((hours - cfg.reply_within_hours) / 24.0),
                sentiment_mean: a.sentiment,
                ..Facts::default()
            },
            reason: format!(
                "Answer inbound {what} \"{subject}\": unanswered for {}{sentiment}, {} at stake",
                if hours < 48.0 {
                    format!("{hours:.0} hours")
                } else {
                    format!("{:.0} days", hours / 24.0)
                },
                money(value)
            ),
        });
    }
    out
}

fn accounts_at_risk(
    ix: &Index<'_>,
    cfg: &NbaConfig,
    rep: Id,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in ix
        .world
        .companies
        .iter()
        .filter(|c| c.owner_id == Some(rep))
    {
        if c.custom
            .get(crate::features::CHURN_KEY)
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            continue;
        }
        let churn = ix.world.churn_scores.get(&c.id).copied();
        let mut recent: Vec<&Activity> = ix
            .world
            .activities
            .iter()
            .filter(|a| {
                a.company_id == Some(c.id)
                    && a.sentiment.is_some()
                    && a.occurred_at <= now
                    && days(a.occurred_at, now) <= cfg.sentiment_lookback_days
            })
            .collect();
        recent.sort_by_key(|a| std::cmp::Reverse(a.occurred_at));
        let run: Vec<f64> = recent
            .iter()
            .take(cfg.sentiment_run)
            .filter_map(|a| a.sentiment)
            .collect();
        let negative_run = cfg.sentiment_run > 0
            && run.len() == cfg.sentiment_run
            && run.iter().all(|s| *s < cfg.negative_sentiment);
        let high_churn = churn.is_some_and(|p| p >= cfg.churn_threshold);
        if !(high_churn || negative_run) {
            continue;
        }
        let mean = (!run.is_empty()).then(|| run.iter().sum::<f64>() / run.len() as f64);
        let (p, src) = match churn {
            Some(p) => (p, "churn model"),
            // Without a model: the more negative, the more there is to save.
            None => ((-mean.unwrap_or(0.0)).clamp(0.0, 1.0), "sentiment"),
        };
        let value = ix.account_value(cfg, c.id);
        let mut why = Vec::new();
        if let Some(p) = churn {
            why.push(format!("churn risk {}", pct(p)));
        }
        if negative_run {
            why.push(format!(
                "last {} interactions negative (mean sentiment {:+.2})",
                run.len(),
                mean.unwrap_or(0.0)
            ));
        }
        out.push(Candidate {
            rule: Rule::AccountAtRisk,
            record_type: "company",
            record_id: c.id,
            label: c.name.clone(),
            company_id: Some(c.id),
            facts: Facts {
                probability: p,
                probability_source: src,
                value,
                urgency: if negative_run {
                    1.5_f64.min(cfg.max_urgency)
                } else {
                    1.0
                },
                sentiment_mean: mean,
                ..Facts::default()
            },
            reason: format!(
                "Check in with {}: {}; {} of won business",
                c.name,
                why.join(", "),
                money(value)
            ),
        });
    }
    out
}

fn meetings_without_notes(
    ix: &Index<'_>,
    cfg: &NbaConfig,
    rep: Id,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let acts = &ix.world.activities;
    let mut out = Vec::new();
    for m in acts.iter().filter(|a| {
        a.kind == ActivityKind::Meeting
            && a.owner_id == Some(rep)
            && a.occurred_at <= now
            && days(a.occurred_at, now) * 24.0 >= cfg.notes_grace_hours
            && days(a.occurred_at, now) <= cfg.meeting_lookback_days
            && a.body.trim().is_empty()
    }) {
        let noted = acts.iter().any(|n| {
            n.kind == ActivityKind::Note
                && n.occurred_at >= m.occurred_at
                && ((m.deal_id.is_some() && n.deal_id == m.deal_id)
                    || (m.contact_id.is_some() && n.contact_id == m.contact_id)
                    || (m.deal_id.is_none()
                        && m.contact_id.is_none()
                        && m.company_id.is_some()
                        && n.company_id == m.company_id))
        });
        if noted {
            continue;
        }
        let ago = days(m.occurred_at, now);
        let (p, src, value) = ix.linked_stakes(
            cfg,
            m.deal_id,
            m.lead_id,
            m.company_id,
            cfg.task_probability,
            now,
        );
        let subject = m
            .subject
            .clone()
            .unwrap_or_else(|| format!("meeting {}", m.id));
        out.push(Candidate {
            rule: Rule::MeetingWithoutNotes,
            record_type: "activity",
            record_id: m.id,
            label: subject.clone(),
            company_id: m.company_id,
            facts: Facts {
                probability: p,
                probability_source: src,
                value,
                urgency: urgency(cfg, ago),
                days_overdue: Some(ago),
                ..Facts::default()
            },
            reason: format!(
                "Log notes of meeting \"{subject}\": held {} ago with no notes, {} at stake",
                if ago < 2.0 {
                    format!("{:.0} hours", ago * 24.0)
                } else {
                    format!("{ago:.0} days")
                },
                money(value)
            ),
        });
    }
    out
}

fn onboard_won_deals(
    ix: &Index<'_>,
    cfg: &NbaConfig,
    rep: Id,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for d in ix.world.deals.iter().filter(|d| {
        d.owner_id == Some(rep)
            && d.status == DealStatus::Won
            && d.closed_at
                .is_some_and(|t| t <= now && days(t, now) <= cfg.onboarding_window_days)
    }) {
        let closed = d.closed_at.expect("filtered");
        let has_task = ix.world.tasks.iter().any(|t| {
            t.deal_id == Some(d.id)
                && (t.created_at >= closed || t.due_at.is_some_and(|due| due >= closed))
        });
        if has_task {
            continue;
        }
        let ago = days(closed, now);
        out.push(Candidate {
            rule: Rule::OnboardWonDeal,
            record_type: "deal",
            record_id: d.id,
            label: d.name.clone(),
            company_id: d.company_id,
            facts: Facts {
                probability: cfg.onboarding_probability,
                probability_source: "default",
                value: d.value,
                urgency: urgency(cfg, ago),
                days_overdue: Some(ago),
                ..Facts::default()
            },
            reason: format!(
                "Plan onboarding for won deal {}: won {ago:.0} days ago, {} and no onboarding task yet",
                d.name,
                money(d.value)
            ),
        });
    }
    out
}
