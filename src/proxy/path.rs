//! Request-path normalisation, done once before routing so that what is matched is what is
//! forwarded. Per RFC 3986 section 6: percent-encoded unreserved characters are decoded (so
//! `%2e` is `.`), other escapes get upper-case hex, runs of `/` are merged, and dot segments are
//! resolved. Encoded slashes and backslashes (`%2F`, `%5C`, `\`), NUL, `..` that would climb
//! above the root, and segments that other servers read as dot segments but RFC 3986 does not
//! (`..;x`, `.;x`: Tomcat, Jetty and Spring drop the `;` parameters; `%252e%252e`, which a
//! server that decodes twice reads as `..`) are refused: their meaning differs between servers,
//! which is how prefix checks get bypassed.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path holds an encoded slash or backslash")]
    EncodedSeparator,
    #[error("the path holds a NUL or control character")]
    ControlCharacter,
    #[error("the path has a malformed percent escape")]
    BadEscape,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("a path segment is a dot segment in disguise (parameters or double encoding)")]
    DisguisedDotSegment,
}

/// A request path after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// Normalised path with dot segments resolved.
    pub(crate) path: String,
    /// The same path before dot segments were resolved (escapes and slashes already normalised).
    /// Equal to `path` when the request had no dot segments.
    pub(crate) unresolved: String,
}

impl NormalizedPath {
    pub(crate) fn had_dot_segments(&self) -> bool {
        self.path != self.unresolved
    }
}

/// Normalises the path part of a request target (without the query).
pub fn normalize(raw: &str) -> Result<NormalizedPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_already_normal(raw) {
        return Ok(NormalizedPath {
            path: raw.to_string(),
            unresolved: raw.to_string(),
        });
    }
    let decoded = decode_unreserved(raw)?;
    if decoded.split('/').any(is_disguised_dot_segment) {
        return Err(PathError::DisguisedDotSegment);
    }
    let merged = merge_slashes(&decoded);
    let path = remove_dot_segments(&merged)?;
    Ok(NormalizedPath {
        path,
        unresolved: merged,
    })
}

/// The common case, checked in one pass: no escapes, backslashes, control characters, empty
/// segments, or dot segments (with or without `;` parameters).
fn is_already_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let ends_dot_segment = |b: Option<&u8>| matches!(b, None | Some(b'/' | b';'));
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'%' | b'\\' => false,
        b if b < 0x20 || b == 0x7f => false,
        b'/' => !matches!(bytes.get(i + 1), Some(b'/')),
        b'.' => {
            let starts_segment = bytes.get(i.wrapping_sub(1)) == Some(&b'/');
            let dot_segment = ends_dot_segment(bytes.get(i + 1))
                || (bytes.get(i + 1) == Some(&b'.') && ends_dot_segment(bytes.get(i + 2)));
            !(starts_segment && dot_segment)
        }
        _ => true,
    })
}

/// Percent-decodings applied before giving up: a segment still encoded after this many is
/// refused too (no server decodes that often).
const MAX_DECODINGS: usize = 4;

/// Whether a segment (after one round of [`decode_unreserved`]) is not a dot segment to RFC
/// 3986 but is one to a server that drops `;` path parameters or percent-decodes again:
/// `..;x`, `.;`, `%252e%252e`, `..%3B`, `%252e%252e;x`.
fn is_disguised_dot_segment(segment: &str) -> bool {
    if segment == "." || segment == ".." || !segment.starts_with(['.', '%']) {
        return false;
    }
    let mut text = std::borrow::Cow::Borrowed(segment);
    for _ in 0..=MAX_DECODINGS {
        let bare = text.split(';').next().unwrap_or_default();
        if bare == "." || bare == ".." {
            return true;
        }
        if !text.contains('%') {
            return false;
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            return false;
        }
        text = std::borrow::Cow::Owned(decoded);
    }
    // Still changing after every decoding we allow: refuse rather than guess.
    true
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::BadEscape)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    v if v < 0x20 || v == 0x7f => return Err(PathError::ControlCharacter),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        let _ = write!(out, "%{v:02X}");
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::EncodedSeparator),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                // The raw path is ASCII (hyper refuses anything else); copy the byte as a char.
                out.push(char::from(b));
                i += 1;
                continue;
            }
        }
    }
    Ok(out)
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        out.push(c);
    }
    out
}

/// RFC 3986 section 5.2.4 for an absolute path, refusing `..` above the root instead of
/// silently dropping it.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(|n| n.path)
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in ["/", "/a", "/a/", "/a/b.json", "/a/b%20c", "/tools/x/y?"] {
            assert_eq!(norm(p).unwrap(), p, "{p}");
        }
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(norm("/a/../b").unwrap(), "/b");
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(norm("/a/%2E./b").unwrap(), "/b");
        assert_eq!(norm("/a/.%2e").unwrap(), "/");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(norm("//a///b//").unwrap(), "/a/b/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(norm("/%61%7e/%3a%3A").unwrap(), "/a~/%3A%3A");
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_one() {
        for p in [
            "/a/b",
            "/a.b/.c/d..",
            "/a/./b",
            "/a/../b",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/%2e",
            "/a\\b",
            "/.a",
            "/a./",
            "/..;/a",
            "/.;",
            "/a/..;x",
            "/a/...;x",
        ] {
            let fast = is_already_normal(p);
            let full =
                remove_dot_segments(&merge_slashes(&decode_unreserved(p).unwrap_or_default())).ok();
            if fast {
                assert_eq!(full.as_deref(), Some(p), "{p}");
            }
        }
        assert!(is_already_normal(
            "/tools/confluence/wiki/rest/api/content/12345"
        ));
        assert!(!is_already_normal("/a/./b"));
        assert!(!is_already_normal("/a/.."));
        assert!(!is_already_normal("/a//b"));
    }

    #[test]
    fn dangerous_paths_are_refused() {
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2F..%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a\\b"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn dot_segments_in_disguise_are_refused() {
        for p in [
            "/public/..;/admin/users",
            "/public/..;jsessionid=x/admin",
            "/public/.;/admin",
            "/public/.;x",
            "/public/%2e%2e;/admin",
            "/public/..%3b/admin",
            "/public/..%3B/admin",
            "/public/%252e%252e/admin/x",
            "/public/%252E%252E/admin/x",
            "/public/.%252e/admin",
            "/public/%252e/admin",
            "/public/%25252e%25252e/admin",
            "/public/%252e%252e;x/admin",
            "/public/%2525252525252e/admin",
        ] {
            assert_eq!(norm(p), Err(PathError::DisguisedDotSegment), "{p}");
        }
    }

    #[test]
    fn segments_that_only_look_like_dots_pass() {
        for (p, want) in [
            ("/public/a;b/c", "/public/a;b/c"),
            ("/public/...;x", "/public/...;x"),
            ("/public/..a;/b", "/public/..a;/b"),
            ("/public/.well-known;x", "/public/.well-known;x"),
            ("/public/%25/a", "/public/%25/a"),
            ("/public/%252f", "/public/%252f"),
            ("/public/x;..", "/public/x;.."),
        ] {
            assert_eq!(norm(p).as_deref(), Ok(want), "{p}");
        }
    }

    #[test]
    fn unresolved_form_is_kept_for_prefix_checks() {
        let n = normalize("/tools/x/../y").unwrap();
        assert_eq!(n.unresolved, "/tools/x/../y");
        assert!(n.had_dot_segments());
        assert!(!normalize("/tools/x/y").unwrap().had_dot_segments());
    }
}
