//! Test fixtures shared by every crate's tests (feature `testing`): a fresh
//! SQLite file or a fresh PostgreSQL database per test, and a workspace with one
//! user of each role and the default pipeline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use sqlx::Connection;

use crate::model::{Ctx, Id, Pipeline, Source, Stage, User};
use crate::{Filter, ListQuery, Result, Store};

/// Declares each listed `async fn NAME(store: &Store)` as two tests, one on a
/// fresh SQLite file (`sqlite::NAME`) and one on a fresh PostgreSQL database
/// (`postgres::NAME`), so a suite runs on both backends through one code path.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite().await;
                    super::$name(&db.store).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::testing::TestDb::postgres().await;
                    super::$name(&db.store).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// Where the tests find PostgreSQL; they create and drop their own databases there.
pub fn postgres_admin_url() -> String {
    std::env::var("RAPPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Databases left behind by a crashed run are swept after this long.
const STALE_SECS: u64 = 3600;
const PREFIX: &str = "rapport_test_";

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = Store::sqlite_url_in(dir.path());
        let store = Store::connect(&url).await.expect("open SQLite");
        TestDb {
            store,
            url,
            _dir: Some(dir),
            pg_name: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let name = format!(
            "{PREFIX}{now}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL is needed at {admin} (set RAPPORT_TEST_POSTGRES_URL): {e}")
            });
        sweep_stale(&mut conn, now).await;
        drop(conn);
        let url = crate::scratch::create_scratch_database(&admin, &name)
            .await
            .expect("create test database");
        let store = Store::connect(&url)
            .await
            .expect("open PostgreSQL test database");
        TestDb {
            store,
            url,
            _dir: None,
            pg_name: Some(name),
        }
    }

    /// Closes the store and drops the PostgreSQL database (SQLite's temp dir goes
    /// with `self`).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(name) = &self.pg_name {
            let _ = crate::scratch::drop_scratch_database(&postgres_admin_url(), name).await;
        }
    }
}

/// Drops test databases older than an hour (left by runs that crashed).
async fn sweep_stale(conn: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'rapport\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let born = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if born.is_some_and(|b| now.saturating_sub(b) > STALE_SECS) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

pub use crate::scratch::with_database;

/// A workspace with one user per role and the default pipeline.
pub struct Fixture {
    pub workspace_id: Id,
    pub admin: User,
    pub manager: User,
    pub rep: User,
    pub viewer: User,
    pub pipeline: Pipeline,
    pub stages: Vec<Stage>,
}

impl Fixture {
    pub async fn new(store: &Store, name: &str) -> Result<Fixture> {
        let ws = store.create_workspace(name).await?;
        let system = Ctx::new(ws.id, None, Source::Cli);
        let mut users = Vec::new();
        for role in ["admin", "manager", "rep", "viewer"] {
            let u: User = store
                .create(
                    &system,
                    json!({"name": format!("{role} of {name}"), "email": format!("{role}@{name}.test"), "role": role, "timezone": "Europe/Berlin"}),
                )
                .await?;
            users.push(u);
        }
        let ctx = Ctx::new(ws.id, Some(users[0].id), Source::Cli);
        let pipeline = crate::seed::create_default_pipeline(store, &ctx).await?;
        let stages = store
            .list::<Stage>(
                &ctx,
                &ListQuery::filtered(Filter::eq("pipeline_id", pipeline.id))
                    .sorted("position", crate::filter::Direction::Asc),
            )
            .await?
            .items;
        let [admin, manager, rep, viewer] = <[User; 4]>::try_from(users).expect("four users");
        Ok(Fixture {
            workspace_id: ws.id,
            admin,
            manager,
            rep,
            viewer,
            pipeline,
            stages,
        })
    }

    /// Acting as a user of this workspace.
    pub fn ctx(&self, user: &User) -> Ctx {
        Ctx::new(self.workspace_id, Some(user.id), Source::Cli)
    }

    pub fn admin_ctx(&self) -> Ctx {
        self.ctx(&self.admin)
    }

    pub fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "y"),
            "postgres://h/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "z"), "postgres://h/z");
    }
}
