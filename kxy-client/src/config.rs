//! How a client reaches its servers: base URLs, timeouts, headers, API key.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::ClientError;

/// Settings of a [`crate::SegmentClient`], kept so that a client can be
/// rebuilt from them (after a `fork`, see [`crate::fork`]).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) base_urls: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) verify_tls: bool,
    pub(crate) headers: HeaderMap,
}

impl ClientConfig {
    /// The Python client's default request timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// How long a TCP (and TLS) connect may take by default. A server on
    /// the same network answers a connect within milliseconds; one that
    /// does not within a second is treated as down, so that the next base
    /// URL is tried well within a generator's `max_wait`.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// The `User-Agent` requests carry unless a `User-Agent` header is set
    /// with [`Self::header`]: `kxy-client/<version>`.
    pub const DEFAULT_USER_AGENT: &'static str = concat!("kxy-client/", env!("CARGO_PKG_VERSION"));

    /// A configuration for one or more servers, tried in order on failure.
    /// URLs must be `http://` or `https://`; a trailing `/` is ignored.
    pub fn new<I, S>(base_urls: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut urls = Vec::new();
        for url in base_urls {
            let url = url.as_ref().trim_end_matches('/');
            let valid = (url.starts_with("http://") || url.starts_with("https://"))
                && reqwest::Url::parse(url).is_ok();
            if !valid {
                return Err(ClientError::InvalidArgument(format!(
                    "base URL {url:?} is not an http:// or https:// URL"
                )));
            }
            urls.push(url.to_owned());
        }
        if urls.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one base URL is required".into(),
            ));
        }
        Ok(ClientConfig {
            base_urls: urls,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            verify_tls: true,
            headers: HeaderMap::new(),
        })
    }

    /// Per-request timeout (connect + answer).
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, ClientError> {
        if timeout.is_zero() {
            return Err(ClientError::InvalidArgument(
                "timeout must be longer than zero".into(),
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// How long connecting to a server may take (default
    /// [`Self::DEFAULT_CONNECT_TIMEOUT`]); never more than the request
    /// timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Result<Self, ClientError> {
        if timeout.is_zero() {
            return Err(ClientError::InvalidArgument(
                "connect_timeout must be longer than zero".into(),
            ));
        }
        self.connect_timeout = timeout;
        Ok(self)
    }

    /// The request timeout (connect + answer).
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The connect timeout in effect: the configured one, at most the
    /// request timeout.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.min(self.timeout)
    }

    /// Whether to verify the server's TLS certificate (default true).
    pub fn verify_tls(mut self, verify: bool) -> Self {
        self.verify_tls = verify;
        self
    }

    /// Adds a header to every request; a `User-Agent` set here replaces
    /// [`Self::DEFAULT_USER_AGENT`].
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError::InvalidArgument(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ClientError::InvalidArgument(format!("invalid value for header {name}"))
        })?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// Sends `Authorization: Bearer <api_key>` with every request. The key is
    /// marked sensitive so it never shows in debug output.
    pub fn api_key(mut self, api_key: &str) -> Result<Self, ClientError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|_| {
            ClientError::InvalidArgument(
                "the API key contains characters not allowed in a header".into(),
            )
        })?;
        value.set_sensitive(true);
        self.headers.insert(AUTHORIZATION, value);
        Ok(self)
    }

    pub fn base_urls(&self) -> &[String] {
        &self.base_urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let config = ClientConfig::new(["http://a:5801/", "https://b"]).unwrap();
        assert_eq!(config.base_urls(), ["http://a:5801", "https://b"]);
        for bad in ["", "a:5801", "ftp://x", "http://"] {
            assert!(ClientConfig::new([bad]).is_err(), "{bad}");
        }
        assert!(ClientConfig::new(Vec::<String>::new()).is_err());
    }

    #[test]
    fn connects_time_out_before_requests() {
        let config = ClientConfig::new(["http://a"]).unwrap();
        assert_eq!(
            config.effective_connect_timeout(),
            ClientConfig::DEFAULT_CONNECT_TIMEOUT
        );
        let short = config.clone().timeout(Duration::from_millis(300)).unwrap();
        assert_eq!(
            short.effective_connect_timeout(),
            Duration::from_millis(300)
        );
        let custom = config.connect_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(custom.effective_connect_timeout(), Duration::from_secs(2));
        assert!(custom.connect_timeout(Duration::ZERO).is_err());
    }

    #[test]
    fn api_keys_are_sensitive() {
        let config = ClientConfig::new(["http://a"])
            .unwrap()
            .api_key("sk-kxy-secret")
            .unwrap();
        assert!(!format!("{config:?}").contains("sk-kxy-secret"));
        assert!(
            ClientConfig::new(["http://a"])
                .unwrap()
                .header("bad name", "x")
                .is_err()
        );
    }
}
