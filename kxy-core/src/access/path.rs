//! One spelling per path, for the access check.
//!
//! Services ask kxy about the path a request arrived with, and web servers
//! route many spellings of one path to the same handler (`/a/../b`, `/%62`,
//! `/b;x=1`, `//b`, `/B/`). Matched as raw text, a caller granted
//! `/public/*` could ask about `/public/../admin` and be judged by that
//! grant while the server serves `/admin`. So endpoint patterns (when
//! registered) and checked paths are both reduced to one normal form:
//!
//! 1. everything from the first `?` or `#` is dropped (query, fragment);
//! 2. the path must start with `/`;
//! 3. `%XX` escapes (either case) are decoded once. An escape of `/`, `\`,
//!    `;`, `%`, `?`, `#` or a control character is refused: servers
//!    disagree on whether it splits segments or is decoded again. So are
//!    a raw `\` or control character, a malformed escape, and bytes that
//!    are not UTF-8;
//! 4. in each segment, `;` and what follows (path parameters such as
//!    `;jsessionid=…`) is dropped;
//! 5. empty segments (`//`, a trailing `/`) and `.` segments are dropped;
//!    `..` drops the segment before it. A `..` above the root is refused,
//!    and so is one whose result depends on whether `//` was merged first
//!    (`/a//../b` is `/b` to nginx, `/a/b` by RFC 3986);
//! 6. ASCII letters are lowercased: matching ignores case.
//!
//! A path already in normal form is returned as is, without allocating.

use std::borrow::Cow;

/// Why a path has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("must start with /")]
    NotAbsolute,
    #[error("a % must be followed by two hex digits")]
    BadEscape,
    #[error(
        "%{0:02X} is refused: an encoded /, \\, ;, %, ?, # or control character means \
         different things to different servers"
    )]
    EncodedReserved(u8),
    #[error("a \\ or control character is not allowed")]
    Forbidden,
    #[error("percent-escapes must decode to UTF-8")]
    NotUtf8,
    #[error("a .. segment goes above the root")]
    AboveRoot,
    #[error("a .. after // is ambiguous: servers differ on whether it removes the empty segment")]
    AmbiguousDotDot,
}

/// The normal form of `path` (see the module documentation).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode(path)?;
    // `merged` drops empty segments before resolving `..` (nginx and most
    // servers); `kept` keeps them, as RFC 3986 does. Where the two disagree
    // on the segments that remain, the path is ambiguous.
    let mut merged: Vec<&str> = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for segment in decoded[1..].split('/') {
        match segment.split(';').next().unwrap_or_default() {
            "." => {}
            ".." => {
                merged.pop().ok_or(PathError::AboveRoot)?;
                kept.pop().ok_or(PathError::AboveRoot)?;
            }
            "" => kept.push(""),
            segment => {
                merged.push(segment);
                kept.push(segment);
            }
        }
    }
    if !kept.iter().filter(|s| !s.is_empty()).eq(merged.iter()) {
        return Err(PathError::AmbiguousDotDot);
    }
    let mut normal = String::with_capacity(decoded.len());
    for segment in &merged {
        normal.push('/');
        normal.push_str(&segment.to_ascii_lowercase());
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Ok(Cow::Owned(normal))
}

/// Whether `path` (without query) is its own normal form.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && (bytes.len() == 1 || bytes.last() != Some(&b'/'))
        && !bytes
            .iter()
            .any(|&b| matches!(b, b'%' | b';' | b'\\' | b'A'..=b'Z') || b.is_ascii_control())
        && !path.contains("//")
        && path[1..].split('/').all(|s| s != "." && s != "..")
}

fn decode(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) else {
                return Err(PathError::BadEscape);
            };
            let decoded = hi << 4 | lo;
            if matches!(decoded, b'/' | b'\\' | b';' | b'%' | b'?' | b'#')
                || decoded.is_ascii_control()
            {
                return Err(PathError::EncodedReserved(decoded));
            }
            out.push(decoded);
            i += 3;
        } else {
            if b == b'\\' || b.is_ascii_control() {
                return Err(PathError::Forbidden);
            }
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(path: &str) -> Result<String, PathError> {
        normalize(path).map(Cow::into_owned)
    }

    #[test]
    fn spellings_of_one_path_meet() {
        for spelling in [
            "/admin/secret",
            "/public/../admin/secret",
            "/public/%2e%2E/admin/secret",
            "/public/..;/admin/secret",
            "/admin;x=1/secret;y",
            "//admin//secret/",
            "/ADMIN/Secret",
            "/%61dmin/./secret?x=/y#z",
        ] {
            assert_eq!(n(spelling).as_deref(), Ok("/admin/secret"), "{spelling}");
        }
        assert_eq!(n("/").as_deref(), Ok("/"));
        assert_eq!(n("/a/..").as_deref(), Ok("/"));
        assert_eq!(n("/caf%C3%A9").as_deref(), Ok("/café"));
        assert!(matches!(normalize("/orders/{id}"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        use PathError::*;
        for (path, error) in [
            ("admin", NotAbsolute),
            ("/a%2fb", EncodedReserved(b'/')),
            ("/a%5Cb", EncodedReserved(b'\\')),
            ("/a%3bb", EncodedReserved(b';')),
            ("/%252e%252e/a", EncodedReserved(b'%')),
            ("/a%00", EncodedReserved(0)),
            ("/a\\b", Forbidden),
            ("/a\tb", Forbidden),
            ("/a%zz", BadEscape),
            ("/a%2", BadEscape),
            ("/%ff", NotUtf8),
            ("/..", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/a//../b", AmbiguousDotDot),
            ("/a/;/../b", AmbiguousDotDot),
        ] {
            assert_eq!(n(path), Err(error), "{path}");
        }
    }

    proptest! {
        /// Normalising twice changes nothing, and a normal form is borrowed.
        #[test]
        fn normal_forms_are_fixed_points(path in "/[a-zA-Z0-9./;%2eEfF_-]{0,24}") {
            if let Ok(once) = normalize(&path) {
                let twice = normalize(&once).unwrap();
                prop_assert!(matches!(twice, Cow::Borrowed(_)), "{path} -> {once}");
                prop_assert_eq!(twice.as_ref(), once.as_ref());
                prop_assert!(once.split('/').all(|s| s != ".." && s != "."));
                prop_assert!(!once.contains(['%', ';', '\\']) && !once.contains("//"));
            }
        }

        /// A `/x/..` detour before a path never changes what it means.
        #[test]
        fn a_detour_leads_back(
            detour in "[a-zA-Z0-9_-]{1,8}",
            rest in "(/[a-zA-Z0-9_-]{1,8}){0,4}",
        ) {
            let plain = normalize(if rest.is_empty() { "/" } else { &rest }).map(Cow::into_owned);
            let detoured = normalize(&format!("/{detour}/..{rest}")).map(Cow::into_owned);
            prop_assert_eq!(plain, detoured);
        }
    }
}
