//! The admin page as a browser fetches it: files from the binary with the
//! headers that keep it safe, and the API's answers with theirs.

use kxy_e2e::server::ServerProcess;

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_api_answer_with_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // Files: their type, and a cheap revalidation.
    let script = http
        .get(format!("{base}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        header(&script, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&script, "cache-control"), "no-cache");
    let etag = header(&script, "etag").to_owned();
    let again = http
        .get(format!("{base}/assets/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = http
        .get(format!("{base}/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // API answers: never cached, nothing may run in them.
    let api = http
        .get(format!("{base}/api/auth/check-init"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&api, "cache-control"), "no-store");
    assert!(header(&api, "content-security-policy").contains("default-src 'none'"));
    assert_eq!(header(&api, "x-content-type-options"), "nosniff");
}
