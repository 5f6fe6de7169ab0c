//! Facts about a static file that both the build script (embedded assets) and disk mode need:
//! its `Content-Type` and its strong `ETag`.
//!
//! This file is compiled twice: as `crate::http::asset_meta` and, through a `#[path]` module, inside
//! `build/assets.rs`. It therefore depends on `std` only, so that an embedded file and the same file
//! served from disk get identical headers.

/// The `Content-Type` for a URL or file path, chosen by its extension (case-insensitive).
/// Text types carry `charset=utf-8` so browsers never guess the encoding.
pub fn content_type_for_path(path: &str) -> &'static str {
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let extension = match file_name.rsplit_once('.') {
        Some((_, extension)) => extension,
        None => return "application/octet-stream",
    };
    const TYPES: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("ico", "image/x-icon"),
        ("json", "application/json"),
        ("map", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("woff2", "font/woff2"),
        ("woff", "font/woff"),
        ("wasm", "application/wasm"),
        ("webmanifest", "application/manifest+json"),
    ];
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map_or("application/octet-stream", |(_, content_type)| content_type)
}

/// A strong entity tag for `content`: the 128-bit FNV-1a hash of the bytes, as a quoted hex string.
///
/// FNV-1a is not cryptographic; an ETag only has to change when a file changes, and 128 bits make an
/// accidental collision between two versions of a file negligible. It needs no crate, which keeps the
/// build script dependency-free.
pub fn strong_etag(content: &[u8]) -> String {
    const FNV_OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = FNV_OFFSET_BASIS;
    for &byte in content {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    format!("\"{hash:032x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type_for_path("/index.html"),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type_for_path("/js/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type_for_path("/css/site.CSS"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type_for_path("/favicon.svg"), "image/svg+xml");
        assert_eq!(content_type_for_path("/favicon.ico"), "image/x-icon");
        assert_eq!(content_type_for_path("/logo.png"), "image/png");
        assert_eq!(content_type_for_path("/data.json"), "application/json");
        assert_eq!(
            content_type_for_path("/robots.txt"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type_for_path("/font.woff2"), "font/woff2");
        assert_eq!(
            content_type_for_path("/site.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(
            content_type_for_path("/LICENSE"),
            "application/octet-stream"
        );
        assert_eq!(
            content_type_for_path("/dir.d/README"),
            "application/octet-stream"
        );
    }

    #[test]
    fn etag_is_quoted_and_changes_with_content() {
        let empty = strong_etag(b"");
        assert_eq!(empty, "\"6c62272e07bb014262b821756295c58d\"");
        let hello = strong_etag(b"hello");
        assert_eq!(hello.len(), 34);
        assert!(hello.starts_with('"') && hello.ends_with('"'));
        assert_ne!(hello, strong_etag(b"hellp"));
        assert_eq!(hello, strong_etag(b"hello"));
    }
}
