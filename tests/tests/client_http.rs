//! kxy-client's HTTP layer behaves like the published Python client's
//! (httpx + pydantic, `kxy-open-id-client` 0.2.1), issue 13 rows 5 and 15:
//!
//! - redirects are not followed: a 3xx is an error that names the status
//!   and where it pointed, and the next base URL is tried;
//! - the success envelope is read as pydantic's lax mode read it (a missing
//!   `code` is 0, digit strings and whole floats are numbers, a missing
//!   `msg` is empty), while a success without a segment is still refused;
//! - requests carry `User-Agent: kxy-client/<version>` unless the caller
//!   set one;
//! - TLS trust as httpx's `verify=`: the system roots by default, CA
//!   certificates added in PEM or DER (with or without the system roots),
//!   or no verification.
//!
//! The envelopes and headers are checked against a fake HTTP server of the
//! test's own (a listener that records each request and answers what the
//! test says); redirects, failover and TLS against a real `kxy-server`,
//! behind a small TLS terminator of the test's own for the TLS cases.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kxy_client::{ClientConfig, ClientError, SegmentClient, SegmentKey};
use kxy_core::Segment;
use kxy_e2e::server::embedded_with_counters;

fn key(table: &str) -> SegmentKey {
    SegmentKey::new("sys", "db", table, "id").unwrap()
}

fn client(urls: &[&str]) -> SegmentClient {
    SegmentClient::new(ClientConfig::new(urls).unwrap()).unwrap()
}

/// One request as the fake server received it.
#[derive(Debug, Clone)]
struct Recorded {
    /// The request line, e.g. `POST /api/segment/allocate HTTP/1.1`.
    line: String,
    /// Header names lowercased, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A fake HTTP/1.1 server on a port of its own: it answers every request
/// with the same status, headers and body (then closes the connection) and
/// records what it received. Its thread lives until the test process ends,
/// so its port is never reused by another fake of the same process.
struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    fn answering(status: &str, headers: &[(&str, &str)], body: &str) -> FakeServer {
        let mut response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(body);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (sink, response) = (Arc::clone(&sink), response.clone());
                std::thread::spawn(move || Self::serve(stream, &response, &sink));
            }
        });
        FakeServer { url, requests }
    }

    /// A `200 OK` with a JSON body.
    fn json(body: &str) -> FakeServer {
        Self::answering("200 OK", &[("content-type", "application/json")], body)
    }

    /// Reads one request, records it, then answers (so a client that got
    /// the answer finds its request recorded).
    fn serve(mut stream: TcpStream, response: &str, sink: &Mutex<Vec<Recorded>>) -> Option<()> {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let line = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = received[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        sink.lock().unwrap().push(Recorded {
            line,
            headers,
            body,
        });
        stream.write_all(response.as_bytes()).ok()?;
        stream.flush().ok()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------
// 1. Redirects are not followed.

/// httpx does not follow redirects and `raise_for_status` raises for a 3xx;
/// reqwest followed them (and turned the POST into a GET on 301/302). A
/// redirect is an error naming the status and the `Location`, retryable
/// like a 5xx, and the place it pointed to is never asked.
#[tokio::test]
async fn redirects_are_not_followed() {
    // Where the redirects point: a fake that would hand out a segment.
    let target = FakeServer::json(r#"{"code":0,"msg":"ok","data":{"start":1,"end":10}}"#);
    let location = format!("{}/api/segment/allocate", target.url);
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let redirector = FakeServer::answering(status, &[("location", &location)], "");
        let err = client(&[&redirector.url])
            .allocate(&key("orders"), 10)
            .await
            .expect_err("a redirect is an error");
        let code = &status[..3];
        let text = err.to_string();
        assert!(text.contains(&format!("HTTP error {code}")), "{text}");
        assert!(text.contains(&location), "{text}");
        assert!(matches!(err, ClientError::Redirect { .. }), "{err:?}");
        assert!(err.is_retryable(), "{err:?}");
        let requests = redirector.requests();
        assert_eq!(requests.len(), 1, "{status}");
        assert!(requests[0].line.starts_with("POST "), "{:?}", requests[0]);
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body["table_name"], "orders");
    }
    assert!(
        target.requests().is_empty(),
        "a redirect was followed: {:?}",
        target.requests()
    );

    // Without a Location header, the message says so.
    let nowhere = FakeServer::answering("302 Found", &[], "");
    let err = client(&[&nowhere.url])
        .allocate(&key("orders"), 10)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP error 302"), "{err}");
    assert!(err.to_string().contains("no Location"), "{err}");
}

/// A redirecting base URL is skipped like one answering 5xx: the next one
/// (a real server) hands out the segment.
#[tokio::test]
async fn a_redirect_fails_over_to_the_next_server() {
    let (_dir, server) = embedded_with_counters(&["orders"]);
    let location = format!("{}/api/segment/allocate", server.base_url());
    let redirector =
        FakeServer::answering("307 Temporary Redirect", &[("location", &location)], "");
    let client = client(&[&redirector.url, server.base_url()]);
    let segment = client.allocate(&key("orders"), 10).await.unwrap();
    assert_eq!(segment, Segment { start: 1, end: 10 });
    assert_eq!(redirector.requests().len(), 1);
    // The server was asked once, directly: the next segment follows on.
    let next = client.allocate(&key("orders"), 10).await.unwrap();
    assert_eq!(next, Segment { start: 11, end: 20 });
}

// ---------------------------------------------------------------------------
// 2. The envelope as pydantic's lax mode read it.

/// What one allocation of 10 IDs gets from a fake answering `status` with
/// `body`.
async fn allocate_from(status: &str, body: &str) -> Result<Segment, ClientError> {
    let fake = FakeServer::answering(status, &[("content-type", "application/json")], body);
    let result = client(&[&fake.url]).allocate(&key("orders"), 10).await;
    assert_eq!(fake.requests().len(), 1, "{body}");
    result
}

#[tokio::test]
async fn lax_envelopes_are_read_as_the_python_client_read_them() {
    let ok = Segment { start: 1, end: 10 };
    for body in [
        // A missing code means 0, a missing msg "".
        r#"{"data":{"start":1,"end":10}}"#,
        r#"{"msg":"ok","data":{"start":1,"end":10}}"#,
        r#"{"code":0,"data":{"start":1,"end":10},"traceId":"t"}"#,
        // Digit strings and whole floats are numbers.
        r#"{"code":"0","msg":"ok","data":{"start":1,"end":10}}"#,
        r#"{"code":0.0,"msg":"ok","data":{"start":1,"end":10}}"#,
        r#"{"code":0,"msg":"ok","data":{"start":"1","end":"10"}}"#,
        r#"{"code":"0","data":{"start":"1","end":10.0}}"#,
    ] {
        let answer = allocate_from("200 OK", body).await;
        assert_eq!(answer.as_ref().ok(), Some(&ok), "{body}: {answer:?}");
    }
}

#[tokio::test]
async fn lax_error_codes_are_api_errors() {
    for (body, code) in [
        (r#"{"code":"40401","msg":"not registered"}"#, 40401),
        (r#"{"code":"1","msg":"no"}"#, 1),
        (r#"{"code":1.0,"msg":"no"}"#, 1),
        (r#"{"code":50301}"#, 50301),
    ] {
        match allocate_from("200 OK", body).await {
            Err(ClientError::Api {
                status: 200,
                code: got,
                ..
            }) => assert_eq!(got, code, "{body}"),
            other => panic!("{body}: expected an API error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn envelopes_beyond_lax_mode_are_invalid_responses() {
    for body in [
        r#"{"code":"x","msg":"?"}"#,
        r#"{"code":"","msg":"?"}"#,
        r#"{"code":1.5,"msg":"?"}"#,
        r#"{"code":null,"msg":"?"}"#,
        r#"{"code":"1e3","msg":"?"}"#,
        r#"{"code":"0","msg":"ok","data":{"start":"1.5","end":10}}"#,
        r#"{"code":0,"msg":"ok","data":{"start":"one","end":10}}"#,
        r#"{"code":0,"msg":null,"data":{"start":1,"end":10}}"#,
        // Not JSON at all.
        "<html>welcome</html>",
    ] {
        let err = allocate_from("200 OK", body).await.unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidResponse { .. }),
            "{body}: {err:?}"
        );
        assert!(err.is_retryable(), "{body}");
        assert!(err.to_string().contains("HTTP 200"), "{body}: {err}");
    }
}

/// The published client returned `None` for a success without `data` and
/// crashed later; kxy refuses it at once (a deliberate difference).
#[tokio::test]
async fn a_success_without_a_segment_is_refused() {
    for body in [
        r#"{"code":0,"msg":"ok","data":null}"#,
        r#"{"code":0,"msg":"ok"}"#,
        r#"{"code":"0"}"#,
        "{}",
    ] {
        let err = allocate_from("200 OK", body).await.unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidResponse { .. }),
            "{body}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("the server answered success without a segment"),
            "{body}: {err}"
        );
    }
}

/// Non-2xx answers: an envelope is an API error, anything else (a proxy's
/// page, FastAPI's `{"detail": ...}`) an invalid response; both name the
/// status.
#[tokio::test]
async fn error_statuses_are_named() {
    match allocate_from("404 Not Found", r#"{"code":40401,"msg":"not registered"}"#).await {
        Err(err @ ClientError::Api { .. }) => {
            assert!(err.to_string().contains("HTTP 404"), "{err}");
            assert!(!err.is_retryable());
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    match allocate_from(
        "503 Service Unavailable",
        r#"{"code":"50301","msg":"busy"}"#,
    )
    .await
    {
        Err(err @ ClientError::Api { code: 50301, .. }) => {
            assert!(err.to_string().contains("HTTP 503"), "{err}");
            assert!(err.is_retryable());
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    for (status, body) in [
        ("404 Not Found", r#"{"detail":"Not Found"}"#),
        ("502 Bad Gateway", "<html>bad gateway</html>"),
        ("401 Unauthorized", ""),
    ] {
        let err = allocate_from(status, body).await.unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidResponse { .. }),
            "{status} {body}: {err:?}"
        );
        let code = &status[..3];
        assert!(
            err.to_string().contains(&format!("HTTP {code}")),
            "{status} {body}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. User-Agent.

const SEGMENT: &str = r#"{"code":0,"msg":"ok","data":{"start":1,"end":10}}"#;

#[tokio::test]
async fn requests_name_kxy_client_as_user_agent() {
    let fake = FakeServer::json(SEGMENT);
    client(&[&fake.url])
        .allocate(&key("orders"), 10)
        .await
        .unwrap();
    let requests = fake.requests();
    let expected = format!("kxy-client/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(requests[0].all("user-agent"), [expected.as_str()]);
    assert_eq!(ClientConfig::DEFAULT_USER_AGENT, expected);
}

#[tokio::test]
async fn a_user_agent_set_by_the_caller_wins() {
    let fake = FakeServer::json(SEGMENT);
    let config = ClientConfig::new([&fake.url])
        .unwrap()
        .header("User-Agent", "billing-service/2.1")
        .unwrap();
    SegmentClient::new(config)
        .unwrap()
        .allocate(&key("orders"), 10)
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[0].all("user-agent"),
        ["billing-service/2.1"]
    );
}

// ---------------------------------------------------------------------------
// 4. TLS trust as httpx's `verify=`.

/// Certificates made with `openssl` in a temporary directory: a CA, a
/// server certificate for 127.0.0.1 signed by it, and an unrelated CA.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str, subject: &str| {
            openssl(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    subject,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
            openssl(
                dir.path(),
                &[
                    "x509",
                    "-in",
                    &format!("{name}.pem"),
                    "-outform",
                    "DER",
                    "-out",
                    &format!("{name}.der"),
                ],
            );
        };
        ca("ca", "/CN=kxy test CA");
        ca("other-ca", "/CN=some other CA");
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Certs { dir }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (the TLS tests make their certificates with it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS terminator in front of a real `kxy-server`: it serves the
/// certificate of [`Certs`] and forwards the decrypted bytes. Counts the
/// handshakes that succeeded (only those reach the server).
struct TlsTerminator {
    url: String,
    handshakes: Arc<Mutex<usize>>,
}

impl TlsTerminator {
    async fn start(certs: &Certs, backend: &str) -> TlsTerminator {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{ServerConfig, crypto};

        let chain = CertificateDer::pem_slice_iter(&certs.read("server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&certs.read("server.key")).unwrap();
        let config =
            ServerConfig::builder_with_provider(Arc::new(crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let handshakes = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&handshakes);
        let backend = backend.to_owned();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, backend, counted) =
                    (acceptor.clone(), backend.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    *counted.lock().unwrap() += 1;
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsTerminator { url, handshakes }
    }

    fn handshakes(&self) -> usize {
        *self.handshakes.lock().unwrap()
    }
}

fn refused_for_trust(result: Result<Segment, ClientError>, case: &str) {
    match result {
        Err(err @ ClientError::Connection { .. }) => {
            assert!(err.to_string().contains("certificate"), "{case}: {err}");
        }
        other => panic!("{case}: expected the certificate to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_trust_follows_httpx_verify() {
    let certs = Certs::make();
    let (_dir, server) = embedded_with_counters(&["orders"]);
    let tls = TlsTerminator::start(&certs, server.address()).await;
    let (ca_pem, ca_der, other_pem) = (
        certs.read("ca.pem"),
        certs.read("ca.der"),
        certs.read("other-ca.pem"),
    );
    let base = || ClientConfig::new([&tls.url]).unwrap();
    let allocate = |config: ClientConfig| async move {
        SegmentClient::new(config)
            .unwrap()
            .allocate(&key("orders"), 10)
            .await
    };

    // verify=True: the system roots do not know the test CA.
    refused_for_trust(allocate(base()).await, "system roots");
    // A CA other than the server's, alone or with the system roots.
    let other = base().add_root_certificates_pem(&other_pem).unwrap();
    refused_for_trust(allocate(other.clone()).await, "other CA, merged");
    refused_for_trust(
        allocate(other.only_added_roots(true)).await,
        "other CA, only",
    );
    // Only added roots, but none added: nothing is trusted.
    refused_for_trust(
        allocate(base().only_added_roots(true)).await,
        "no roots at all",
    );
    assert_eq!(
        tls.handshakes(),
        0,
        "a refused handshake reached the server"
    );

    let mut next = 1;
    let mut expect = |result: Result<Segment, ClientError>, case: &str| {
        assert_eq!(
            result.unwrap_or_else(|e| panic!("{case}: {e}")),
            Segment {
                start: next,
                end: next + 9
            },
            "{case}"
        );
        next += 10;
    };
    // The server's CA in PEM, with the system roots.
    let with_ca = base().add_root_certificates_pem(&ca_pem).unwrap();
    expect(allocate(with_ca).await, "CA PEM, merged");
    // verify="ca.pem": only that bundle is trusted.
    let only_ca = base()
        .add_root_certificates_pem(&ca_pem)
        .unwrap()
        .only_added_roots(true);
    expect(allocate(only_ca.clone()).await, "CA PEM, only");
    // A bundle of two CAs, one of them the server's.
    let bundle = [other_pem.clone(), ca_pem.clone()].concat();
    let from_bundle = base()
        .add_root_certificates_pem(&bundle)
        .unwrap()
        .only_added_roots(true);
    expect(allocate(from_bundle).await, "bundle, only");
    // An SSLContext's CA certificates, in DER.
    let from_der = base()
        .add_root_certificate_der(&ca_der)
        .unwrap()
        .only_added_roots(true);
    expect(allocate(from_der).await, "CA DER, only");
    // verify=False.
    expect(allocate(base().verify_tls(false)).await, "no verification");
    // A client rebuilt (after a fork) keeps the roots.
    let client = SegmentClient::new(only_ca).unwrap();
    let rebuilt = client.rebuilt().unwrap();
    expect(rebuilt.allocate(&key("orders"), 10).await, "rebuilt");
    assert_eq!(tls.handshakes(), 6);
}

#[test]
fn root_certificates_are_checked() {
    let certs = Certs::make();
    let config = || ClientConfig::new(["https://127.0.0.1:1"]).unwrap();
    let refused = |result: Result<ClientConfig, ClientError>, needle: &str| match result {
        Err(ClientError::InvalidArgument(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected an invalid argument about {needle:?}, got {other:?}"),
    };
    refused(config().add_root_certificates_pem(b""), "no certificate");
    refused(
        config().add_root_certificates_pem(&certs.read("ca.key")),
        "no certificate",
    );
    refused(
        config().add_root_certificates_pem(&certs.read("ca.der")),
        "no certificate",
    );
    refused(
        config().add_root_certificates_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
        "certificate",
    );
    refused(config().add_root_certificate_der(b"not DER"), "certificate");
    refused(
        config().add_root_certificate_der(&certs.read("ca.pem")),
        "certificate",
    );
    assert!(
        config()
            .add_root_certificates_pem(&certs.read("ca.pem"))
            .is_ok()
    );
    assert!(
        config()
            .add_root_certificate_der(&certs.read("ca.der"))
            .is_ok()
    );
}
