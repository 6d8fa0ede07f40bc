//! `rapport backup` and `rapport restore`, the real binary on a seeded data
//! directory: the restored directory answers `stats` exactly as the original;
//! a non-empty target needs `--force`; a damaged backup is refused and writes
//! nothing; PostgreSQL is pointed to pg_dump.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn rapport(data: &Path, models: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rapport"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("RAPPORT_DATABASE_URL")
        .env_remove("RAPPORT_QDRANT_URL")
        .env("RAPPORT_MODELS_DIR", models)
        .stdin(Stdio::null())
        .output()
        .expect("rapport runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn backup_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (data, models) = (root.join("data"), root.join("models"));
    ok(rapport(
        &data,
        &models,
        &["seed", "demo", "--companies", "3", "--as-of", "2026-11-02"],
    ));
    let stats = ok(rapport(&data, &models, &["stats", "--json"]));

    let archive = root.join("nightly.tar");
    let said = ok(rapport(
        &data,
        &models,
        &["backup", archive.to_str().unwrap()],
    ));
    assert!(said.contains("Backed up"), "{said}");
    assert!(archive.is_file());

    let restored = root.join("restored");
    let said = ok(rapport(
        &restored,
        &models,
        &["restore", archive.to_str().unwrap()],
    ));
    assert!(said.contains("Restored"), "{said}");
    assert_eq!(ok(rapport(&restored, &models, &["stats", "--json"])), stats);

    // Again into the same, now non-empty, directory: only with --force.
    let err = failed(rapport(
        &restored,
        &models,
        &["restore", archive.to_str().unwrap()],
    ));
    assert!(err.contains("--force"), "{err}");
    ok(rapport(
        &restored,
        &models,
        &["restore", archive.to_str().unwrap(), "--force"],
    ));
    assert_eq!(ok(rapport(&restored, &models, &["stats", "--json"])), stats);

    // A damaged directory backup: refused, nothing written.
    let bk = root.join("bk");
    ok(rapport(
        &data,
        &models,
        &["backup", bk.to_str().unwrap(), "--json"],
    ));
    let db = bk.join("rapport.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&db, bytes).unwrap();
    let fresh = root.join("fresh");
    let err = failed(rapport(&fresh, &models, &["restore", bk.to_str().unwrap()]));
    assert!(
        err.contains("sha256") && err.contains("nothing was restored"),
        "{err}"
    );
    assert!(!fresh.exists());

    // The scale-out deployment is not this command's.
    let err = failed(rapport(
        &data,
        &models,
        &[
            "--database-url",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "backup",
            root.join("pg").to_str().unwrap(),
        ],
    ));
    assert!(err.contains("pg_dump"), "{err}");
}
