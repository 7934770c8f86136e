//! How a client reaches its servers: base URLs, timeouts, headers, API key,
//! and which TLS certificates it trusts.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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
    /// CA certificates trusted besides (or, with `only_added_roots`,
    /// instead of) the system's; each checked when added.
    pub(crate) root_certificates: Vec<reqwest::Certificate>,
    pub(crate) only_added_roots: bool,
    /// Told of every answer (see [`Self::on_answer`]).
    pub(crate) on_answer: Option<AnswerHook>,
}

/// What a client tells [`ClientConfig::on_answer`] of each answer.
#[derive(Debug, Clone, Copy)]
pub struct Answered<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub status: u16,
    /// The HTTP version, as in a status line: `HTTP/1.1`.
    pub version: &'a str,
    /// The status's reason phrase (`OK`, `Not Found`), or empty.
    pub reason: &'a str,
}

/// A callback for each answer a client receives (a request log).
#[derive(Clone)]
pub struct AnswerHook(pub Arc<dyn Fn(Answered<'_>) + Send + Sync>);

impl std::fmt::Debug for AnswerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerHook")
    }
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
            root_certificates: Vec::new(),
            only_added_roots: false,
            on_answer: None,
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

    /// Whether to verify the server's TLS certificate (default true). When
    /// false, no certificate is checked, whatever roots were added (httpx's
    /// `verify=False`).
    pub fn verify_tls(mut self, verify: bool) -> Self {
        self.verify_tls = verify;
        self
    }

    /// Trusts the CA certificates in `pem`: one or more `-----BEGIN
    /// CERTIFICATE-----` blocks, as in a CA bundle file; other blocks (a
    /// private key) are skipped. They are trusted besides the system's roots
    /// unless [`Self::only_added_roots`] is set, which is what httpx's
    /// `verify="/path/to/ca.pem"` does. Refused when there is no
    /// certificate block, or when one is malformed or not a usable CA
    /// certificate (the message says which, counting from 1).
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let mut added = 0;
        for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|e| {
                ClientError::InvalidArgument(format!("cannot read the PEM certificates: {e}"))
            })?;
            self = self.add_root_certificate_der(&cert).map_err(|e| match e {
                ClientError::InvalidArgument(msg) => {
                    ClientError::InvalidArgument(format!("PEM certificate {}: {msg}", index + 1))
                }
                other => other,
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::InvalidArgument(
                "no certificate in the PEM data (expected -----BEGIN CERTIFICATE----- \
                 blocks)"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// Trusts the CA certificate `der` (DER-encoded, as Python's
    /// `SSLContext.get_ca_certs(binary_form=True)` lists them), besides the
    /// system's roots unless [`Self::only_added_roots`] is set. Refused if
    /// it is not a certificate usable as a trust anchor.
    pub fn add_root_certificate_der(mut self, der: &[u8]) -> Result<Self, ClientError> {
        // The check reqwest makes when it builds the client, made now so
        // that a bad certificate is reported where it was given.
        rustls::RootCertStore::empty()
            .add(CertificateDer::from(der))
            .map_err(|e| {
                ClientError::InvalidArgument(format!("not a usable CA certificate: {e}"))
            })?;
        let cert = reqwest::Certificate::from_der(der).map_err(|e| {
            ClientError::InvalidArgument(format!("not a usable CA certificate: {e}"))
        })?;
        self.root_certificates.push(cert);
        Ok(self)
    }

    /// When true, only the certificates added with
    /// [`Self::add_root_certificates_pem`] and
    /// [`Self::add_root_certificate_der`] are trusted, not the system's
    /// roots (as httpx with a CA path or an `SSLContext`); with none added,
    /// no TLS server is trusted. Default false.
    pub fn only_added_roots(mut self, only: bool) -> Self {
        self.only_added_roots = only;
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

    /// Calls `hook` with each answer's status line, as it arrives, before
    /// the body is read: a request log (the Python package logs each one,
    /// as httpx did for the published client). Must return quickly.
    pub fn on_answer(mut self, hook: impl Fn(Answered<'_>) + Send + Sync + 'static) -> Self {
        self.on_answer = Some(AnswerHook(Arc::new(hook)));
        self
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

    #[test]
    fn root_certificates_are_checked_when_added() {
        let config = ClientConfig::new(["https://a"]).unwrap();
        let refused = |result: Result<ClientConfig, ClientError>, needle: &str| match result {
            Err(ClientError::InvalidArgument(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected {needle:?}, got {other:?}"),
        };
        refused(
            config.clone().add_root_certificates_pem(b""),
            "no certificate",
        );
        refused(
            config.clone().add_root_certificates_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            "no certificate",
        );
        refused(
            config.clone().add_root_certificates_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            "PEM certificate 1: not a usable CA certificate",
        );
        refused(
            config
                .clone()
                .add_root_certificate_der(b"\x30\x03\x02\x01\x00"),
            "not a usable CA certificate",
        );
        assert!(config.root_certificates.is_empty());
        assert!(!config.only_added_roots);
        assert!(config.only_added_roots(true).only_added_roots);
    }
}
