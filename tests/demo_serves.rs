//! `rapport demo` ends with the web app served: it prints the address and a
//! sign-in for the demo's rep, and that sign-in opens the board. Runs the
//! real binary on a real SQLite file and signs in over real HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value after `prefix` on the first line of `lines` that has it.
fn after<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.split_once(prefix).map(|(_, v)| v.trim()))
}

fn cookie(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_web_app_with_a_sign_in_that_works() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("RAPPORT_DATABASE_URL")
        .env_remove("RAPPORT_QDRANT_URL")
        .env_remove("RAPPORT_WORKSPACE")
        .args([
            "demo",
            "--companies",
            "3",
            "--no-index",
            "--addr",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run rapport demo");
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    // Read what the demo prints until it names the password (it then
    // serves). The reader keeps draining the pipe after that: a demo that
    // printed into a closed pipe would die of it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let lines = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = line.contains("with the password");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    let base = after(&lines, "The web app: ")
        .unwrap_or_else(|| panic!("no address in {lines:#?}"))
        .trim_end_matches('/')
        .to_owned();
    let sign_in = after(&lines, "Sign in as ").expect("a sign-in");
    let (email, password) = sign_in
        .split_once(" with the password ")
        .expect("email and password");
    assert_eq!(email, "dana@rapport.example");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let planted = cookie(&page, "rapport_signin");
    let body = page.text().await.unwrap();
    let token = body
        .split_once(r#"name="signin_token" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(t, _)| t.to_owned())
        .expect("the form's token");
    let res = http
        .post(format!("{base}/signin"))
        .header("cookie", planted)
        .form(&[
            ("email", email),
            ("password", password),
            ("signin_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the printed sign-in works");
    let session = cookie(&res, "rapport_session");
    let board = http
        .get(format!("{base}/deals/board"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(board.status(), 200);
    assert!(
        board.text().await.unwrap().contains("Dana"),
        "signed in as the demo's rep"
    );
}
