//! A small leadforge-shaped bundle written with Polars: enough leads, with a
//! learnable conversion pattern, for import, features, training and scoring.

#![allow(dead_code)]

use std::path::Path;

use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn write(dir: &Path, rel: &str, mut df: DataFrame) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
}

fn s(name: &str, v: Vec<String>) -> Column {
    Column::new(name.into(), v)
}

/// `leads` leads over 30 accounts; leads with many inbound touches convert more.
pub fn bundle(dir: &Path, leads: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let accounts = 30;
    write(
        dir,
        "tables/accounts.parquet",
        DataFrame::new_infer_height(vec![
            s(
                "account_id",
                (0..accounts).map(|i| format!("acct_{i}")).collect(),
            ),
            s(
                "company_name",
                (0..accounts).map(|i| format!("Company {i}")).collect(),
            ),
            s(
                "industry",
                (0..accounts)
                    .map(|i| ["logistics", "retail"][i % 2].into())
                    .collect(),
            ),
            s(
                "region",
                (0..accounts).map(|i| ["US", "UK"][i % 2].into()).collect(),
            ),
            s(
                "employee_band",
                (0..accounts).map(|_| "200-499".into()).collect(),
            ),
            s(
                "estimated_revenue_band",
                (0..accounts).map(|_| "$10M-$50M".into()).collect(),
            ),
            s(
                "process_maturity_band",
                (0..accounts)
                    .map(|i| ["low", "high"][i % 2].into())
                    .collect(),
            ),
            s(
                "created_at",
                (0..accounts).map(|_| "2023-06-01".into()).collect(),
            ),
        ])
        .unwrap(),
    );
    write(
        dir,
        "tables/contacts.parquet",
        DataFrame::new_infer_height(vec![
            s(
                "contact_id",
                (0..leads).map(|i| format!("cnt_{i}")).collect(),
            ),
            s(
                "account_id",
                (0..leads)
                    .map(|i| format!("acct_{}", i % accounts))
                    .collect(),
            ),
            s("job_title", (0..leads).map(|_| "AP Lead".into()).collect()),
            s(
                "role_function",
                (0..leads)
                    .map(|i| ["finance", "ops"][i % 2].into())
                    .collect(),
            ),
            s(
                "seniority",
                (0..leads)
                    .map(|i| ["manager", "director"][i % 2].into())
                    .collect(),
            ),
            s(
                "buyer_role",
                (0..leads).map(|_| "champion".into()).collect(),
            ),
            s(
                "email_domain_type",
                (0..leads).map(|_| "corporate".into()).collect(),
            ),
            s(
                "created_at",
                (0..leads).map(|_| "2023-09-01".into()).collect(),
            ),
        ])
        .unwrap(),
    );
    let mut labels = Vec::new();
    let (mut t_id, mut t_lead, mut t_at, mut t_type, mut t_dir) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..leads {
        let inbound = rng.random_range(0..6);
        let outbound = rng.random_range(0..4);
        for k in 0..(inbound + outbound) {
            t_id.push(format!("touch_{i}_{k}"));
            t_lead.push(format!("lead_{i}"));
            t_at.push(format!("2024-01-{:02}", 2 + (k % 25)));
            t_type.push(["email", "webinar", "call"][k % 3].to_owned());
            t_dir.push(if k < inbound { "inbound" } else { "outbound" }.to_owned());
        }
        labels.push(rng.random_bool(if inbound >= 3 { 0.6 } else { 0.1 }));
    }
    let n_touch = t_id.len();
    write(
        dir,
        "tables/touches.parquet",
        DataFrame::new_infer_height(vec![
            s("touch_id", t_id),
            s("lead_id", t_lead),
            s("touch_timestamp", t_at),
            s("touch_type", t_type),
            s(
                "touch_channel",
                (0..n_touch).map(|_| "inbound_marketing".into()).collect(),
            ),
            s("touch_direction", t_dir),
        ])
        .unwrap(),
    );
    write(
        dir,
        "tables/leads.parquet",
        DataFrame::new_infer_height(vec![
            s("lead_id", (0..leads).map(|i| format!("lead_{i}")).collect()),
            s(
                "contact_id",
                (0..leads).map(|i| format!("cnt_{i}")).collect(),
            ),
            s(
                "account_id",
                (0..leads)
                    .map(|i| format!("acct_{}", i % accounts))
                    .collect(),
            ),
            s(
                "lead_created_at",
                (0..leads).map(|_| "2024-01-01".into()).collect(),
            ),
            s(
                "lead_source",
                (0..leads)
                    .map(|i| ["inbound_marketing", "sdr_outbound"][i % 2].into())
                    .collect(),
            ),
            s(
                "first_touch_channel",
                (0..leads).map(|_| "email".into()).collect(),
            ),
            s(
                "owner_rep_id",
                (0..leads).map(|i| format!("rep_{}", i % 3)).collect(),
            ),
        ])
        .unwrap(),
    );
    write(
        dir,
        "tables/sessions.parquet",
        DataFrame::new_infer_height(vec![
            s("session_id", vec!["sess_1".into()]),
            s("lead_id", vec!["lead_0".into()]),
            s("session_timestamp", vec!["2024-01-05".into()]),
            s("session_type", vec!["pricing_page".into()]),
            Column::new("page_views".into(), vec![3i64]),
            Column::new("pricing_page_views".into(), vec![2i64]),
            Column::new("demo_page_views".into(), vec![0i64]),
            Column::new("session_duration_seconds".into(), vec![120i64]),
        ])
        .unwrap(),
    );
    write(
        dir,
        "tables/sales_activities.parquet",
        DataFrame::new_infer_height(vec![
            s("activity_id", vec!["act_1".into(), "act_2".into()]),
            s("lead_id", vec!["lead_1".into(), "lead_2".into()]),
            s("rep_id", vec!["rep_0".into(), "rep_1".into()]),
            s(
                "activity_timestamp",
                vec!["2024-01-10".into(), "2024-01-11".into()],
            ),
            s("activity_type", vec!["call".into(), "demo".into()]),
            s(
                "activity_outcome",
                vec!["connected".into(), "demo_completed".into()],
            ),
        ])
        .unwrap(),
    );
    write(
        dir,
        "tables/opportunities.parquet",
        DataFrame::new_infer_height(vec![
            s("opportunity_id", vec!["opp_1".into(), "opp_2".into()]),
            s("lead_id", vec!["lead_1".into(), "lead_2".into()]),
            s("created_at", vec!["2024-01-12".into(), "2024-01-13".into()]),
            s("stage", vec!["negotiation".into(), "closed_lost".into()]),
            Column::new("estimated_acv".into(), vec![50_000i64, 20_000]),
        ])
        .unwrap(),
    );
    let task = "tasks/converted_within_90_days";
    let ids: Vec<String> = (0..leads).map(|i| format!("lead_{i}")).collect();
    let cut = leads * 4 / 5;
    for (name, range) in [("train", 0..cut), ("test", cut..leads)] {
        write(
            dir,
            &format!("{task}/{name}.parquet"),
            DataFrame::new_infer_height(vec![
                s("lead_id", ids[range.clone()].to_vec()),
                Column::new("converted_within_90_days".into(), labels[range].to_vec()),
            ])
            .unwrap(),
        );
    }
}
