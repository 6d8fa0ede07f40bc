//! Each candidate rule on a crafted world (fires when it should, not when it
//! should not), ranking on known values, diversity and the limit, and how
//! feedback hides actions. Pure: no database.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rapport_crm::Id;
use rapport_crm::model::*;
use serde_json::json;

use super::rank::{Strategy, rank};
use super::rules::{Candidate, Facts, Index, Rule, World, candidates};
use super::*;

const REP: Id = 7;
const OTHER: Id = 8;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

fn ago(days: f64) -> DateTime<Utc> {
    now() - Duration::seconds((days * 86_400.0) as i64)
}

fn stage(id: Id, name: &str, p: f64, outcome: StageOutcome) -> Stage {
    Stage {
        id,
        workspace_id: 1,
        pipeline_id: 1,
        name: name.into(),
        position: id,
        probability: p,
        outcome,
        created_at: ago(400.0),
        updated_at: ago(400.0),
    }
}

fn lead(id: Id, status: LeadStatus, created_days_ago: f64) -> Lead {
    Lead {
        id,
        workspace_id: 1,
        name: format!("Lead {id}"),
        email: None,
        company_name: None,
        title: None,
        source: None,
        status,
        owner_id: Some(REP),
        company_id: None,
        contact_id: None,
        converted_at: None,
        custom: Default::default(),
        created_at: ago(created_days_ago),
        updated_at: ago(created_days_ago),
    }
}

fn deal(id: Id, stage_id: Id, value: f64, p: f64, in_stage_days: f64) -> Deal {
    Deal {
        id,
        workspace_id: 1,
        name: format!("Deal {id}"),
        pipeline_id: 1,
        stage_id,
        value,
        currency: "USD".into(),
        probability: p,
        expected_close_date: None,
        status: DealStatus::Open,
        close_reason: None,
        closed_at: None,
        company_id: None,
        lead_id: None,
        owner_id: Some(REP),
        stage_entered_at: ago(in_stage_days),
        contact_ids: vec![],
        custom: Default::default(),
        created_at: ago(in_stage_days + 10.0),
        updated_at: ago(in_stage_days),
    }
}

fn activity(id: Id, kind: ActivityKind, dir: Option<Direction>, days_ago: f64) -> Activity {
    Activity {
        id,
        workspace_id: 1,
        kind,
        direction: dir,
        subject: Some(format!("activity {id}")),
        body: String::new(),
        occurred_at: ago(days_ago),
        duration_seconds: None,
        outcome: None,
        sentiment: None,
        contact_id: None,
        company_id: None,
        deal_id: None,
        lead_id: None,
        owner_id: Some(REP),
        custom: Default::default(),
        created_at: ago(days_ago),
        updated_at: ago(days_ago),
    }
}

fn task(id: Id, due_days_ago: Option<f64>, status: TaskStatus) -> Task {
    Task {
        id,
        workspace_id: 1,
        title: format!("Task {id}"),
        description: None,
        due_at: due_days_ago.map(ago),
        priority: Priority::Normal,
        status,
        assignee_id: Some(REP),
        completed_at: None,
        contact_id: None,
        company_id: None,
        deal_id: None,
        lead_id: None,
        custom: Default::default(),
        created_at: ago(60.0),
        updated_at: ago(60.0),
    }
}

fn company(id: Id) -> Company {
    Company {
        id,
        workspace_id: 1,
        name: format!("Company {id}"),
        domain: None,
        industry: None,
        employees: None,
        annual_revenue: None,
        country: None,
        city: None,
        owner_id: Some(REP),
        custom: Default::default(),
        created_at: ago(300.0),
        updated_at: ago(300.0),
    }
}

fn base_world() -> World {
    World {
        stages: vec![
            stage(1, "Qualification", 0.2, StageOutcome::Open),
            stage(2, "Proposal", 0.5, StageOutcome::Open),
            stage(3, "Won", 1.0, StageOutcome::Won),
        ],
        ..World::default()
    }
}

fn fired(world: &World, rule: Rule) -> Vec<Id> {
    let ix = Index::new(world);
    candidates(&ix, &NbaConfig::default(), REP, now())
        .into_iter()
        .filter(|c| c.rule == rule)
        .map(|c| c.record_id)
        .collect()
}

#[test]
fn follow_up_lead_fires_for_quiet_likely_leads_only() {
    let mut w = base_world();
    // 1: qualified (p 0.40), last outbound 10 days ago → fires.
    w.leads.push(lead(1, LeadStatus::Qualified, 30.0));
    let mut a = activity(100, ActivityKind::Email, Some(Direction::Outbound), 10.0);
    a.lead_id = Some(1);
    w.activities.push(a);
    // 2: qualified but contacted yesterday → does not fire.
    w.leads.push(lead(2, LeadStatus::Qualified, 30.0));
    let mut a = activity(101, ActivityKind::Call, Some(Direction::Outbound), 1.0);
    a.lead_id = Some(2);
    w.activities.push(a);
    // 3: new lead with no engagement (p 0.10 < 0.2) → does not fire.
    w.leads.push(lead(3, LeadStatus::New, 30.0));
    // 4: converted → does not fire.
    w.leads.push(lead(4, LeadStatus::Converted, 30.0));
    // 5: someone else's → not for this rep.
    let mut l = lead(5, LeadStatus::Qualified, 30.0);
    l.owner_id = Some(OTHER);
    w.leads.push(l);
    // 6: new, but a lead-score model says 0.8 → fires.
    w.leads.push(lead(6, LeadStatus::New, 20.0));
    w.lead_scores.insert(6, 0.8);
    // 3 again with a low model score stays out.
    w.lead_scores.insert(3, 0.05);
    assert_eq!(fired(&w, Rule::FollowUpLead), vec![1, 6]);

    let ix = Index::new(&w);
    let c = candidates(&ix, &NbaConfig::default(), REP, now());
    let one = c.iter().find(|c| c.record_id == 1).unwrap();
    assert_eq!(one.facts.probability_source, "heuristic");
    assert_eq!(
        one.reason,
        "Follow up lead Lead 1: est. 40% to convert (no model yet), not contacted for 10 days, $5,000 at stake"
    );
    let six = c.iter().find(|c| c.record_id == 6).unwrap();
    assert!(six.reason.contains("lead score 80%"), "{}", six.reason);
    assert!(six.reason.contains("never contacted, created 20 days ago"));
}

#[test]
fn stalled_deal_uses_the_stage_history_median() {
    let mut w = base_world();
    // History: five exits from Proposal after 10 days each → typical 10 days.
    for i in 0..5 {
        w.stage_changes.push(StageChange {
            id: i,
            deal_id: 900 + i,
            from_stage_id: Some(2),
            to_stage_id: 3,
            changed_by: None,
            changed_at: ago(100.0),
            seconds_in_previous: Some(10 * 86_400),
        });
    }
    w.deals.push(deal(1, 2, 40_000.0, 0.5, 16.0)); // 16 > 1.5 × 10 → fires
    w.deals.push(deal(2, 2, 40_000.0, 0.5, 14.0)); // 14 < 15 → not
    w.deals.push(deal(3, 1, 40_000.0, 0.2, 22.0)); // no history: default 14 → 22 > 21 fires
    let mut won = deal(4, 3, 40_000.0, 1.0, 90.0); // closed: never stalled
    won.status = DealStatus::Won;
    w.deals.push(won);
    assert_eq!(fired(&w, Rule::ReviveStalledDeal), vec![1, 3]);
    let ix = Index::new(&w);
    let c = candidates(&ix, &NbaConfig::default(), REP, now());
    let d1 = c.iter().find(|c| c.record_id == 1).unwrap();
    assert_eq!(
        d1.reason,
        "Revive deal Deal 1: 16 days in Proposal, 1.6× the typical 10 days; $40,000 at 50%"
    );
}

#[test]
fn close_date_passed_fires_only_for_open_deals_past_their_date() {
    let mut w = base_world();
    let mut d = deal(1, 1, 10_000.0, 0.2, 1.0);
    d.expected_close_date = Some(NaiveDate::from_ymd_opt(2026, 6, 5).unwrap());
    w.deals.push(d);
    let mut d = deal(2, 1, 10_000.0, 0.2, 1.0);
    d.expected_close_date = Some(NaiveDate::from_ymd_opt(2026, 6, 20).unwrap());
    w.deals.push(d);
    let mut d = deal(3, 1, 10_000.0, 0.2, 1.0);
    d.expected_close_date = Some(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap());
    d.status = DealStatus::Lost;
    w.deals.push(d);
    assert_eq!(fired(&w, Rule::CloseDatePassed), vec![1]);
}

#[test]
fn overdue_task_fires_for_open_past_due_tasks_of_the_rep() {
    let mut w = base_world();
    w.tasks.push(task(1, Some(2.0), TaskStatus::Open)); // fires
    w.tasks.push(task(2, Some(-2.0), TaskStatus::Open)); // due in 2 days
    w.tasks.push(task(3, Some(5.0), TaskStatus::Done)); // done
    w.tasks.push(task(4, None, TaskStatus::Open)); // no due date
    let mut t = task(5, Some(5.0), TaskStatus::Open);
    t.assignee_id = Some(OTHER);
    w.tasks.push(t);
    assert_eq!(fired(&w, Rule::OverdueTask), vec![1]);
}

#[test]
fn unanswered_inbound_fires_until_someone_replies() {
    let mut w = base_world();
    let mut a = activity(1, ActivityKind::Email, Some(Direction::Inbound), 2.0);
    a.contact_id = Some(50);
    a.sentiment = Some(-0.4);
    w.activities.push(a);
    // Contact 51 wrote and got an answer.
    let mut a = activity(2, ActivityKind::Email, Some(Direction::Inbound), 3.0);
    a.contact_id = Some(51);
    w.activities.push(a);
    let mut a = activity(3, ActivityKind::Email, Some(Direction::Outbound), 2.5);
    a.contact_id = Some(51);
    w.activities.push(a);
    // Too fresh (2 hours) and too old (30 days).
    let mut a = activity(4, ActivityKind::Call, Some(Direction::Inbound), 2.0 / 24.0);
    a.contact_id = Some(52);
    w.activities.push(a);
    let mut a = activity(5, ActivityKind::Email, Some(Direction::Inbound), 30.0);
    a.contact_id = Some(53);
    w.activities.push(a);
    // An inbound note is not a message to answer.
    let mut a = activity(6, ActivityKind::Note, Some(Direction::Inbound), 2.0);
    a.contact_id = Some(54);
    w.activities.push(a);
    assert_eq!(fired(&w, Rule::UnansweredInbound), vec![1]);
    let ix = Index::new(&w);
    let c = candidates(&ix, &NbaConfig::default(), REP, now());
    assert_eq!(
        c[0].reason,
        "Answer inbound email \"activity 1\": unanswered for 2 days, sentiment -0.40, $1,000 at stake"
    );
}

#[test]
fn account_at_risk_fires_on_churn_score_or_a_negative_run() {
    let mut w = base_world();
    w.companies
        .extend([company(1), company(2), company(3), company(4)]);
    w.churn_scores.insert(1, 0.7); // fires: churn model
    w.churn_scores.insert(2, 0.3); // below threshold, no run
    // 3: last three interactions negative → fires without a model.
    for (i, s) in [(10, -0.5), (11, -0.3), (12, -0.6)] {
        let mut a = activity(
            i,
            ActivityKind::Email,
            Some(Direction::Inbound),
            (i - 9) as f64,
        );
        a.company_id = Some(3);
        a.sentiment = Some(s);
        w.activities.push(a);
    }
    // 4: two negative, the latest positive → no run.
    for (i, s, d) in [(20, 0.4, 1.0), (21, -0.5, 2.0), (22, -0.6, 3.0)] {
        let mut a = activity(i, ActivityKind::Email, Some(Direction::Inbound), d);
        a.company_id = Some(4);
        a.sentiment = Some(s);
        w.activities.push(a);
    }
    // A churned account is past saving.
    let mut gone = company(5);
    gone.custom.insert("churned".into(), json!(true));
    w.companies.push(gone);
    w.churn_scores.insert(5, 0.99);
    assert_eq!(fired(&w, Rule::AccountAtRisk), vec![1, 3]);
    let ix = Index::new(&w);
    let c = candidates(&ix, &NbaConfig::default(), REP, now());
    let three = c
        .iter()
        .find(|c| c.rule == Rule::AccountAtRisk && c.record_id == 3)
        .unwrap();
    assert_eq!(
        three.reason,
        "Check in with Company 3: last 3 interactions negative (mean sentiment -0.47); $10,000 of won business"
    );
}

#[test]
fn meeting_without_notes_fires_until_a_note_is_logged() {
    let mut w = base_world();
    let mut m = activity(1, ActivityKind::Meeting, None, 1.0);
    m.deal_id = Some(70);
    w.activities.push(m);
    let mut m = activity(2, ActivityKind::Meeting, None, 1.0);
    m.deal_id = Some(71);
    w.activities.push(m);
    let mut n = activity(3, ActivityKind::Note, Some(Direction::Internal), 0.5);
    n.deal_id = Some(71);
    w.activities.push(n);
    let mut m = activity(4, ActivityKind::Meeting, None, 1.0); // has a body
    m.body = "Agreed on pilot scope".into();
    w.activities.push(m);
    w.activities
        .push(activity(5, ActivityKind::Meeting, None, 1.0 / 24.0)); // within the grace hours
    assert_eq!(fired(&w, Rule::MeetingWithoutNotes), vec![1]);
}

#[test]
fn won_deal_without_onboarding_task_fires() {
    let mut w = base_world();
    for (id, closed) in [(1, 3.0), (2, 3.0), (3, 90.0)] {
        let mut d = deal(id, 3, 20_000.0, 1.0, 5.0);
        d.status = DealStatus::Won;
        d.closed_at = Some(ago(closed));
        w.deals.push(d);
    }
    let mut t = task(9, Some(-5.0), TaskStatus::Open);
    t.deal_id = Some(2);
    t.created_at = ago(1.0);
    w.tasks.push(t);
    assert_eq!(fired(&w, Rule::OnboardWonDeal), vec![1]);
}

#[test]
fn rules_work_with_an_empty_world() {
    let w = World::default();
    assert!(fired(&w, Rule::FollowUpLead).is_empty());
}

fn cand(
    rule: Rule,
    rt: &'static str,
    id: Id,
    company: Option<Id>,
    p: f64,
    v: f64,
    u: f64,
) -> Candidate {
    Candidate {
        rule,
        record_type: rt,
        record_id: id,
        label: format!("{rt} {id}"),
        company_id: company,
        facts: Facts {
            probability: p,
            probability_source: "test",
            value: v,
            urgency: u,
            ..Facts::default()
        },
        reason: String::new(),
    }
}

#[test]
fn ranking_by_expected_value_and_by_urgency() {
    let cs = vec![
        cand(Rule::OverdueTask, "task", 1, None, 0.5, 1_000.0, 3.0), // EV 1,500
        cand(Rule::ReviveStalledDeal, "deal", 2, None, 0.5, 50_000.0, 1.2), // EV 30,000
        cand(Rule::FollowUpLead, "lead", 3, None, 0.2, 5_000.0, 2.0), // EV 2,000
        cand(
            Rule::AccountAtRisk,
            "company",
            4,
            Some(4),
            0.7,
            100_000.0,
            1.0,
        ), // EV 70,000
    ];
    let cfg = NbaConfig::default();
    let ev = rank(cs.clone(), Strategy::ExpectedValue, &cfg, 10);
    let order: Vec<Id> = ev.iter().map(|r| r.candidate.record_id).collect();
    assert_eq!(order, vec![4, 2, 3, 1]);
    assert!((ev[0].priority - 70_000.0).abs() < 1e-6);
    assert_eq!(
        ev.iter().map(|r| r.rank).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let ur = rank(cs, Strategy::Urgency, &cfg, 10);
    let order: Vec<Id> = ur.iter().map(|r| r.candidate.record_id).collect();
    // Urgency 3.0, 2.0, 1.2, then 1.0.
    assert_eq!(order, vec![1, 3, 2, 4]);
}

#[test]
fn diversity_caps_actions_per_account_and_per_record_and_the_limit_holds() {
    let mut cs = Vec::new();
    // Five deals of account 1, each worth more than anything else.
    for i in 0..5 {
        cs.push(cand(
            Rule::ReviveStalledDeal,
            "deal",
            i,
            Some(1),
            0.5,
            100_000.0 - i as f64,
            1.0,
        ));
    }
    // The same deal 0 also past its close date: only its best action stays.
    cs.push(cand(
        Rule::CloseDatePassed,
        "deal",
        0,
        Some(1),
        0.5,
        100_000.0,
        1.1,
    ));
    for i in 10..14 {
        cs.push(cand(
            Rule::OverdueTask,
            "task",
            i,
            Some(2),
            0.5,
            1_000.0,
            1.0,
        ));
    }
    cs.push(cand(
        Rule::FollowUpLead,
        "lead",
        20,
        None,
        0.5,
        5_000.0,
        1.0,
    ));
    let cfg = NbaConfig::default(); // max 2 per account
    let r = rank(cs.clone(), Strategy::ExpectedValue, &cfg, 10);
    let keys: Vec<String> = r.iter().map(|x| x.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            "close_date_passed:deal:0",
            "revive_stalled_deal:deal:1",
            "follow_up_lead:lead:20",
            "overdue_task:task:10",
            "overdue_task:task:11",
        ]
    );
    let r = rank(cs, Strategy::ExpectedValue, &cfg, 3);
    assert_eq!(r.len(), 3);
}

#[test]
fn feedback_hides_actions_for_their_time() {
    let cfg = NbaConfig::default();
    let fb = |status, created: f64, until: Option<f64>| rapport_crm::Feedback {
        id: 1,
        user_id: REP,
        action_key: "overdue_task:task:1".into(),
        rule: "overdue_task".into(),
        record_type: "task".into(),
        record_id: 1,
        status,
        reason: None,
        snoozed_until: until.map(ago),
        created_at: ago(created),
        outcome: None,
        outcome_at: None,
    };
    use rapport_crm::FeedbackStatus::*;
    assert!(hidden(&fb(Done, 1.0, None), &cfg, now()));
    assert!(!hidden(&fb(Done, 8.0, None), &cfg, now()));
    assert!(hidden(&fb(Dismissed, 20.0, None), &cfg, now()));
    assert!(!hidden(&fb(Dismissed, 31.0, None), &cfg, now()));
    assert!(hidden(&fb(Snoozed, 1.0, Some(-1.0)), &cfg, now()));
    assert!(!hidden(&fb(Snoozed, 3.0, Some(1.0)), &cfg, now()));
}

#[test]
fn action_keys_parse_and_bad_ones_are_refused() {
    let (rule, rt, id) = parse_key("overdue_task:task:12").unwrap();
    assert_eq!((rule, rt.name(), id), (Rule::OverdueTask, "task", 12));
    for bad in [
        "",
        "overdue_task:task",
        "nope:task:1",
        "overdue_task:thing:1",
        "overdue_task:task:x",
        "a:b:c:d",
    ] {
        assert!(parse_key(bad).is_err(), "{bad}");
    }
}

#[test]
fn config_fills_defaults_and_refuses_unknown_fields() {
    let c: NbaConfig = serde_json::from_value(json!({"lead_followup_days": 7.0})).unwrap();
    assert_eq!(c.lead_followup_days, 7.0);
    assert_eq!(c.max_per_account, NbaConfig::default().max_per_account);
    assert!(serde_json::from_value::<NbaConfig>(json!({"lead_folowup_days": 7.0})).is_err());
}
