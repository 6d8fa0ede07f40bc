//! Static files, embedded in the binary: the vendored htmx, its SSE extension
//! and SortableJS (see `assets/vendor/VENDOR.md` for versions, sha256 and
//! licences) and our own stylesheet and scripts (`app.js`, and `palette.js`
//! for the command palette's keys).
//!
//! They are served under `/assets/ASSET_VERSION/FILE` with a year-long,
//! immutable cache lifetime: a new release changes the version in the path,
//! so browsers never run a stale copy and never revalidate a current one.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Part of every asset URL; bump it whenever an embedded file changes.
pub const ASSET_VERSION: &str = "v2";

/// An embedded file: its name in URLs, its content type and its bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the app serves.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/vendor/htmx.min.js"),
    },
    Asset {
        name: "hx-sse.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/vendor/hx-sse.min.js"),
    },
    Asset {
        name: "Sortable.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/vendor/Sortable.min.js"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "palette.js",
        content_type: JS,
        bytes: include_bytes!("../assets/palette.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
    },
];

/// Our own files (the rest are vendored).
pub const OWN: &[&str] = &["app.js", "palette.js", "app.css"];

/// The URL of an embedded file.
pub fn url(name: &str) -> String {
    format!("/assets/{ASSET_VERSION}/{name}")
}

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /assets/VERSION/FILE`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = find(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut res = asset.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// Each vendored file still has the sha256 VENDOR.md pins, and every
    /// file in the vendor directory has a row.
    #[test]
    fn vendored_files_match_their_pinned_sha256() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/vendor");
        let table = std::fs::read_to_string(dir.join("VENDOR.md")).expect("VENDOR.md");
        let mut pinned = 0;
        for line in table
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains(".js"))
        {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (file, sha) = (cells[1], cells[4]);
            let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let actual: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, sha, "{file} differs from the sha256 VENDOR.md pins");
            pinned += 1;
        }
        let on_disk = std::fs::read_dir(&dir)
            .expect("vendor dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "js"))
            .count();
        assert_eq!(
            pinned, on_disk,
            "every vendored file needs a row in VENDOR.md"
        );
        assert_eq!(pinned, 4);
    }

    #[test]
    fn embedded_vendor_files_are_the_pinned_ones() {
        for a in super::ASSETS
            .iter()
            .filter(|a| !super::OWN.contains(&a.name))
        {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets/vendor")
                .join(a.name);
            assert_eq!(std::fs::read(path).expect("file"), a.bytes, "{}", a.name);
        }
    }
}
