//! `rapport users invite|set-password`: people who sign in to the web app.
//! `invite` adds a user to the workspace (or finds the existing one) with a
//! temporary password shown once; `set-password` reads a new password from
//! standard input, stores its argon2id hash and signs the user out of every
//! browser.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use clap::{Args, Subcommand};
use rapport_crm::model::User;
use rapport_crm::{Filter, ListQuery};
use rapport_web::auth::{MIN_PASSWORD, hash_password, temporary_password};
use serde_json::json;

use super::GlobalArgs;
use super::db;

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a user who can sign in; prints a temporary password once.
    Invite(InviteArgs),
    /// Set a user's password (read from standard input); ends their browser sessions.
    SetPassword(SetPasswordArgs),
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The email they sign in with.
    pub email: String,
    /// Their name as colleagues see it.
    #[arg(long)]
    pub name: String,
    /// admin, manager, rep or viewer.
    #[arg(long, default_value = "rep")]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// The user's email (or name).
    pub email: String,
}

pub async fn run(g: &GlobalArgs, cmd: UsersCmd) -> anyhow::Result<()> {
    let s = db::open(g).await?;
    match cmd {
        UsersCmd::Invite(args) => {
            let email = args.email.trim().to_lowercase();
            let existing = s
                .store
                .list::<User>(
                    &s.ctx,
                    &ListQuery::filtered(Filter::eq("email", email.as_str())),
                )
                .await?
                .items
                .pop();
            let user = match existing {
                Some(u) => u,
                None => {
                    s.store
                        .create::<User>(
                            &s.ctx,
                            json!({"name": args.name, "email": email, "role": args.role}),
                        )
                        .await?
                }
            };
            let password = temporary_password();
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.store
                .set_password_hash(&s.ctx, user.id, Some(&hash))
                .await?;
            s.store.revoke_web_sessions_of(&s.ctx, user.id).await?;
            println!("{password}");
            eprintln!(
                "{} <{}> ({:?}) can sign in to workspace {:?} with the password above; \
                 it is shown only now. They should change it: rapport users set-password {}",
                user.name, user.email, user.role, g.workspace, user.email
            );
        }
        UsersCmd::SetPassword(args) => {
            let user = db::find_user(&s.store, &s.ctx, &args.email).await?;
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!(
                    "New password for {} (at least {MIN_PASSWORD} characters): ",
                    user.email
                );
                std::io::stderr().flush().ok();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.chars().count() < MIN_PASSWORD {
                anyhow::bail!("a password needs at least {MIN_PASSWORD} characters");
            }
            let hash = hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.store
                .set_password_hash(&s.ctx, user.id, Some(&hash))
                .await?;
            let ended = s.store.revoke_web_sessions_of(&s.ctx, user.id).await?;
            eprintln!(
                "password set for {} <{}>; {ended} browser session(s) ended",
                user.name, user.email
            );
        }
    }
    s.store.close().await;
    Ok(())
}
