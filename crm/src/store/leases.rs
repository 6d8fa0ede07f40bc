//! What several `rapport serve` processes on one database must agree on,
//! kept in the database: who runs a chat session's turn now (a lease that
//! expires if its holder dies) and how many requests each API key has left
//! (a token bucket per key).
//!
//! Both use the clock of the process that calls (milliseconds since the
//! epoch, stored as integers so SQLite and PostgreSQL compute alike). Servers
//! on one database keep their clocks in step (NTP); a skew of a second moves
//! a lease's expiry by a second, which its length (tens of seconds) absorbs.

use chrono::Utc;
use sea_query::{Alias, Expr, OnConflict, Query};

use super::Store;
use super::audit::f;
use crate::error::{Error, Result};
use crate::model::Id;
use crate::schema::{FieldDef, FieldType};

/// Tokens are kept in thousandths, as integers: one type on both databases.
const MILLI: f64 = 1000.0;

const BUCKET_FIELDS: &[FieldDef] = &[f("tokens", FieldType::Int), f("at_ms", FieldType::Int)];

/// What [`Store::take_rate_tokens`] gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateGrant {
    /// Whole tokens taken from the key's bucket (0 to the number asked).
    pub granted: u32,
    /// With none granted: seconds until the bucket holds one again.
    pub wait_secs: f64,
}

/// The limits of a token bucket: `rate` tokens a second, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub rate: f64,
    pub burst: f64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Takes the lease of chat session `session_id` for `holder` (a token
    /// unique to one turn) for `ttl`, unless another holder's lease is still
    /// live; `true` if taken. One conditional upsert: of two servers asking
    /// at once, exactly one gets it. The session must exist.
    pub async fn take_session_lease(
        &self,
        session_id: Id,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let now = now_ms();
        let mut q = Query::insert();
        q.into_table(Alias::new("session_leases"))
            .columns(["session_id", "holder", "expires_at_ms"].map(Alias::new))
            .values_panic([
                session_id.into(),
                holder.into(),
                now.saturating_add(ms(ttl)).into(),
            ])
            .on_conflict(
                OnConflict::column(Alias::new("session_id"))
                    .update_columns([Alias::new("holder"), Alias::new("expires_at_ms")])
                    .action_and_where(
                        Expr::col((Alias::new("session_leases"), Alias::new("expires_at_ms")))
                            .lte(now),
                    )
                    .to_owned(),
            );
        let n: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        Ok(n? == 1)
    }

    /// Extends `holder`'s lease of the session to `ttl` from now; `false` if
    /// it holds it no more (it expired and another holder took it).
    pub async fn renew_session_lease(
        &self,
        session_id: Id,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let mut q = Query::update();
        q.table(Alias::new("session_leases"))
            .value(
                Alias::new("expires_at_ms"),
                now_ms().saturating_add(ms(ttl)),
            )
            .and_where(Expr::col(Alias::new("session_id")).eq(session_id))
            .and_where(Expr::col(Alias::new("holder")).eq(holder));
        let n: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        Ok(n? == 1)
    }

    /// Gives `holder`'s lease of the session up; `false` if it held none.
    pub async fn release_session_lease(&self, session_id: Id, holder: &str) -> Result<bool> {
        let mut q = Query::delete();
        q.from_table(Alias::new("session_leases"))
            .and_where(Expr::col(Alias::new("session_id")).eq(session_id))
            .and_where(Expr::col(Alias::new("holder")).eq(holder));
        let n: Result<u64> = in_tx!(self, |tx| tx.conn().execute(&q).await?);
        Ok(n? == 1)
    }

    /// Takes up to `want` tokens from API key `key_id`'s bucket, refilled
    /// first for the time since it was last touched. A new bucket starts
    /// full. The bucket's row is locked for the read and the write (SQLite:
    /// the first statement makes the transaction the database's one writer),
    /// so concurrent takes from any number of processes add up.
    pub async fn take_rate_tokens(
        &self,
        key_id: Id,
        want: u32,
        limits: Bucket,
    ) -> Result<RateGrant> {
        let now = now_ms();
        let burst_milli = (limits.burst * MILLI).round() as i64;
        let mut tx = self.begin().await?;
        let mut seed = Query::insert();
        seed.into_table(Alias::new("rate_buckets"))
            .columns(["key_id", "tokens", "at_ms"].map(Alias::new))
            .values_panic([key_id.into(), burst_milli.into(), now.into()])
            .on_conflict(
                OnConflict::column(Alias::new("key_id"))
                    .do_nothing()
                    .to_owned(),
            );
        tx.conn().execute(&seed).await?;
        let mut read = Query::select();
        read.columns(BUCKET_FIELDS.iter().map(|fd| Alias::new(fd.name)))
            .from(Alias::new("rate_buckets"))
            .and_where(Expr::col(Alias::new("key_id")).eq(key_id))
            .lock(sea_query::LockType::Update);
        let row = tx
            .conn()
            .fetch_maps(&read, BUCKET_FIELDS)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(format!("the rate bucket of key {key_id} vanished")))?;
        let stored = row["tokens"].as_i64().unwrap_or(0) as f64 / MILLI;
        let at = row["at_ms"].as_i64().unwrap_or(now);
        let (grant, left) = refill_and_take(stored, (now - at).max(0), want, limits);
        let mut write = Query::update();
        write
            .table(Alias::new("rate_buckets"))
            .value(Alias::new("tokens"), (left * MILLI).round() as i64)
            .value(Alias::new("at_ms"), now.max(at))
            .and_where(Expr::col(Alias::new("key_id")).eq(key_id));
        tx.conn().execute(&write).await?;
        tx.commit().await?;
        Ok(grant)
    }
}

/// The bucket after `elapsed_ms` of refill and a take of up to `want` whole
/// tokens: what was granted and what is left.
fn refill_and_take(stored: f64, elapsed_ms: i64, want: u32, limits: Bucket) -> (RateGrant, f64) {
    let rate = limits.rate.max(0.001);
    let available = (stored + elapsed_ms as f64 / 1000.0 * rate).min(limits.burst);
    let granted = available.floor().clamp(0.0, f64::from(want)) as u32;
    let left = available - f64::from(granted);
    let wait_secs = if granted == 0 {
        (1.0 - available).max(0.0) / rate
    } else {
        0.0
    };
    (RateGrant { granted, wait_secs }, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let b = Bucket {
            rate: 2.0,
            burst: 3.0,
        };
        let (g, left) = refill_and_take(3.0, 0, 5, b);
        assert_eq!(g.granted, 3);
        assert_eq!(left, 0.0);
        let (g, left) = refill_and_take(0.0, 250, 1, b);
        assert_eq!(g.granted, 0);
        assert!((g.wait_secs - 0.25).abs() < 1e-9, "{g:?}");
        assert!((left - 0.5).abs() < 1e-9);
        // Never above the burst, however long it rested.
        let (g, left) = refill_and_take(1.0, 60_000, 2, b);
        assert_eq!(g.granted, 2);
        assert!((left - 1.0).abs() < 1e-9);
    }
}
