//! `rapport keys create|list|revoke`: the API keys of `rapport serve`. A key
//! acts as one user of the workspace (with that user's role); only its hash is
//! stored, so the key is printed once, at creation.

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_crm::model::User;
use rapport_crm::{ApiKey, Id};
use serde_json::json;

use super::GlobalArgs;
use super::db;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key acting as `--user` (default: `--as`, or the workspace admin); prints it once.
    Create(CreateArgs),
    /// The workspace's keys (prefix, user, created, revoked); never the keys themselves.
    List(ListArgs),
    /// Revoke a key by id: requests with it are refused from now on.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name to tell the key apart ("zapier", "dana's laptop").
    #[arg(long, default_value = "api")]
    pub name: String,
    /// The user the key acts as (email, name or first name).
    #[arg(long)]
    pub user: Option<String>,
    /// Print JSON (`{"id", "key", …}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (see `rapport keys list`).
    pub id: Id,
}

pub async fn run(g: &GlobalArgs, cmd: KeysCmd) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    match cmd {
        KeysCmd::Create(args) => {
            let user = match &args.user {
                Some(who) => db::find_user(&s.store, &s.ctx, who).await?,
                None => {
                    let id = s.ctx.actor_id.context("no acting user")?;
                    s.store.get::<User>(&s.ctx, id).await?
                }
            };
            let new = s.store.create_api_key(&s.ctx, user.id, &args.name).await?;
            if args.json {
                println!(
                    "{}",
                    json!({"id": new.key.id, "key": new.secret, "name": new.key.name,
                           "user": user.email, "role": user.role, "prefix": new.key.prefix})
                );
            } else {
                println!("{}", new.secret);
                eprintln!(
                    "key {} ({}) acts as {} <{}>, role {:?}. It is shown only now: keep it safe.",
                    new.key.id, new.key.name, user.name, user.email, user.role
                );
            }
        }
        KeysCmd::List(args) => {
            let keys = s.store.api_keys(&s.ctx).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_keys(&keys);
            }
        }
        KeysCmd::Revoke(args) => {
            let key = s.store.revoke_api_key(&s.ctx, args.id).await?;
            println!(
                "revoked key {} ({}, {}) at {}",
                key.id,
                key.name,
                key.prefix,
                key.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
        }
    }
    s.store.close().await;
    Ok(())
}

fn print_keys(keys: &[ApiKey]) {
    if keys.is_empty() {
        println!("no API keys: create one with `rapport keys create`");
        return;
    }
    println!(
        "{:>4}  {:<12} {:<20} {:>6}  {:<20} revoked",
        "id", "prefix", "name", "user", "created"
    );
    for k in keys {
        println!(
            "{:>4}  {:<12} {:<20} {:>6}  {:<20} {}",
            k.id,
            k.prefix,
            k.name,
            k.user_id,
            k.created_at.format("%Y-%m-%d %H:%M"),
            k.revoked_at
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
}
