//! The flows a person performs, in headless Chromium over WebDriver
//! (chromedriver started here on a free port, a fresh profile per test),
//! with axe-core (vendored, pinned by sha256) run on every page visited and
//! a screenshot of each test's last page under the target directory
//! (`target/tmp/screenshots/`). On SQLite: the HTTP tests cover PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use rapport_crm::RecordType;
use rapport_crm::model::{Company, Contact};
use rapport_crm::testing::TestDb;
use serde_json::{Value, json};

use crate::harness::{App, password};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const AXE: &str = include_str!("../../assets/vendor/axe.min.js");

/// A headless Chromium session and the chromedriver serving it.
struct Browser {
    c: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    base: String,
    name: &'static str,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a browser; `None` (with a message) only when
    /// chromedriver is not installed.
    async fn launch(app: &App, name: &'static str) -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() {
            eprintln!(
                "SKIPPED browser test {name}: {CHROMEDRIVER} is absent (scripts/setup-system installs chromium and chromium-driver)"
            );
            return None;
        }
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1400,900",
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        Some(Browser {
            c,
            driver,
            _profile: profile,
            base: app.base.clone(),
            name,
        })
    }

    async fn goto(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    async fn path(&self) -> String {
        let u = self.c.current_url().await.expect("url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the element's text contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) {
        let started = Instant::now();
        loop {
            let got = self
                .c
                .execute(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                    vec![json!(css)],
                )
                .await
                .expect("script");
            if got.as_str().is_some_and(|t| t.contains(needle)) {
                return;
            }
            if started.elapsed() > Duration::from_secs(10) {
                self.shot("timeout").await;
                panic!("{css} never contained {needle:?}; it reads {got}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, email: &str, pw: &str) {
        self.goto("/signin").await;
        self.find("#email")
            .await
            .send_keys(email)
            .await
            .expect("email");
        self.find("#password")
            .await
            .send_keys(pw)
            .await
            .expect("password");
        self.find("button[type=submit]")
            .await
            .click()
            .await
            .expect("submit");
        self.find(".topbar").await;
    }

    /// Runs axe-core on the page and fails on any WCAG 2.x A/AA violation.
    async fn axe(&self, what: &str) {
        self.c.execute(AXE, vec![]).await.expect("inject axe");
        let violations = self
            .c
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})
                  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                          nodes: v.nodes.slice(0, 3).map(n => n.html)}))))
                  .catch(e => done([{id: 'axe-error', help: String(e)}]));"#,
                vec![],
            )
            .await
            .expect("axe ran");
        if violations != json!([]) {
            self.shot("axe").await;
        }
        assert_eq!(
            violations,
            json!([]),
            "axe violations on {what}: {violations:#}"
        );
    }

    /// Saves a screenshot as target/tmp/screenshots/NAME[-suffix].png.
    async fn shot(&self, suffix: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let file = if suffix.is_empty() {
            dir.join(format!("{}.png", self.name))
        } else {
            dir.join(format!("{}-{suffix}.png", self.name))
        };
        if let Ok(png) = self.c.screenshot().await {
            std::fs::write(&file, png).expect("write screenshot");
        }
        file
    }

    async fn finish(mut self) {
        self.shot("").await;
        let _ = self.c.clone().close().await;
        let _ = self.driver.kill().await;
        // Drop ends anything of this profile still running.
    }
}

/// A test that panics never reaches `finish`: this ends its Chromium (found
/// by its own profile directory, so nothing else is touched) and then its
/// chromedriver (`kill_on_drop`).
impl Drop for Browser {
    fn drop(&mut self) {
        let profile = self._profile.path().display().to_string();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&profile) {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(&pid)
                    .status();
            }
        }
    }
}

async fn setup(name: &'static str) -> Option<(TestDb, App, Browser)> {
    let db = TestDb::sqlite().await;
    // Workspace names end up in emails, where browsers refuse `_`.
    let app = App::start(&db.store, &name.replace('_', "-")).await;
    let b = Browser::launch(&app, name).await?;
    Some((db, app, b))
}

/// As [`setup`], with the services `rapport serve` gives the registry (the
/// next-best-action engine).
async fn setup_served(name: &'static str) -> Option<(TestDb, App, Browser)> {
    let db = TestDb::sqlite().await;
    let app = App::start_served(&db.store, &name.replace('_', "-"), None).await;
    let b = Browser::launch(&app, name).await?;
    Some((db, app, b))
}

impl Browser {
    /// Presses Ctrl+K on the page (the palette's shortcut).
    async fn ctrl_k(&self) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Control.into(),
            })
            .then(KeyAction::Down { value: 'k' })
            .then(KeyAction::Up { value: 'k' })
            .then(KeyAction::Up {
                value: Key::Control.into(),
            });
        self.c.perform_actions(keys).await.expect("Ctrl+K");
    }

    /// Waits until nothing matches `css`.
    async fn wait_gone(&self, css: &str) {
        let started = Instant::now();
        while !self
            .c
            .find_all(Locator::Css(css))
            .await
            .expect("query")
            .is_empty()
        {
            if started.elapsed() > Duration::from_secs(10) {
                self.shot("timeout").await;
                panic!("{css} is still there");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn email(app: &App, role: &str) -> String {
    format!("{role}@{}", app.fx.admin.email.trim_start_matches("admin@"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_and_out() {
    let Some((db, app, b)) = setup("sign_in_and_out").await else {
        return;
    };
    b.goto("/companies").await;
    assert!(
        b.path().await.starts_with("/signin?next="),
        "{}",
        b.path().await
    );
    b.axe("the sign-in page").await;
    // A wrong password says so, in an alert the screen reader announces.
    b.find("#email")
        .await
        .send_keys(&email(&app, "rep"))
        .await
        .unwrap();
    b.find("#password")
        .await
        .send_keys("wrong password")
        .await
        .unwrap();
    b.find("#password")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    b.wait_text("[role=alert]", "do not match").await;
    b.axe("the sign-in page with an error").await;
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    assert_eq!(b.path().await, "/today", "Today is the home page");
    assert!(b.text(".topbar").await.contains("rep of sign-in-and-out"));
    b.axe("Today").await;
    b.find("form.signout button").await.click().await.unwrap();
    b.find("#email").await;
    assert_eq!(b.path().await, "/signin");
    b.goto("/deals/board").await;
    assert!(b.path().await.starts_with("/signin"), "signed out for good");
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_filters_sorts_pages_and_saves_a_view() {
    let Some((db, app, b)) = setup("table_view").await else {
        return;
    };
    let ctx = app.fx.ctx(&app.fx.rep);
    for i in 0..150 {
        let name = format!("{} {i:03}", if i % 2 == 0 { "Alpha" } else { "Beta" });
        let _: Company = app
            .store
            .create(
                &ctx,
                json!({"name": name, "employees": i, "owner_id": app.fx.rep.id}),
            )
            .await
            .unwrap();
    }
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto("/companies").await;
    b.wait_text(".count", "150").await;
    b.axe("the companies table").await;
    // Filter: name contains "beta", applied by htmx into the results.
    b.find("#f0").await.select_by_value("name").await.unwrap();
    b.find("#op0")
        .await
        .select_by_value("contains")
        .await
        .unwrap();
    b.find("#v0").await.send_keys("beta").await.unwrap();
    b.find(".filters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text(".count", "75 matching").await;
    assert!(
        b.path().await.contains("v=beta"),
        "the URL keeps the state: {}",
        b.path().await
    );
    // Sort by employees, then descending.
    b.find("th a[href*='sort=employees']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("th[aria-sort=ascending]", "Employees").await;
    b.find("th[aria-sort=ascending] a")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("th[aria-sort=descending]", "Employees").await;
    b.wait_text("tbody tr:first-child", "Beta 149").await;
    // The next page, then the first again.
    b.find("a[rel=next]").await.click().await.unwrap();
    b.wait_text("tbody tr:first-child", "Beta 049").await;
    b.find(".pager a").await.click().await.unwrap();
    b.wait_text("tbody tr:first-child", "Beta 149").await;
    b.axe("a filtered, sorted table").await;
    // Save the view; it is listed and restores the state.
    b.goto(&b.path().await).await;
    b.find("#view-name")
        .await
        .send_keys("Big betas")
        .await
        .unwrap();
    b.find(".save-view button").await.click().await.unwrap();
    b.wait_text("#toasts", "View saved.").await;
    b.goto("/companies").await;
    b.find(".views a[href*='view=']")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text(".count", "75 matching").await;
    b.wait_text("tbody tr:first-child", "Beta 149").await;
    b.axe("a saved view").await;
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_edits_a_field_inline_by_keyboard_and_sees_the_timeline() {
    let Some((db, app, b)) = setup("inline_edit").await else {
        return;
    };
    let acme = app.company(&app.fx.rep, "Acme Robotics").await;
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto("/companies").await;
    b.find(&format!("a[href='/companies/{}']", acme.id))
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("h1", "Acme Robotics").await;
    b.axe("a company page").await;
    // Keyboard only: Enter on "Edit", type, Enter to save.
    let edit = b.find("#field-industry a.edit").await;
    edit.send_keys(&Key::Enter.to_string()).await.unwrap();
    let input = b.find("#input-industry").await;
    input.send_keys("Industrial automation").await.unwrap();
    b.axe("a field in edit mode").await;
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    b.wait_text("#field-industry .value", "Industrial automation")
        .await;
    b.wait_text("#toasts", "Saved.").await;
    b.wait_text("#timeline", "via web").await;
    b.wait_text("#timeline", "Industry: — → Industrial automation")
        .await;
    let history = app
        .store
        .history(&app.ctx(), RecordType::Company, acme.id)
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.source.as_str()),
        ("update", "web")
    );
    // Log a call from the quick actions: it lands on the timeline.
    b.find("#qa-kind")
        .await
        .select_by_value("call")
        .await
        .unwrap();
    b.find("#qa-body")
        .await
        .send_keys("Asked about the Pro plan")
        .await
        .unwrap();
    b.find("form[action$='/activities'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("#timeline", "Asked about the Pro plan").await;
    b.axe("a company page after a call").await;
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

/// Drags `card` onto `list` with real pointer events (SortableJS's
/// fallback mode listens to them).
async fn drag(
    b: &Browser,
    card: fantoccini::elements::Element,
    list: fantoccini::elements::Element,
) {
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: card,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(200)),
            x: 10.0,
            y: 10.0,
        })
        .then(PointerAction::MoveToElement {
            element: list.clone(),
            duration: Some(Duration::from_millis(400)),
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::MoveToElement {
            element: list,
            duration: Some(Duration::from_millis(200)),
            x: 0.0,
            y: 5.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.c.perform_actions(mouse).await.expect("drag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_drags_a_deal_and_moves_one_by_menu() {
    let Some((db, app, b)) = setup("board").await else {
        return;
    };
    let dragged = app
        .deal(&app.fx.rep, "Dragged deal", "Qualification", 1200.0)
        .await;
    let menu = app
        .deal(&app.fx.rep, "Menu deal", "Qualification", 800.0)
        .await;
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto("/deals/board").await;
    b.find("[data-board]").await;
    b.axe("the pipeline board").await;
    let discovery = app.fx.stage("Discovery").id;
    // Grab the card by its text, away from its link and its menu.
    let card = b
        .find(&format!("li[data-deal='{}'] p.meta", dragged.id))
        .await;
    let list = b.find(&format!("ul[data-stage='{discovery}']")).await;
    drag(&b, card, list).await;
    b.wait_text("#toasts", "Dragged deal moved to Discovery.")
        .await;
    b.wait_text(&format!("ul[data-stage='{discovery}']"), "Dragged deal")
        .await;
    let history = app
        .store
        .stage_history(&app.ctx(), dragged.id)
        .await
        .unwrap();
    assert_eq!(history.last().map(|h| h.to_stage_id), Some(discovery));
    // The menu, by keyboard: choose the stage, Enter on Move.
    let proposal = app.fx.stage("Proposal").id;
    b.find(&format!("#move-{}", menu.id))
        .await
        .select_by_value(&proposal.to_string())
        .await
        .unwrap();
    b.find(&format!("li[data-deal='{}'] form.move button", menu.id))
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    b.wait_text("#toasts", "Menu deal moved to Proposal.").await;
    b.wait_text(&format!("ul[data-stage='{proposal}']"), "Menu deal")
        .await;
    let history = app.store.stage_history(&app.ctx(), menu.id).await.unwrap();
    assert_eq!(history.last().map(|h| h.to_stage_id), Some(proposal));
    // The column figures followed.
    let col = b
        .text(&format!(
            "section[aria-labelledby='col-{proposal}'] .figures"
        ))
        .await;
    assert!(col.starts_with("1 deals · 800"), "{col}");
    b.axe("the board after two moves").await;
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_bulk_tags_three_contacts() {
    let Some((db, app, b)) = setup("bulk_tag").await else {
        return;
    };
    let ctx = app.fx.ctx(&app.fx.rep);
    let mut ids = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        let c: Contact = app
            .store
            .create(&ctx, json!({"first_name": name, "owner_id": app.fx.rep.id}))
            .await
            .unwrap();
        ids.push(c.id);
    }
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto("/contacts").await;
    for id in &ids[..3] {
        b.find(&format!("#sel-{id}")).await.click().await.unwrap();
    }
    b.find("#bulk-tag")
        .await
        .send_keys("webinar")
        .await
        .unwrap();
    b.axe("the contacts table with a selection").await;
    b.find("#bulk button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("#toasts", "Tagged 3 record(s).").await;
    let mut tagged = app
        .store
        .tagged(&ctx, RecordType::Contact, "webinar")
        .await
        .unwrap();
    tagged.sort_unstable();
    assert_eq!(tagged, ids[..3].to_vec());
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_keeps_markup_as_text_and_refuses_forged_posts_viewers_and_other_workspaces() {
    let Some((db, app, b)) = setup("security").await else {
        return;
    };
    let evil: Company = app
        .store
        .create(
            &app.fx.ctx(&app.fx.rep),
            json!({"name": "<script>window.pwned=1</script>", "owner_id": app.fx.rep.id,
                   "industry": "<img src=x onerror=\"window.pwned=2\">",
                   "custom": {"note": "<svg onload=\"window.pwned=3\">"}}),
        )
        .await
        .unwrap();
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto(&format!("/companies/{}", evil.id)).await;
    b.wait_text("h1", "<script>window.pwned=1</script>").await;
    b.wait_text("#field-industry", "<img src=x onerror=\"window.pwned=2\">")
        .await;
    b.wait_text(".custom", "<svg onload=\"window.pwned=3\">")
        .await;
    let pwned =
        b.c.execute("return window.pwned === undefined;", vec![])
            .await
            .unwrap();
    assert_eq!(pwned, json!(true), "no markup from a record ran");
    b.axe("a record with markup in its fields").await;
    // A post without the CSRF token, from the page itself, is refused.
    let status = b
        .c
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 fetch('/companies/{}/fields', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
                   body: 'field=name&value=Forged'}}).then(r => done(r.status));",
                evil.id
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    let still: Company = app.store.get(&app.ctx(), evil.id).await.unwrap();
    assert_eq!(still.name, "<script>window.pwned=1</script>");
    // A viewer sees no edit controls, and a forged post is refused.
    b.find("form.signout button").await.click().await.unwrap();
    b.sign_in(&email(&app, "viewer"), &password("viewer")).await;
    b.goto(&format!("/companies/{}", evil.id)).await;
    b.find("#field-name").await;
    assert!(
        b.c.find_all(Locator::Css("a.edit"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.c.find_all(Locator::Css("form[action$='/activities']"))
            .await
            .unwrap()
            .is_empty()
    );
    b.axe("a record page for a viewer").await;
    let status = b
        .c
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 const token = document.querySelector('meta[name=csrf-token]').content;
                 fetch('/companies/{}/fields', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': token}},
                   body: 'field=name&value=Viewer'}}).then(r => done(r.status));",
                evil.id
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    // Another workspace's record is a 404 page.
    let other = rapport_crm::testing::Fixture::new(&app.store, "elsewhere")
        .await
        .unwrap();
    let theirs: Company = app
        .store
        .create(&other.admin_ctx(), json!({"name": "Elsewhere Inc"}))
        .await
        .unwrap();
    b.goto(&format!("/companies/{}", theirs.id)).await;
    b.wait_text("h1", "Not Found").await;
    assert!(!b.c.source().await.unwrap().contains("Elsewhere Inc"));
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_every_page_passes_axe() {
    let Some((db, app, b)) = setup("every_page").await else {
        return;
    };
    let rep = &app.fx.rep;
    let ctx = app.fx.ctx(rep);
    let acme = app.company(rep, "Acme").await;
    let dana: Contact = app
        .store
        .create(&ctx, json!({"first_name": "Dana", "last_name": "Lee", "company_id": acme.id, "owner_id": rep.id}))
        .await
        .unwrap();
    let deal = app.deal(rep, "Acme Pro", "Proposal", 5000.0).await;
    let lead: Value = serde_json::to_value(
        app.store
            .create::<rapport_crm::model::Lead>(
                &ctx,
                json!({"name": "Sam Webb", "owner_id": rep.id}),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    b.sign_in(&email(&app, "manager"), &password("manager"))
        .await;
    b.goto(&format!("/companies/{}", acme.id)).await;
    b.find("#qa-body")
        .await
        .send_keys("Kick-off call")
        .await
        .unwrap();
    b.find("form[action$='/activities'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("#timeline", "Kick-off call").await;
    b.find("#qa-title")
        .await
        .send_keys("Send the deck")
        .await
        .unwrap();
    b.find("form[action$='/tasks'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("#timeline", "Send the deck").await;
    let activity = app
        .store
        .list_dyn(&ctx, RecordType::Activity, &Default::default())
        .await
        .unwrap()
        .items[0]["id"]
        .clone();
    let task = app
        .store
        .list_dyn(&ctx, RecordType::Task, &Default::default())
        .await
        .unwrap()
        .items[0]["id"]
        .clone();
    let mut pages = vec![
        "/deals/board".to_owned(),
        "/today".to_owned(),
        "/dashboard".to_owned(),
        "/palette?q=Acme".to_owned(),
        "/new/contact".to_owned(),
        "/new/call".to_owned(),
        format!("/companies/{}", acme.id),
        format!("/contacts/{}", dana.id),
        format!("/deals/{}", deal.id),
        format!("/leads/{}", lead["id"]),
        format!("/activities/{activity}"),
        format!("/tasks/{task}"),
    ];
    for k in rapport_web::meta::Kind::ALL {
        pages.push(format!("/{}", k.path()));
    }
    for p in &pages {
        b.goto(p).await;
        b.find("main h1").await;
        b.axe(p).await;
    }
    // The bulk delete confirmation, as a manager.
    b.goto("/contacts").await;
    b.find(&format!("#sel-{}", dana.id))
        .await
        .click()
        .await
        .unwrap();
    b.find("#bulk-action")
        .await
        .select_by_value("delete")
        .await
        .unwrap();
    b.find("#bulk button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("h1", "Delete 1 Contacts?").await;
    b.axe("the delete confirmation").await;
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_today_dismisses_an_action_and_completes_a_task_in_place() {
    let Some((db, app, b)) = setup_served("today").await else {
        return;
    };
    let rep = &app.fx.rep;
    let ctx = app.fx.ctx(rep);
    let due = |days: i64| {
        rapport_crm::schema::format_timestamp(&(chrono::Utc::now() + chrono::Duration::days(days)))
    };
    let mut ids = Vec::new();
    for (title, days) in [
        ("Send the revised quote", -3),
        ("Chase the signed order form", -2),
    ] {
        let t: rapport_crm::model::Task = app
            .store
            .create(
                &ctx,
                json!({"title": title, "assignee_id": rep.id, "due_at": due(days)}),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    assert_eq!(b.path().await, "/today");
    let item = format!("#nba-overdue-task-task-{}", ids[0]);
    b.wait_text(&item, "Send the revised quote").await;
    b.axe("Today").await;
    // Dismiss, by keyboard: open the disclosure, choose a reason, submit.
    b.find(&format!("{item} details:last-of-type summary"))
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    b.find(&format!("{item} select[name=reason]"))
        .await
        .select_by_value("wrong timing")
        .await
        .unwrap();
    b.axe("Today with the dismiss form open").await;
    b.find(&format!("{item} details:last-of-type button[type=submit]"))
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    b.wait_gone(&item).await;
    b.wait_text("#toasts", "Dismissed (wrong timing).").await;
    let fb = app
        .store
        .nba_feedback(&app.ctx(), Some(rep.id))
        .await
        .unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].action_key, format!("overdue_task:task:{}", ids[0]));
    assert_eq!(fb[0].status, rapport_crm::FeedbackStatus::Dismissed);
    assert_eq!(fb[0].reason.as_deref(), Some("wrong timing"));
    // The focus stays in the list, not lost to the page.
    let focused = b
        .c
        .execute("return document.activeElement && document.activeElement.closest('.today-actions') !== null;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!(true), "focus moves to the next action");
    // It stays gone after a reload.
    b.goto("/today").await;
    b.find("#today-tasks").await;
    assert!(b.c.find_all(Locator::Css(&item)).await.unwrap().is_empty());
    // Complete a task in place.
    let task = format!("#task-{}", ids[1]);
    b.find(&format!("{task} form[action$='/complete'] button"))
        .await
        .click()
        .await
        .unwrap();
    b.wait_gone(&task).await;
    b.wait_text("#toasts", "Completed: Chase the signed order form.")
        .await;
    assert_eq!(b.path().await, "/today", "in place, no navigation");
    let done: rapport_crm::model::Task = app.store.get(&app.ctx(), ids[1]).await.unwrap();
    assert_eq!(done.status, rapport_crm::model::TaskStatus::Done);
    b.axe("Today after a dismissal and a completed task").await;
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_ctrl_k_finds_a_contact_by_a_typo_and_enter_opens_it() {
    let Some((db, app, b)) = setup("palette").await else {
        return;
    };
    let rep = &app.fx.rep;
    let acme = app.company(rep, "Acme Logistics").await;
    let dana: Contact = app
        .store
        .create(
            &app.fx.ctx(rep),
            json!({"first_name": "Dana", "last_name": "Lee", "email": "dana@acme.example",
                   "company_id": acme.id, "owner_id": rep.id}),
        )
        .await
        .unwrap();
    b.sign_in(&email(&app, "rep"), &password("rep")).await;
    b.goto("/companies").await;
    b.find("main h1").await;
    b.ctrl_k().await;
    let open =
        b.c.execute("return document.getElementById('palette').open;", vec![])
            .await
            .unwrap();
    assert_eq!(open, json!(true), "Ctrl+K opens the palette");
    let input = b.find("#palette-input").await;
    let focused =
        b.c.execute("return document.activeElement.id;", vec![])
            .await
            .unwrap();
    assert_eq!(focused, json!("palette-input"));
    input.send_keys("Dana Leee").await.unwrap();
    b.wait_text("#palette-list", "Dana Lee <dana@acme.example>")
        .await;
    b.wait_text("#palette-status", "for “Dana Leee”").await;
    assert_eq!(
        b.find("#palette-input")
            .await
            .attr("aria-expanded")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    b.axe("the palette, open with results").await;
    input.send_keys(&Key::Down.to_string()).await.unwrap();
    let active = b
        .find("#palette-input")
        .await
        .attr("aria-activedescendant")
        .await
        .unwrap();
    assert_eq!(active.as_deref(), Some("pal-opt-1"));
    assert_eq!(
        b.find("#pal-opt-1")
            .await
            .attr("aria-selected")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    // Down and up again come back to it.
    input.send_keys(&Key::Down.to_string()).await.unwrap();
    input.send_keys(&Key::Up.to_string()).await.unwrap();
    assert_eq!(
        b.find("#palette-input")
            .await
            .attr("aria-activedescendant")
            .await
            .unwrap()
            .as_deref(),
        Some("pal-opt-1")
    );
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    b.wait_text("h1", "Dana Lee").await;
    assert_eq!(b.path().await, format!("/contacts/{}", dana.id));
    // Escape closes it; the opener in the top bar opens it too.
    b.find("[data-palette-open]").await.click().await.unwrap();
    b.find("#palette-input")
        .await
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    let open =
        b.c.execute("return document.getElementById('palette').open;", vec![])
            .await
            .unwrap();
    assert_eq!(open, json!(false));
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_dashboard_figures_equal_the_tools() {
    let Some((db, app, b)) = setup("dashboard").await else {
        return;
    };
    app.seed(25).await;
    crate::day::add_scored_interactions(&app).await;
    b.sign_in(&email(&app, "manager"), &password("manager"))
        .await;
    b.goto("/dashboard").await;
    b.find("#fig-pipeline svg.chart").await;
    b.axe("the dashboard").await;
    let html = b.c.source().await.unwrap();
    let caller = rapport_tools::Caller::user(&app.fx.manager, rapport_crm::Source::Web);
    let summary = app
        .registry
        .call(&app.store, &caller, "pipeline_summary", json!({}))
        .await
        .unwrap();
    let forecast = app
        .registry
        .call(&app.store, &caller, "forecast", json!({}))
        .await
        .unwrap();
    crate::day::assert_figures_match(&html, &summary, &forecast);
    // The charts drew: the browser laid out their text.
    let charts = b
        .c
        .execute(
            "return Array.from(document.querySelectorAll('svg.chart')).map(s => s.getBoundingClientRect().height > 50 && s.querySelectorAll('text').length > 3);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(charts, json!([true, true, true, true, true]), "{charts}");
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}

/// Not a check: regenerates the screenshots in `docs/web/` from the demo
/// data (`cargo nextest run -E 'test(docs_screenshots)' --run-ignored only`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/web/*.png; run by hand after a visual change"]
async fn docs_screenshots() {
    let db = TestDb::sqlite().await;
    let ws = db.store.create_workspace("demo").await.unwrap();
    let system = rapport_crm::Ctx::new(ws.id, None, rapport_crm::Source::Cli);
    let data = rapport_crm::seed::generate(&rapport_crm::seed::SeedParams::new(100, 7));
    rapport_crm::seed::write(&db.store, &system, &data, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let users = db
        .store
        .list::<rapport_crm::model::User>(&system, &rapport_crm::ListQuery::default().limit(50))
        .await
        .unwrap()
        .items;
    let dana = users
        .iter()
        .find(|u| u.email == "dana@rapport.example")
        .unwrap();
    let hash = rapport_web::auth::hash_password("demo password 1").unwrap();
    db.store
        .set_password_hash(&system, dana.id, Some(&hash))
        .await
        .unwrap();
    let app = App::start_served(&db.store, "docs", None).await;
    let Some(b) = Browser::launch(&app, "docs").await else {
        return;
    };
    b.c.set_window_size(1280, 760).await.unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web");
    std::fs::create_dir_all(&dir).unwrap();
    let save = |name: &str, png: Vec<u8>| std::fs::write(dir.join(name), png).unwrap();
    b.goto("/signin").await;
    save("signin.png", b.c.screenshot().await.unwrap());
    b.sign_in("dana@rapport.example", "demo password 1").await;
    b.find(".today-grid").await;
    save("today.png", b.c.screenshot().await.unwrap());
    b.ctrl_k().await;
    // A contact of the demo data, typed with a slip in the last name.
    let contact = db
        .store
        .list::<Contact>(&system, &rapport_crm::ListQuery::default().limit(1))
        .await
        .unwrap()
        .items
        .remove(0);
    let typed = format!(
        "{} {}x",
        contact.first_name,
        contact.last_name.clone().unwrap_or_default()
    );
    b.find("#palette-input")
        .await
        .send_keys(&typed)
        .await
        .unwrap();
    b.find("#palette-list [role=option]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.find("#palette-input")
        .await
        .send_keys(&Key::Down.to_string())
        .await
        .unwrap();
    save("palette.png", b.c.screenshot().await.unwrap());
    b.goto("/dashboard").await;
    b.find("#fig-pipeline svg.chart").await;
    save("dashboard.png", b.c.screenshot().await.unwrap());
    b.goto("/deals/board").await;
    b.find("[data-board]").await;
    save("board.png", b.c.screenshot().await.unwrap());
    b.goto("/companies?sort=-employees").await;
    b.find("#results").await;
    save("table.png", b.c.screenshot().await.unwrap());
    let first = b.find("tbody tr td a").await;
    first.click().await.unwrap();
    b.find("#timeline").await;
    save("record.png", b.c.screenshot().await.unwrap());
    b.finish().await;
    app.stop().await;
    db.cleanup().await;
}
