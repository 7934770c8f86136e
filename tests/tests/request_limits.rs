//! Attacks on the HTTP layer itself (issue 11, point 10), against the real
//! server: slow clients that trickle their headers (slowloris), bodies and
//! headers far larger than any request needs, bodies that never finish,
//! more connections than the server allows; and answers carrying tokens,
//! keys or secrets that a cache could keep.

use std::time::Duration;

use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::server::ServerProcess;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A bound on anything that should finish at once, so that a hung request
/// fails the test instead of hanging it. Not a speed claim.
const HANG_GUARD: Duration = Duration::from_secs(5);

/// One embedded-store server with `args`, as a deployment with root set up.
async fn deployment(args: &[&str]) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--data-dir", dir.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let server = ServerProcess::start(&all, &[]);
    let d = Deployment::new("embedded", vec![server], Some(dir), None);
    d.init().await;
    d
}

/// Sends `head` (and nothing else) on a new connection and returns what the
/// server answers until it closes the connection.
async fn raw_exchange(address: &str, head: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = timeout(HANG_GUARD, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// The JSON envelope of a raw answer (its body).
fn envelope_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("no envelope in {answer:?}: {e}"))
}

async fn assert_healthy(d: &Deployment) {
    let health = timeout(HANG_GUARD, d.get("/health", None)).await;
    let health = health.expect("GET /health hung");
    assert_eq!(health.status, 200, "{:?}", health.body);
}

/// One slow client: sends the start of a request, then one more header byte
/// a second, never finishing. Returns once the server closed the connection.
async fn slowloris(address: String) -> Result<(), String> {
    let mut stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: kxy\r\nX-Slow: ")
        .await
        .map_err(|e| format!("first bytes: {e}"))?;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                return match read {
                    // Closed (FIN or reset): what the header timeout does.
                    Ok(0) | Err(_) => Ok(()),
                    Ok(n) => Err(format!(
                        "the server answered a request it never fully received: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    )),
                };
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b"x").await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_stop_normal_requests_and_are_cut_off_after_the_header_timeout() {
    const SLOW: usize = 300;
    let d = deployment(&["--header-read-timeout", "3s"]).await;
    let address = d.servers[0].address().to_owned();

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(tokio::spawn(slowloris(address.clone())));
    }
    // Let every slow connection get accepted and start trickling.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile, ordinary clients are served.
    for _ in 0..3 {
        assert_healthy(&d).await;
        let login = timeout(HANG_GUARD, d.login("root", ROOT_PASSWORD))
            .await
            .expect("a login hung while slow clients were connected");
        assert_eq!(login.status, 200, "{:?}", login.body);
    }

    // Each slow client keeps sending a byte a second; the server closes it
    // when its headers are not complete after the header timeout (3 s), well
    // before this generous guard.
    for task in slow {
        let closed = timeout(Duration::from_secs(60), task).await;
        let closed = closed.expect("a slow connection was never closed by the server");
        closed.unwrap().unwrap();
    }
    assert_healthy(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_are_refused_with_413_on_every_route_and_the_server_stays_up() {
    let d = deployment(&[]).await;
    let address = d.servers[0].address().to_owned();
    const TEN_MIB: usize = 10 * 1024 * 1024;

    // A 10 MiB body announced by Content-Length: refused from its headers,
    // on a JSON route and on routes that read no body at all.
    for (method, path) in [
        ("POST", "/api/auth/login"),
        ("POST", "/api/segment/allocate"),
        ("GET", "/health"),
        ("POST", "/api/keys"),
    ] {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: kxy\r\nContent-Type: application/json\r\n\
             Content-Length: {TEN_MIB}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_exchange(&address, &head).await;
        assert_eq!(status_of(&answer), 413, "{method} {path}: {answer}");
        let envelope = envelope_of(&answer);
        assert_eq!(envelope["code"], 41300, "{envelope}");
        let msg = envelope["msg"].as_str().unwrap();
        assert!(msg.contains("16384 bytes"), "{method} {path}: {msg}");
    }

    // The same body streamed without a length (chunked): cut off at the
    // limit, not buffered whole. The server may close the connection before
    // the client has sent it all; whatever it answers is the 413.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let send = async {
        let head = "POST /api/auth/login HTTP/1.1\r\nHost: kxy\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await?;
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..TEN_MIB / 0x10000 {
            writer.write_all(chunk.as_bytes()).await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    };
    let receive = async {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let (_, answer) = timeout(HANG_GUARD, async { tokio::join!(send, receive) })
        .await
        .expect("a streamed 10 MiB body hung the connection");
    let answer = String::from_utf8_lossy(&answer);
    if !answer.is_empty() {
        assert_eq!(status_of(&answer), 413, "{answer}");
    }

    assert_healthy(&d).await;
    let login = d.login("root", ROOT_PASSWORD).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_are_refused_with_431() {
    let d = deployment(&[]).await;
    let address = d.servers[0].address().to_owned();

    let many: String = (0..80).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let head = format!("GET /health HTTP/1.1\r\nHost: kxy\r\n{many}Connection: close\r\n\r\n");
    let answer = raw_exchange(&address, &head).await;
    assert_eq!(status_of(&answer), 431, "80 headers: {answer}");

    let large = "a".repeat(32 * 1024);
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: kxy\r\nX-Large: {large}\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(&address, &head).await;
    assert_eq!(status_of(&answer), 431, "a 32 KiB header: {answer}");

    // An ordinary request with a few ordinary headers is served.
    let head = "GET /health HTTP/1.1\r\nHost: kxy\r\nUser-Agent: test\r\nAccept: */*\r\n\
                Connection: close\r\n\r\n";
    assert_eq!(status_of(&raw_exchange(&address, head).await), 200);
    assert_healthy(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_finishes_is_cut_off_at_the_request_timeout() {
    let d = deployment(&["--request-timeout", "2s"]).await;
    let address = d.servers[0].address().to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    // Headers complete (so the header timeout does not apply), body stalls.
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: kxy\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body held its request open");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 408, "{answer}");
    let envelope = envelope_of(&answer);
    assert_eq!(envelope["code"], 40800, "{envelope}");
    assert!(
        envelope["msg"]
            .as_str()
            .unwrap()
            .contains("--request-timeout"),
        "{envelope}"
    );
    assert_healthy(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_a_clear_503() {
    let d = deployment(&["--max-connections", "20"]).await;
    let address = d.servers[0].address().to_owned();
    // 20 idle connections take every slot.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = raw_exchange(
        &address,
        "GET /health HTTP/1.1\r\nHost: kxy\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 503, "{answer}");
    let envelope = envelope_of(&answer);
    assert_eq!(envelope["code"], 50307, "{envelope}");
    assert!(
        envelope["msg"]
            .as_str()
            .unwrap()
            .contains("--max-connections"),
        "{envelope}"
    );
    // Freed slots serve again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_healthy(&d).await;
}

/// `Cache-Control` of an answer, asserting the call succeeded.
async fn cache_control(
    http: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<Value>,
    token: Option<&str>,
) -> (Value, String) {
    let mut request = http.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let header = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{url}: {body}");
    (body, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_tokens_keys_or_secrets_are_never_cached() {
    let master = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let d = deployment(&["--master-key", master]).await;
    let base = d.servers[0].base_url().to_owned();
    let http = reqwest::Client::new();

    let (login, header) = cache_control(
        &http,
        Method::POST,
        format!("{base}/api/auth/login"),
        Some(json!({"username": "root", "password": ROOT_PASSWORD})),
        None,
    )
    .await;
    assert_eq!(header, "no-store", "login");
    let access = login["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh = login["data"]["refresh_token"].as_str().unwrap().to_owned();

    let (_, header) = cache_control(
        &http,
        Method::POST,
        format!("{base}/api/auth/refresh"),
        Some(json!({"refresh_token": refresh})),
        None,
    )
    .await;
    assert_eq!(header, "no-store", "refresh");

    let (_, header) = cache_control(
        &http,
        Method::POST,
        format!("{base}/api/keys"),
        Some(json!({"name": "cached?"})),
        Some(&access),
    )
    .await;
    assert_eq!(header, "no-store", "key creation");

    let (stored, _) = cache_control(
        &http,
        Method::POST,
        format!("{base}/api/credentials"),
        Some(
            json!({"name": "gpt", "model_id": "m", "base_url": "https://api.example.com",
                    "api_key": "sk-secret-0123456789", "config": {}}),
        ),
        Some(&access),
    )
    .await;
    let id = stored["data"]["id"].as_str().unwrap();
    let (revealed, header) = cache_control(
        &http,
        Method::GET,
        format!("{base}/api/credentials/{id}/secret"),
        None,
        Some(&access),
    )
    .await;
    assert_eq!(revealed["data"]["api_key"], "sk-secret-0123456789");
    assert_eq!(header, "no-store", "credential reveal");
}
