//! The file work of backups and restores: walking and hashing a tree,
//! copying with verification, the `.tar` form, and putting a finished
//! directory in place with one rename.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::manifest::{FileEntry, MANIFEST};
use super::{Error, Result};

/// Attaches the path and what was being done to an I/O error.
pub(crate) trait IoAt<T> {
    fn at(self, path: &Path, doing: &str) -> Result<T>;
}

impl<T> IoAt<T> for io::Result<T> {
    fn at(self, path: &Path, doing: &str) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: format!("{doing} {}", path.display()),
            source,
        })
    }
}

/// The regular files under `root` (the manifest excluded), as sorted
/// `/`-separated relative paths. Anything else (a symbolic link, a device)
/// is refused: a backup holds plain files only.
pub fn list(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    out.retain(|p| p != MANIFEST);
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).at(dir, "listing")? {
        let entry = entry.at(dir, "listing")?;
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            Error::Tampered(format!(
                "a file name that is not UTF-8 in {}",
                dir.display()
            ))
        })?;
        let rel = format!("{prefix}{name}");
        let ty = entry.file_type().at(&entry.path(), "reading")?;
        if ty.is_dir() {
            walk(&entry.path(), &format!("{rel}/"), out)?;
        } else if ty.is_file() {
            out.push(rel);
        } else {
            return Err(Error::Tampered(format!("{rel} is not a plain file")));
        }
    }
    Ok(())
}

/// The path of a `/`-separated relative path under `root`.
pub fn under(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
}

/// Hashes every file under `root` for the manifest.
pub fn hash_all(root: &Path, progress: &ProgressBar) -> Result<Vec<FileEntry>> {
    let paths = list(root)?;
    let mut total = 0;
    for rel in &paths {
        let path = under(root, rel);
        total += fs::metadata(&path).at(&path, "reading")?.len();
    }
    progress.set_length(total);
    progress.set_position(0);
    paths
        .into_iter()
        .map(|rel| {
            let path = under(root, &rel);
            let file = File::open(&path).at(&path, "reading")?;
            let (size, sha256) = hash_copy(file, io::sink(), progress).at(&path, "hashing")?;
            Ok(FileEntry {
                path: rel,
                size,
                sha256,
            })
        })
        .collect()
}

/// Streams `from` into `to`, returning the bytes and their hex sha256.
fn hash_copy(from: impl Read, to: impl Write, progress: &ProgressBar) -> io::Result<(u64, String)> {
    let mut from = BufReader::with_capacity(1 << 16, from);
    let mut to = BufWriter::with_capacity(1 << 16, to);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
        progress.inc(n as u64);
    }
    to.flush()?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Copies one listed file to `dest`, checking its size and hash against the
/// manifest on the way.
pub fn copy_verified(
    src_root: &Path,
    entry: &FileEntry,
    dest: &Path,
    progress: &ProgressBar,
) -> Result<()> {
    let src = under(src_root, &entry.path);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).at(parent, "creating")?;
    }
    let from = File::open(&src).at(&src, "reading")?;
    let to = File::create(dest).at(dest, "writing")?;
    let (size, sha256) = hash_copy(from, &to, progress).at(&src, "copying")?;
    if sha256 != entry.sha256 || size != entry.size {
        return Err(Error::HashMismatch {
            path: entry.path.clone(),
            expected: entry.sha256.clone(),
            actual: sha256,
        });
    }
    to.sync_all().at(dest, "writing")
}

/// Whether `path` is absent or an empty directory.
pub fn is_free(path: &Path) -> Result<bool> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(false),
        Err(e) => Err(e).at(path, "reading"),
    }
}

/// The directory `path` will sit in, created if missing: temporary work goes
/// there, so the final step is a rename within one file system.
pub fn parent_of(path: &Path) -> Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).at(&parent, "creating")?;
    Ok(parent)
}

/// A temporary directory beside `path` (same file system).
pub fn staging_beside(path: &Path, prefix: &str) -> Result<TempDir> {
    let parent = parent_of(path)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .at(&parent, "creating a temporary directory in")
}

/// Puts the finished directory `staged` at `target` with a rename. An empty
/// `target` is replaced; a non-empty one only with `force`, and then it is
/// moved aside first, put back if the rename fails, and removed after.
/// Returns whether something was replaced. On error nothing at `target` changed.
pub fn install(staged: TempDir, target: &Path, force: bool) -> Result<bool> {
    let free = is_free(target)?;
    if !free && !force {
        return Err(Error::NotEmpty {
            path: target.to_path_buf(),
        });
    }
    let staged = staged.keep();
    let done = if free {
        if target.exists() {
            fs::remove_dir(target).at(target, "replacing the empty directory")?;
        }
        fs::rename(&staged, target)
            .at(target, "moving the restored files to")
            .map(|()| false)
    } else {
        replace(&staged, target)
    };
    if done.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    done
}

fn replace(staged: &Path, target: &Path) -> Result<bool> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = target.with_file_name(format!(".{name}.replaced-{}", std::process::id()));
    fs::rename(target, &aside).at(target, "moving aside")?;
    if let Err(e) = fs::rename(staged, target) {
        let _ = fs::rename(&aside, target);
        return Err(e).at(target, "moving the restored files to");
    }
    fs::remove_dir_all(&aside).at(&aside, "removing the replaced directory")?;
    Ok(true)
}

/// Writes the directory `src` (manifest first, then the sorted files) as a
/// `.tar` at `dest`, through a temporary file beside it that is renamed into
/// place only when complete. Never overwrites.
pub fn write_tar(src: &Path, dest: &Path) -> Result<()> {
    let parent = parent_of(dest)?;
    let tmp = tempfile::Builder::new()
        .prefix(".rapport-backup-")
        .suffix(".tar.partial")
        .tempfile_in(&parent)
        .at(&parent, "creating a temporary file in")?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(tmp.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        let names = std::iter::once(MANIFEST.to_owned()).chain(list(src)?);
        for rel in names {
            let path = under(src, &rel);
            tar.append_path_with_name(&path, &rel)
                .at(&path, "archiving")?;
        }
        let out = tar.into_inner().at(dest, "writing")?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .at(dest, "writing")?;
    }
    tmp.as_file().sync_all().at(dest, "writing")?;
    tmp.persist_noclobber(dest)
        .map_err(|e| e.error)
        .at(dest, "renaming the finished archive to")?;
    Ok(())
}

/// Unpacks a `.tar` backup into `dest`. The tar reader refuses entries that
/// would land outside `dest`; the manifest check then refuses anything the
/// manifest does not list.
pub fn read_tar(src: &Path, dest: &Path) -> Result<()> {
    let file = File::open(src).at(src, "reading")?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    archive.set_preserve_permissions(false);
    archive.unpack(dest).map_err(|e| {
        Error::Tampered(format!(
            "{} is not a readable tar archive: {e}",
            src.display()
        ))
    })
}
