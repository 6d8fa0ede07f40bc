//! A running web app on a fresh database, and a small cookie-keeping HTTP
//! client that behaves like a browser without JavaScript (or like htmx, when
//! asked).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rapport_crm::model::{Company, Deal, User};
use rapport_crm::testing::Fixture;
use rapport_crm::{Ctx, Store};
use rapport_pipelines::memory::Memory;
use rapport_tools::{Registry, Services};
use rapport_web::{WebConfig, WebState};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
use tokio::sync::oneshot;

/// The password every fixture user gets: `password-ROLE`.
pub fn password(role: &str) -> String {
    format!("password-{role}")
}

pub struct App {
    pub base: String,
    pub store: Store,
    /// The registry the app calls, to compare its answers with the pages.
    pub registry: Arc<Registry>,
    pub fx: Fixture,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl App {
    /// A fixture workspace whose four users have passwords, served on a
    /// free port.
    pub async fn start(store: &Store, name: &str) -> App {
        Self::start_with(store, name, WebConfig::default()).await
    }

    pub async fn start_with(store: &Store, name: &str, config: WebConfig) -> App {
        Self::start_full(store, name, config, Services::default()).await
    }

    /// As `rapport serve` builds it: the registry gets the next-best-action
    /// engine (and the memory, when given), so Today and the palette have
    /// their services.
    pub async fn start_served(store: &Store, name: &str, memory: Option<Memory>) -> App {
        Self::start_full(
            store,
            name,
            WebConfig::default(),
            rapport_pipelines::tool_services(memory),
        )
        .await
    }

    pub async fn start_full(
        store: &Store,
        name: &str,
        config: WebConfig,
        services: Services,
    ) -> App {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fx = Fixture::new(store, name).await.expect("fixture");
        for (user, role) in [
            (&fx.admin, "admin"),
            (&fx.manager, "manager"),
            (&fx.rep, "rep"),
            (&fx.viewer, "viewer"),
        ] {
            let hash = rapport_web::auth::hash_password(&password(role)).expect("hash");
            store
                .set_password_hash(&fx.admin_ctx(), user.id, Some(&hash))
                .await
                .expect("password");
        }
        let registry = Arc::new(Registry::new().with_services(services));
        let state = WebState::new(store.clone(), Arc::clone(&registry), config).expect("state");
        let router: axum::Router = rapport_web::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        App {
            base,
            store: store.clone(),
            registry,
            fx,
            stop: Some(stop),
            done,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// A client signed in as the fixture user of `role`.
    pub async fn signed_in(&self, role: &str) -> Client {
        let mut c = self.client();
        let res = c
            .sign_in(
                &format!("{role}@{}.test", self.workspace_name()),
                &password(role),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "sign-in as {role}: {}",
            res.body
        );
        c
    }

    fn workspace_name(&self) -> String {
        // Fixture emails are ROLE@WORKSPACE.test.
        self.fx
            .admin
            .email
            .trim_start_matches("admin@")
            .trim_end_matches(".test")
            .to_owned()
    }

    pub fn ctx(&self) -> Ctx {
        self.fx.admin_ctx()
    }

    pub async fn company(&self, owner: &User, name: &str) -> Company {
        self.store
            .create(
                &self.fx.ctx(owner),
                json!({"name": name, "owner_id": owner.id}),
            )
            .await
            .expect("company")
    }

    pub async fn deal(&self, owner: &User, name: &str, stage: &str, value: f64) -> Deal {
        self.store
            .create(
                &self.fx.ctx(owner),
                json!({"name": name, "pipeline_id": self.fx.pipeline.id,
                       "stage_id": self.fx.stage(stage).id, "value": value, "owner_id": owner.id}),
            )
            .await
            .expect("deal")
    }

    /// The demo data generator's records (deterministic) in this app's
    /// workspace, beside the fixture's users and pipeline.
    pub async fn seed(&self, companies: usize) {
        let data = rapport_crm::seed::generate(&rapport_crm::seed::SeedParams::new(companies, 7));
        rapport_crm::seed::write(
            &self.store,
            &self.ctx(),
            &data,
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .expect("seed");
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.done).await;
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn location(&self) -> &str {
        self.header("location")
    }

    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        &self.body
    }
}

/// Keeps cookies like a browser; follows no redirects (tests look at them).
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// Send `HX-Request` (and the CSRF header) like htmx does.
    pub htmx: bool,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
            htmx: false,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let mut req = req;
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let headers = res.headers().clone();
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap_or_default();
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), val.to_owned());
                }
            }
        }
        let body = res.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if self.htmx {
            req = req.header("HX-Request", "true");
        }
        self.send(req).await
    }

    /// A GET as htmx sends it for a fragment, with its target.
    pub async fn get_fragment(&mut self, path: &str, target: &str) -> Answer {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .header("HX-Target", target);
        self.send(req).await
    }

    /// A form post with exactly these fields.
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        csrf_header: Option<&str>,
    ) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(fields);
        if self.htmx {
            req = req.header("HX-Request", "true");
        }
        if let Some(t) = csrf_header {
            req = req.header("X-CSRF-Token", t);
        }
        self.send(req).await
    }

    /// A form post carrying the page's CSRF token (as a field, or as the
    /// header when acting as htmx).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.csrf().await;
        if self.htmx {
            self.post_raw(path, fields, Some(&token)).await
        } else {
            let mut all = fields.to_vec();
            all.push(("csrf", &token));
            self.post_raw(path, &all, None).await
        }
    }

    /// The session's CSRF token, read from a page's meta tag.
    pub async fn csrf(&mut self) -> String {
        let htmx = std::mem::replace(&mut self.htmx, false);
        let page = self.get("/companies").await;
        self.htmx = htmx;
        meta(&page.body, "csrf-token")
            .unwrap_or_else(|| panic!("no CSRF token on the page: {}", page.body))
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        let form = self.get("/signin").await;
        let token = input_value(&form.body, "signin_token").expect("sign-in token");
        let req = self.http.post(format!("{}/signin", self.base)).form(&[
            ("email", email),
            ("password", password),
            ("signin_token", &token),
            ("next", "/"),
        ]);
        self.send(req).await
    }

    pub fn session(&self) -> Option<String> {
        self.cookies.get(rapport_web::auth::SESSION_COOKIE).cloned()
    }
}

/// The `content` of `<meta name="NAME" content="…">`.
pub fn meta(html: &str, name: &str) -> Option<String> {
    let pattern = format!("<meta name=\"{name}\" content=\"");
    let at = html.find(&pattern)?;
    let rest = &html[at + pattern.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The value of the input named `name`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let pattern = format!("name=\"{name}\" value=\"");
    let at = html.find(&pattern)?;
    let rest = &html[at + pattern.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Undoes the template's escaping of `/` and `&` in URLs, to compare links.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/").replace("&amp;", "&")
}
