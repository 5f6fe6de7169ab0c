//! Static files: the copy embedded at build time (see `build/assets.rs`) or a directory on disk,
//! with entity tags, `If-None-Match` revalidation and the security headers HTML pages need.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use super::asset_meta::{content_type_for_path, strong_etag};
use super::percent::{percent_decode, PlusMeans};
use super::response::Response;

/// One file embedded into the binary by the build script.
#[derive(Debug)]
pub struct EmbeddedAsset {
    /// The decoded URL path it is served at, e.g. `/js/app.js` for `static/js/app.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Strong entity tag from [`strong_etag`], quotes included.
    pub etag: &'static str,
    pub body: &'static [u8],
}

// Defines `EMBEDDED_ASSETS: &[EmbeddedAsset]`, sorted by `path`.
include!(concat!(env!("OUT_DIR"), "/static_assets.rs"));

/// Every embedded file, sorted by URL path.
pub fn embedded_assets() -> &'static [EmbeddedAsset] {
    EMBEDDED_ASSETS
}

/// The embedded file served at the decoded URL `path`, if any.
pub fn embedded_asset(path: &str) -> Option<&'static EmbeddedAsset> {
    EMBEDDED_ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .map(|index| &EMBEDDED_ASSETS[index])
}

/// Where static files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticSource {
    /// The copy of `static/` compiled into the binary.
    Embedded,
    /// A directory read on every request, so edits show up without a rebuild.
    Dir(PathBuf),
}

/// The policy every HTML page is served with: only this origin's scripts, styles, images and
/// sockets; no plugins, no `<base>` rewriting, no framing by other sites.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
form-action 'self'";

/// A file found for a request, before conditional handling.
#[derive(Debug)]
pub enum StaticFile {
    Embedded(&'static EmbeddedAsset),
    Disk {
        content_type: &'static str,
        etag: String,
        body: Vec<u8>,
    },
}

/// The outcome of looking a URL path up.
#[derive(Debug)]
pub enum StaticLookup {
    Found(StaticFile),
    NotFound,
    /// The path is malformed or tries to leave the web root (`..`, NUL, backslash, bad escapes).
    BadPath,
    /// The file exists but could not be read.
    Unreadable,
}

/// Turns a raw (percent-encoded) URL path into the decoded path of a file under the web root:
/// `/` and any path ending in `/` get `index.html`. `None` for anything that could name a file
/// outside the root or that filesystems treat specially.
pub fn file_path_for_url(raw_path: &str) -> Option<Cow<'_, str>> {
    let decoded = percent_decode(raw_path, PlusMeans::Plus)?;
    if !decoded.starts_with('/') || decoded.contains(['\0', '\\']) {
        return None;
    }
    if decoded
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return None;
    }
    if decoded.ends_with('/') {
        return Some(Cow::Owned(format!("{decoded}index.html")));
    }
    Some(decoded)
}

/// Finds the file for a raw URL path in `source`.
pub fn lookup(source: &StaticSource, raw_path: &str) -> StaticLookup {
    let Some(path) = file_path_for_url(raw_path) else {
        return StaticLookup::BadPath;
    };
    match source {
        StaticSource::Embedded => match embedded_asset(&path) {
            Some(asset) => StaticLookup::Found(StaticFile::Embedded(asset)),
            None => StaticLookup::NotFound,
        },
        StaticSource::Dir(root) => match read_from_dir(root, &path) {
            Ok(Some(file)) => StaticLookup::Found(file),
            Ok(None) => StaticLookup::NotFound,
            Err(_) => StaticLookup::Unreadable,
        },
    }
}

/// Reads `path` (already checked by [`file_path_for_url`]) below `root`. The canonical-path check
/// catches what the textual check cannot: a symlink inside the root pointing outside it.
fn read_from_dir(root: &Path, path: &str) -> io::Result<Option<StaticFile>> {
    let mut file_path = root.to_path_buf();
    file_path.extend(path.split('/').filter(|segment| !segment.is_empty()));
    let canonical_root = root.canonicalize()?;
    let canonical_file = match file_path.canonicalize() {
        Ok(canonical_file) => canonical_file,
        Err(error) if is_missing(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    if !canonical_file.starts_with(&canonical_root) || !canonical_file.is_file() {
        return Ok(None);
    }
    let body = match std::fs::read(&canonical_file) {
        Ok(body) => body,
        Err(error) if is_missing(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(StaticFile::Disk {
        content_type: content_type_for_path(path),
        etag: strong_etag(&body),
        body,
    }))
}

fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or any listed tag equal under the weak
/// comparison RFC 9110 13.1.2 prescribes for this header (a `W/` prefix is ignored).
pub fn if_none_match_matches(if_none_match: &[u8], etag: &str) -> bool {
    let value = if_none_match.trim_ascii();
    if value == b"*" {
        return true;
    }
    let etag = etag.strip_prefix("W/").unwrap_or(etag).as_bytes();
    value.split(|&byte| byte == b',').any(|candidate| {
        let candidate = candidate.trim_ascii();
        let candidate = candidate.strip_prefix(b"W/").unwrap_or(candidate);
        candidate == etag
    })
}

/// The response for a found file: 304 when the client's copy is current, else 200 with the body.
/// `no-cache` lets browsers keep the file but makes them revalidate, so a deploy is seen at once.
pub fn respond(file: StaticFile, if_none_match: Option<&[u8]>) -> Response {
    let (content_type, etag) = match &file {
        StaticFile::Embedded(asset) => (asset.content_type, Cow::Borrowed(asset.etag)),
        StaticFile::Disk {
            content_type, etag, ..
        } => (*content_type, Cow::Owned(etag.clone())),
    };
    let not_modified = if_none_match.is_some_and(|value| if_none_match_matches(value, &etag));
    let response = if not_modified {
        Response::static_bytes(304, content_type, b"")
    } else {
        match file {
            StaticFile::Embedded(asset) => Response::static_bytes(200, content_type, asset.body),
            StaticFile::Disk { body, .. } => Response::bytes(200, content_type, body),
        }
    };
    let response = match etag {
        Cow::Borrowed(etag) => response.with_static_header("ETag", etag),
        Cow::Owned(etag) => response.with_header("ETag", etag),
    }
    .with_static_header("Cache-Control", "no-cache");
    if !not_modified && content_type.starts_with("text/html") {
        response
            .with_static_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            .with_static_header("Referrer-Policy", "no-referrer")
    } else {
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_holds_the_placeholder_page_sorted() {
        let index = embedded_asset("/index.html").expect("static/index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert_eq!(index.etag, strong_etag(index.body));
        assert!(embedded_asset("/favicon.svg").is_some());
        assert!(embedded_assets()
            .windows(2)
            .all(|pair| pair[0].path < pair[1].path));
    }

    #[test]
    fn embedded_bodies_match_the_files_on_disk() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/static"));
        for asset in embedded_assets() {
            let on_disk = std::fs::read(root.join(&asset.path[1..])).unwrap();
            assert_eq!(asset.body, on_disk.as_slice(), "{}", asset.path);
        }
    }

    #[test]
    fn url_paths_map_to_files_or_are_refused() {
        assert_eq!(file_path_for_url("/").as_deref(), Some("/index.html"));
        assert_eq!(
            file_path_for_url("/docs/").as_deref(),
            Some("/docs/index.html")
        );
        assert_eq!(file_path_for_url("/a%20b.txt").as_deref(), Some("/a b.txt"));
        for hostile in [
            "/../etc/passwd",
            "/js/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E%2fsecret",
            "/..%2fsecret",
            "/a%00.html",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/./index.html",
            "/%zz",
            "relative",
        ] {
            assert_eq!(file_path_for_url(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn if_none_match_handles_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        assert!(if_none_match_matches(b"\"abc\"", etag));
        assert!(if_none_match_matches(b" \"x\", W/\"abc\" ", etag));
        assert!(if_none_match_matches(b"*", etag));
        assert!(!if_none_match_matches(b"\"abcd\"", etag));
        assert!(!if_none_match_matches(b"abc", etag));
        assert!(!if_none_match_matches(b"", etag));
    }

    #[test]
    fn html_gets_csp_and_304_gets_no_body() {
        let index = embedded_asset("/index.html").unwrap();
        let ok = respond(StaticFile::Embedded(index), None);
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.header("Content-Security-Policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
        assert_eq!(ok.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(ok.header("Cache-Control"), Some("no-cache"));
        assert_eq!(ok.header("ETag"), Some(index.etag));
        assert_eq!(ok.body.as_bytes(), index.body);

        let not_modified = respond(StaticFile::Embedded(index), Some(index.etag.as_bytes()));
        assert_eq!(not_modified.status, 304);
        assert_eq!(not_modified.header("ETag"), Some(index.etag));
        let mut out = Vec::new();
        not_modified.write_to(&mut out, false, true);
        assert!(out.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn svg_has_no_html_policy_headers() {
        let favicon = embedded_asset("/favicon.svg").unwrap();
        let ok = respond(StaticFile::Embedded(favicon), Some(b"\"stale\""));
        assert_eq!(ok.status, 200);
        assert_eq!(ok.content_type, "image/svg+xml");
        assert_eq!(ok.header("Content-Security-Policy"), None);
    }
}
