//! A Redis URL as it may be shown: in logs, startup errors, error answers
//! and `/health`.
//!
//! A URL can carry a password in its user info (`redis://:pw@host`,
//! `redis://user:pw@host`) or its query (`redis+unix:///path?pass=pw`, and
//! forms other clients read, like `?password=pw`). The shown form is rebuilt
//! from the parsed parts, keeping only what is known to be harmless (user
//! name, host, port, database, protocol); any other query value, the
//! password, and a Unix socket's path (a filesystem path) are replaced. A
//! URL that does not parse is not shown at all: its parts cannot be told
//! apart.

/// Query parameters whose values are shown.
const SHOWN_PARAMETERS: [&str; 2] = ["db", "protocol"];

/// `url` without its secrets, e.g. `redis://user:***@host:6379/0`.
pub fn display(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return format!("{}(not shown: it does not parse)", scheme_of(url));
    };
    let scheme = parsed.scheme();
    let mut shown = format!("{scheme}://");
    if scheme.ends_with("unix") {
        shown.push_str("(socket path not shown)");
    } else {
        match (parsed.username(), parsed.password()) {
            ("", None) => {}
            (user, Some(_)) => shown.push_str(&format!("{user}:***@")),
            // A lone user info may be a password written without its colon.
            (_, None) => shown.push_str("***@"),
        }
        shown.push_str(parsed.host_str().unwrap_or(""));
        if let Some(port) = parsed.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(parsed.path());
    }
    let query: Vec<String> = parsed
        .query_pairs()
        .map(|(key, value)| {
            if SHOWN_PARAMETERS.contains(&key.as_ref()) && value.chars().all(is_plain) {
                format!("{key}={value}")
            } else {
                format!(
                    "{}=***",
                    key.chars().filter(|c| is_plain(*c)).collect::<String>()
                )
            }
        })
        .collect();
    if !query.is_empty() {
        shown.push('?');
        shown.push_str(&query.join("&"));
    }
    shown
}

/// `text` (say, a Redis client's error about `url`) with every secret of
/// `url` replaced, in case the client quoted part of it.
pub fn scrub(text: &str, url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return text.to_owned();
    };
    let mut secrets: Vec<String> = parsed
        .query_pairs()
        .filter(|(key, _)| !SHOWN_PARAMETERS.contains(&key.as_ref()))
        .map(|(_, value)| value.into_owned())
        .collect();
    if let Some(password) = parsed.password() {
        secrets.push(password.to_owned());
        secrets.extend(decoded(password));
    }
    if parsed.password().is_none() && !parsed.username().is_empty() {
        secrets.push(parsed.username().to_owned());
    }
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
}

/// The scheme and `://` of `url` if it has a plain one, for naming a URL
/// that does not parse.
fn scheme_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            &url[..scheme.len() + 3]
        }
        _ => "",
    }
}

/// `text` percent-decoded, as the Redis client reads a password.
fn decoded(text: &str) -> Option<String> {
    // Form decoding, with `+` kept as itself.
    let text = text.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
}

fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_shown_form() {
        let cases = [
            (
                "redis://:hunter2@10.0.0.1:6379/0",
                "redis://:***@10.0.0.1:6379/0",
            ),
            ("rediss://app:p@ss@host:6380", "rediss://app:***@host:6380"),
            ("redis://secret@host", "redis://***@host"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://127.0.0.1:6379/2?password=hunter2&protocol=resp3",
                "redis://127.0.0.1:6379/2?password=***&protocol=resp3",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix://(socket path not shown)?db=1&pass=***",
            ),
            (
                "unix:///run/redis.sock?pass=hunter2",
                "unix://(socket path not shown)?pass=***",
            ),
            (
                "redis://:hunter2@[::1",
                "redis://(not shown: it does not parse)",
            ),
            ("hunter2", "(not shown: it does not parse)"),
        ];
        for (url, shown) in cases {
            assert_eq!(display(url), shown, "{url}");
            assert!(!display(url).contains("hunter2"));
        }
    }

    #[test]
    fn quoted_secrets_are_scrubbed() {
        let url = "redis://:hunter%232@host/?protocol=hunter%232&x=abc";
        let text = "Invalid protocol version: hunter#2 (hunter%232), x abc";
        assert_eq!(
            scrub(text, url),
            "Invalid protocol version: *** (***), x ***"
        );
    }
}
