//! What the web app needs to let people sign in: a password hash per user,
//! browser sessions and the record of sign-in attempts.
//!
//! Hashing passwords is the caller's job (the web crate uses argon2id); this
//! module only stores and returns the PHC string, and never through the
//! generic record code, so no listing, export or audit entry carries it.
//! A session's token is 32 random bytes made here and returned once; the
//! table keeps its SHA-256 (as API keys do), so the table cannot be replayed
//! as cookies.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sea_query::{Alias, Expr, Query};
use serde::{Deserialize, Serialize};

use super::audit::f;
use super::conn::Conn;
use super::keys::hash_key;
use super::records::now;
use super::sql::{col, value};
use super::{Pool, Store};
use crate::error::{Error, Result};
use crate::model::{Ctx, Id, Source, User, Workspace};
use crate::schema::{FieldDef, FieldType, Scalar};

/// A browser session, without its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    pub id: Id,
    pub workspace_id: Id,
    pub user_id: Id,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session just created: the only time its token exists outside the browser.
#[derive(Debug, Clone)]
pub struct NewWebSession {
    pub session: WebSession,
    pub token: String,
}

/// A user who has a password, as a sign-in form needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub user_id: Id,
    pub workspace_id: Id,
    /// The PHC string (`$argon2id$…`).
    pub password_hash: String,
}

/// Failed sign-ins within a window, by the two keys the limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedSignins {
    pub by_email: i64,
    pub by_client: i64,
}

const SESSION_FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("workspace_id", FieldType::Id),
    f("user_id", FieldType::Int),
    f("created_at", FieldType::Timestamp),
    f("expires_at", FieldType::Timestamp),
    f("revoked_at", FieldType::Timestamp),
];

const CREDENTIAL_FIELDS: &[FieldDef] = &[
    f("user_id", FieldType::Int),
    f("workspace_id", FieldType::Id),
    f("password_hash", FieldType::Text),
];

const WORKSPACE_FIELDS: &[FieldDef] = &[
    f("id", FieldType::Id),
    f("name", FieldType::Text),
    f("created_at", FieldType::Timestamp),
];

fn ts(t: DateTime<Utc>) -> sea_query::Value {
    value(&Scalar::Timestamp(t))
}

fn token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn select_sessions() -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(SESSION_FIELDS.iter().map(|fd| Alias::new(fd.name)))
        .from(Alias::new("web_sessions"));
    q
}

async fn fetch_sessions(
    mut conn: Conn<'_>,
    q: &sea_query::SelectStatement,
) -> Result<Vec<WebSession>> {
    conn.fetch_maps(q, SESSION_FIELDS)
        .await?
        .into_iter()
        .map(super::records::from_map)
        .collect()
}

async fn count(mut conn: Conn<'_>, q: &sea_query::SelectStatement) -> Result<i64> {
    Ok(conn.fetch_int(q).await?.unwrap_or_default())
}

impl Store {
    /// Sets (or with `None` clears) a user's password hash. The user must be
    /// in the context's workspace.
    pub async fn set_password_hash(
        &self,
        ctx: &Ctx,
        user_id: Id,
        hash: Option<&str>,
    ) -> Result<()> {
        let mut q = Query::update();
        q.table(Alias::new("users"))
            .value(
                Alias::new("password_hash"),
                sea_query::Value::String(hash.map(|h| Box::new(h.to_owned()))),
            )
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("id").eq(user_id));
        let changed: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        if changed? == 0 {
            return Err(Error::invalid(
                "user_id",
                format!("no user with id {user_id} in this workspace"),
            ));
        }
        Ok(())
    }

    /// The users with this email (in any workspace) who have a password.
    pub async fn credentials_for_email(&self, email: &str) -> Result<Vec<Credential>> {
        let mut q = Query::select();
        q.expr_as(Expr::col(Alias::new("id")), Alias::new("user_id"))
            .columns([Alias::new("workspace_id"), Alias::new("password_hash")])
            .from(Alias::new("users"))
            .and_where(col("email").eq(email.trim().to_lowercase()))
            .and_where(Expr::col(Alias::new("password_hash")).is_not_null())
            .order_by(Alias::new("id"), sea_query::Order::Asc);
        let rows = with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, CREDENTIAL_FIELDS).await?
        });
        rows.into_iter().map(super::records::from_map).collect()
    }

    /// Opens a session for a user of the context's workspace, valid for `ttl`.
    pub async fn create_web_session(
        &self,
        ctx: &Ctx,
        user_id: Id,
        ttl: Duration,
    ) -> Result<NewWebSession> {
        let token = token();
        let created = now();
        let mut q = Query::insert();
        q.into_table(Alias::new("web_sessions"))
            .columns(
                [
                    "workspace_id",
                    "user_id",
                    "token_hash",
                    "created_at",
                    "expires_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                ctx.workspace_id.into(),
                user_id.into(),
                hash_key(&token).into(),
                ts(created).into(),
                ts(created + ttl).into(),
            ])
            .returning_col(Alias::new("id"));
        let session: Result<Option<WebSession>> = in_tx!(self, |tx| {
            let id = tx
                .conn()
                .fetch_int(&q)
                .await?
                .ok_or_else(|| Error::Internal("insert returned no id".into()))?;
            let mut sel = select_sessions();
            sel.and_where(col("id").eq(id));
            fetch_sessions(tx.conn(), &sel).await?.pop()
        });
        let session =
            session?.ok_or_else(|| Error::Internal("web session vanished after insert".into()))?;
        Ok(NewWebSession { session, token })
    }

    /// The live session a token opens (not revoked, not expired) and its user.
    pub async fn web_session_for_token(&self, token: &str) -> Result<Option<(WebSession, User)>> {
        let mut q = select_sessions();
        q.and_where(col("token_hash").eq(hash_key(token)))
            .and_where(Expr::col(Alias::new("revoked_at")).is_null());
        let found: Result<Vec<WebSession>> = with_pooled!(self, |c| fetch_sessions(c, &q).await);
        let Some(session) = found?.pop() else {
            return Ok(None);
        };
        if session.expires_at <= Utc::now() {
            return Ok(None);
        }
        let ctx = Ctx::new(session.workspace_id, None, Source::Web);
        let user: User = self.get(&ctx, session.user_id).await?;
        Ok(Some((session, user)))
    }

    /// Revokes the session a token opens; `false` if it was not live.
    pub async fn revoke_web_session(&self, token: &str) -> Result<bool> {
        let mut q = Query::update();
        q.table(Alias::new("web_sessions"))
            .value(Alias::new("revoked_at"), ts(now()))
            .and_where(col("token_hash").eq(hash_key(token)))
            .and_where(Expr::col(Alias::new("revoked_at")).is_null());
        let n: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        Ok(n? > 0)
    }

    /// Revokes every live session of a user (a new password signs them out
    /// everywhere). Returns how many were live.
    pub async fn revoke_web_sessions_of(&self, ctx: &Ctx, user_id: Id) -> Result<u64> {
        let mut q = Query::update();
        q.table(Alias::new("web_sessions"))
            .value(Alias::new("revoked_at"), ts(now()))
            .and_where(col("workspace_id").eq(ctx.workspace_id))
            .and_where(col("user_id").eq(user_id))
            .and_where(Expr::col(Alias::new("revoked_at")).is_null());
        in_tx!(self, |tx| tx.conn().execute(&q).await?)
    }

    /// Records one sign-in attempt. `email` is kept lower-cased; `client` is
    /// the address the request came from.
    pub async fn record_signin_attempt(
        &self,
        email: &str,
        client: &str,
        succeeded: bool,
    ) -> Result<()> {
        let mut q = Query::insert();
        q.into_table(Alias::new("signin_attempts"))
            .columns(["email", "client", "succeeded", "at"].map(Alias::new))
            .values_panic([
                email.trim().to_lowercase().into(),
                client.into(),
                succeeded.into(),
                ts(now()).into(),
            ]);
        in_tx!(self, |tx| {
            tx.conn().execute(&q).await?;
        })
    }

    /// Failed sign-ins since `since`, for this email and for this client.
    pub async fn failed_signins_since(
        &self,
        email: &str,
        client: &str,
        since: DateTime<Utc>,
    ) -> Result<FailedSignins> {
        let failed = |column: &str, v: String| {
            let mut q = Query::select();
            q.expr(Expr::cust("COUNT(*)"))
                .from(Alias::new("signin_attempts"))
                .and_where(col(column).eq(v))
                .and_where(col("succeeded").eq(false))
                .and_where(col("at").gte(ts(since)));
            q
        };
        let by_email = failed("email", email.trim().to_lowercase());
        let by_client = failed("client", client.to_owned());
        with_pooled!(self, |c| {
            let mut c = c;
            Ok(FailedSignins {
                by_email: count(c.reborrow(), &by_email).await?,
                by_client: count(c, &by_client).await?,
            })
        })
    }

    /// A workspace by id.
    pub async fn workspace(&self, id: Id) -> Result<Workspace> {
        let mut q = Query::select();
        q.columns(WORKSPACE_FIELDS.iter().map(|fd| Alias::new(fd.name)))
            .from(Alias::new("workspaces"))
            .and_where(col("id").eq(id));
        let rows = with_pooled!(self, |c| {
            let mut c = c;
            c.fetch_maps(&q, WORKSPACE_FIELDS).await?
        });
        rows.into_iter()
            .next()
            .map(super::records::from_map)
            .transpose()?
            .ok_or_else(|| Error::Internal(format!("workspace {id} does not exist")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_long_random_and_distinct() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_ne!(hash_key(&a), a);
    }
}
