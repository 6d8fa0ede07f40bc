//! Database commands: `init`, `seed demo`, `stats`, `demo`. Thin: they open the
//! store the global options name and call into `rapport-crm`.

use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rapport_crm::model::{Company, Role, User};
use rapport_crm::seed::{self, SeedParams};
use rapport_crm::{Ctx, Filter, ListQuery, RecordType, Source, Store};
use serde_json::json;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum SeedCmd {
    /// Generate the demo CRM (companies, contacts, leads, deals with history,
    /// activities with realistic text, tasks) into the workspace.
    Demo(SeedArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Number of companies; about 30 activities each.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub companies: u32,
    /// Random seed: the same seed (and date) gives the same CRM.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// "Today" for the generated data (YYYY-MM-DD); default: today.
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Companies to generate when the workspace is empty.
    #[arg(long, default_value_t = 100)]
    pub companies: u32,
    /// Stop after showing (and indexing) the data instead of serving the
    /// web app. (`--no-chat` is the older name.)
    #[arg(long, alias = "no-chat")]
    pub no_serve: bool,
    /// Skip indexing emails, calls and notes for semantic search.
    #[arg(long)]
    pub no_index: bool,
    /// Where the web app listens.
    #[arg(long, env = "RAPPORT_ADDR", default_value = "127.0.0.1:8787")]
    pub addr: String,
}

/// The rep the demo signs in as (a user of the demo seed).
const DEMO_REP: &str = "dana@rapport.example";

/// The store and the acting context the global options describe.
pub struct Session {
    pub store: Store,
    pub ctx: Ctx,
}

fn database_url(g: &GlobalArgs) -> anyhow::Result<String> {
    if let Some(url) = &g.database_url {
        return Ok(url.clone());
    }
    std::fs::create_dir_all(&g.data_dir)
        .with_context(|| format!("cannot create the data directory {}", g.data_dir.display()))?;
    Ok(Store::sqlite_url_in(&g.data_dir))
}

/// Opens the store and the workspace (creating both on first use, with an admin
/// user and the default pipeline), acting as `--as USER` or the first admin.
pub async fn open(g: &GlobalArgs) -> anyhow::Result<Session> {
    let url = database_url(g)?;
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(&url)))?;
    let ws = match store.workspace_by_name(&g.workspace).await? {
        Some(ws) => ws,
        None => bootstrap(&store, &g.workspace).await?,
    };
    let system = Ctx::new(ws.id, None, Source::Cli);
    let actor = match &g.as_user {
        Some(who) => find_user(&store, &system, who).await?,
        None => first_admin(&store, &system).await?,
    };
    Ok(Session {
        ctx: Ctx::new(ws.id, Some(actor.id), Source::Cli),
        store,
    })
}

async fn bootstrap(store: &Store, name: &str) -> anyhow::Result<rapport_crm::model::Workspace> {
    let ws = store.create_workspace(name).await?;
    let system = Ctx::new(ws.id, None, Source::Cli);
    let who = std::env::var("USER").unwrap_or_else(|_| "admin".into());
    let admin: User = store
        .create(
            &system,
            json!({"name": who, "email": format!("{who}@localhost.localdomain"), "role": "admin"}),
        )
        .await?;
    seed::create_default_pipeline(store, &Ctx::new(ws.id, Some(admin.id), Source::Cli)).await?;
    tracing::info!(workspace = name, "created workspace");
    Ok(ws)
}

async fn first_admin(store: &Store, ctx: &Ctx) -> anyhow::Result<User> {
    let q = ListQuery::filtered(Filter::eq("role", "admin")).limit(1);
    store
        .list::<User>(ctx, &q)
        .await?
        .items
        .pop()
        .context("the workspace has no admin user; pass --as USER")
}

/// A user by email, exact name, or first name ("dana").
pub async fn find_user(store: &Store, ctx: &Ctx, who: &str) -> anyhow::Result<User> {
    let who_l = who.trim().to_lowercase();
    let all = store
        .list::<User>(ctx, &ListQuery::default().limit(500))
        .await?
        .items;
    let matches: Vec<&User> = all
        .iter()
        .filter(|u| {
            u.email == who_l
                || u.name.to_lowercase() == who_l
                || u.name.to_lowercase().split_whitespace().next() == Some(who_l.as_str())
                || u.email.split('@').next() == Some(who_l.as_str())
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!(
            "no user {who:?} in this workspace; users: {}",
            all.iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        many => anyhow::bail!(
            "{who:?} matches {} users: {}; give the email",
            many.len(),
            many.iter()
                .map(|u| format!("{} <{}>", u.name, u.email))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn redact(url: &str) -> String {
    // Never print a password that came in a URL.
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

pub async fn init(g: &GlobalArgs) -> anyhow::Result<()> {
    let s = open(g).await?;
    println!(
        "Rapport is ready: {} database, workspace {:?}.",
        s.store.backend().name(),
        g.workspace
    );
    Ok(())
}

pub fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

async fn seed_demo(s: &Session, args: &SeedArgs) -> anyhow::Result<()> {
    let existing = s
        .store
        .list::<Company>(&s.ctx, &ListQuery::default().limit(1))
        .await?;
    if !existing.items.is_empty() {
        anyhow::bail!(
            "the workspace already holds companies; seed into a new one with --workspace NAME"
        );
    }
    let mut params = SeedParams::new(args.companies as usize, args.seed);
    if let Some(day) = args.as_of {
        params.as_of = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    }
    let started = Instant::now();
    let data = seed::generate(&params);
    let bar = progress_bar("seeding");
    seed::write(&s.store, &s.ctx, &data, &bar).await?;
    println!(
        "Seeded {} records ({} companies, {} activities) in {:.1}s.",
        data.len(),
        data.companies.len(),
        data.activities.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn seed(g: &GlobalArgs, cmd: SeedCmd) -> anyhow::Result<()> {
    let SeedCmd::Demo(args) = cmd;
    let s = open(g).await?;
    seed_demo(&s, &args).await
}

pub async fn stats(g: &GlobalArgs, args: StatsArgs) -> anyhow::Result<()> {
    let s = open(g).await?;
    let counts = s.store.counts(&s.ctx).await?;
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(rt, n)| (rt.name().to_owned(), json!(n)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        print_counts(&counts);
    }
    Ok(())
}

fn print_counts(counts: &[(RecordType, i64)]) {
    for (rt, n) in counts {
        println!("{:>10}  {n}", rt.name());
    }
}

/// The main job on the embedded default: initialise, seed the demo CRM if the
/// workspace is empty, show what is there, then chat with the agent (on a
/// terminal; the local models are fetched first if missing).
pub async fn demo(g: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let s = open(g).await?;
    let empty = s
        .store
        .list::<Company>(&s.ctx, &ListQuery::default().limit(1))
        .await?
        .items
        .is_empty();
    if empty {
        println!("Seeding the demo CRM ({} companies)…", args.companies);
        let seed_args = SeedArgs {
            companies: args.companies,
            seed: 42,
            as_of: None,
        };
        seed_demo(&s, &seed_args).await?;
    }
    println!(
        "\nWorkspace {:?} on {}:",
        g.workspace,
        s.store.backend().name()
    );
    print_counts(&s.store.counts(&s.ctx).await?);
    show_sample(&s).await?;
    // Indexed before serving: `rapport ask` after `demo --no-serve`
    // answers "what did Acme say…" only from an index that is up to date.
    let services = if args.no_index {
        super::chat::services_for(g, &s.store).await
    } else {
        super::memory::indexed_services(g, &s).await?
    };
    if args.no_serve {
        println!("Serve the web app: rapport demo (or rapport serve); chat: rapport chat");
        return Ok(());
    }
    let (user, password) = demo_sign_in(&s).await?;
    let state = super::serve::demo_state(&s.store, services)?;
    super::serve::serve_until_stopped(&args.addr, state, |addr| {
        // Not println!: a closed stdout (`rapport demo | head`) must not
        // take the server down with it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "\nThe web app: http://{addr}/\nSign in as {} with the password {password}\n\
             (a new password each time the demo starts; Ctrl-C stops the server)\n\
             Chat in the terminal: rapport chat",
            user.email
        );
    })
    .await?;
    s.store.close().await;
    Ok(())
}

/// A fresh password for the demo's rep (the first rep when the workspace
/// has no [`DEMO_REP`]), replacing the last one and ending its browser
/// sessions: the demo prints it, so it must not outlive the run's output.
async fn demo_sign_in(s: &Session) -> anyhow::Result<(User, String)> {
    let user = match find_user(&s.store, &s.ctx, DEMO_REP).await {
        Ok(u) => u,
        Err(_) => s
            .store
            .list::<User>(
                &s.ctx,
                &ListQuery::filtered(Filter::eq("role", "rep")).limit(1),
            )
            .await?
            .items
            .pop()
            .context("the workspace has no rep to sign in as")?,
    };
    let password = rapport_web::auth::temporary_password();
    let hash = rapport_web::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    s.store
        .set_password_hash(&s.ctx, user.id, Some(&hash))
        .await?;
    s.store.revoke_web_sessions_of(&s.ctx, user.id).await?;
    Ok((user, password))
}

async fn show_sample(s: &Session) -> anyhow::Result<()> {
    use rapport_crm::filter::Direction;
    use rapport_crm::model::{Activity, Deal};
    let deals = s
        .store
        .list::<Deal>(
            &s.ctx,
            &ListQuery::filtered(Filter::eq("status", "open"))
                .sorted("value", Direction::Desc)
                .limit(5),
        )
        .await?;
    println!("\nLargest open deals:");
    for d in &deals.items {
        println!(
            "  #{:<5} {:<48} {:>10.0} {}  p={:.0}%",
            d.id,
            d.name,
            d.value,
            d.currency,
            d.probability * 100.0
        );
    }
    let hits = s
        .store
        .lookup(&s.ctx, &rapport_crm::LookupQuery::new("Dana Lee at Acme"))
        .await?;
    if let Some(dana) = hits
        .first()
        .filter(|h| h.record_type == RecordType::Contact)
    {
        let recent = s
            .store
            .list::<Activity>(
                &s.ctx,
                &ListQuery::filtered(Filter::eq("contact_id", dana.id))
                    .sorted("occurred_at", Direction::Desc)
                    .limit(3),
            )
            .await?;
        println!("\nLatest with {}:", dana.label);
        for a in &recent.items {
            let text: String = a.body.chars().take(110).collect();
            println!(
                "  {} {:?}: {}…",
                a.occurred_at.format("%Y-%m-%d"),
                a.kind,
                text.replace('\n', " ")
            );
        }
    }
    let reps = s
        .store
        .list::<User>(
            &s.ctx,
            &ListQuery::filtered(Filter::eq("role", "rep")).limit(10),
        )
        .await?;
    let names: Vec<&str> = reps
        .items
        .iter()
        .filter(|u| u.role == Role::Rep)
        .map(|u| u.name.as_str())
        .collect();
    println!("\nReps: {}", names.join(", "));
    println!("Try: rapport stats · rapport --as dana stats · rapport bench crm");
    Ok(())
}
