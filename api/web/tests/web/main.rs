//! The web app over real HTTP (axum on 127.0.0.1:0) on SQLite and
//! PostgreSQL, and in a real headless Chromium driven over WebDriver.
//!
//! - [`http`]: every route, both backends: sign-in and its limits, sessions
//!   and their revocation, CSRF, roles, workspaces, escaping, tables, record
//!   pages, the board, views and bulk actions.
//! - [`browser`]: the flows a person performs, with axe-core run on every
//!   page they visit and a screenshot of each test's last page under the
//!   target directory. They start chromedriver themselves and skip, saying
//!   so, only when `/usr/bin/chromedriver` is absent.
//! - [`day`]: Today, the command palette (records, pages, actions, and
//!   interactions by meaning over a real index), its forms, the dashboard.

mod browser;
mod day;
mod harness;
mod http;
