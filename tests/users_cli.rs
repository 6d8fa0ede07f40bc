//! `rapport users invite|set-password` against a fresh data directory: the
//! invitation prints a temporary password once and stores only its argon2id
//! hash; set-password reads the new one from standard input, refuses short
//! ones, and ends the user's browser sessions.

use std::io::Write;
use std::process::{Command, Stdio};

fn rapport(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("RAPPORT_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rapport runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("rapport ends")
}

#[test]
fn users_are_invited_and_set_their_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = rapport(
        dir.path(),
        &[
            "users",
            "invite",
            "Ada@Example.test",
            "--name",
            "Ada",
            "--role",
            "manager",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let temporary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(temporary.trim().len(), 22, "{temporary}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));
    let db = std::fs::read(dir.path().join("rapport.sqlite")).unwrap();
    assert!(
        !db.windows(22).any(|w| w == temporary.trim().as_bytes()),
        "only the hash is stored"
    );
    // Too short: refused.
    let out = rapport(
        dir.path(),
        &["users", "set-password", "ada@example.test"],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
    let out = rapport(
        dir.path(),
        &["users", "set-password", "ada@example.test"],
        Some("a long enough password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("password set for Ada"));
    // An unknown user is an error that names the users there are.
    let out = rapport(
        dir.path(),
        &["users", "set-password", "nobody@example.test"],
        Some("a long enough password\n"),
    );
    assert!(!out.status.success());
}
