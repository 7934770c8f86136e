//! The API description and docs as a browser or a code generator meets
//! them on a running server: `/openapi.json`, and Swagger UI at `/docs`
//! with its files, served from the binary (no network).

use kxy_e2e::server::embedded_with_counters;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};

async fn fetch(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

fn content_type(headers: &reqwest::header::HeaderMap) -> &str {
    headers[CONTENT_TYPE].to_str().unwrap()
}

/// Checks `value` against an object schema of the document: every
/// required property is there and nothing undocumented is.
fn assert_matches(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => schema,
    };
    let properties = schema["properties"].as_object().unwrap_or_else(|| {
        panic!("{what}: the schema is not an object schema: {schema}");
    });
    let value = value.as_object().unwrap();
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap();
        assert!(value.contains_key(required), "{what}: {required} missing");
    }
    for key in value.keys() {
        assert!(
            properties.contains_key(key),
            "{what}: the answer has {key}, which the document does not describe"
        );
    }
}

#[tokio::test]
async fn openapi_json_is_served_and_describes_the_running_server() {
    let (_dir, server) = embedded_with_counters(&["orders"]);
    let http = reqwest::Client::new();
    let url = format!("{}/openapi.json", server.base_url());
    let (status, headers, body) = fetch(&http, &url).await;
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "application/json");
    // The spec itself, not wrapped in the envelope.
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc.get("code").is_none());
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "kxy");
    for path in [
        "/health",
        "/api/segment/allocate",
        "/api/auth/login",
        "/api/users/{id}",
        "/api/keys",
        "/api/database/{guid}/discovered-tables/{table}/approve",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not described");
    }
    // No page runs in it: the API's policy, not the page's.
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");

    // Revalidation answers 304 without the body.
    let etag = headers[ETAG].clone();
    let revalidated = http
        .get(&url)
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    // What the server answers is what the document says it answers.
    let (status, _, body) = fetch(&http, &format!("{}/health", server.base_url())).await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_slice(&body).unwrap();
    let schema = &doc["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_matches(&doc, schema, &health, "GET /health");
    let data_schema = doc
        .pointer(schema["$ref"].as_str().unwrap().trim_start_matches('#'))
        .unwrap()["properties"]["data"]
        .clone();
    assert_matches(&doc, &data_schema, &health["data"], "GET /health data");

    let allocated: Value = http
        .post(format!("{}/api/segment/allocate", server.base_url()))
        .json(&json!({
            "system_code": "sys", "db_name": "db", "table_name": "orders",
            "field_name": "id", "segment_count": 10
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operation = &doc["paths"]["/api/segment/allocate"]["post"];
    let schema = &operation["responses"]["200"]["content"]["application/json"]["schema"];
    assert_matches(&doc, schema, &allocated, "POST /api/segment/allocate");
    let refused: Value = http
        .post(format!("{}/api/segment/allocate", server.base_url()))
        .json(&json!({"system_code": "sys"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = &operation["responses"]["400"]["content"]["application/json"]["schema"];
    assert_matches(&doc, schema, &refused, "a refused allocation");
}

#[tokio::test]
async fn docs_page_and_swagger_ui_are_served_from_the_binary() {
    let (_dir, server) = embedded_with_counters(&[]);
    let http = reqwest::Client::new();
    let base = server.base_url();

    let (status, headers, body) = fetch(&http, &format!("{base}/docs")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<script src=\"docs/swagger-ui-bundle.js\"></script>"));
    assert!(page.contains("<script src=\"docs/init.js\"></script>"));
    assert!(page.contains("href=\"docs/swagger-ui.css\""));
    // Every script is a file: the policy allows no inline script.
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=").count()
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");

    let (status, headers, body) = fetch(&http, &format!("{base}/docs/init.js")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "text/javascript; charset=utf-8");
    let init = String::from_utf8(body).unwrap();
    assert!(init.contains("url: \"openapi.json\""), "{init}");
    assert!(init.contains("validatorUrl: null"), "{init}");

    let (status, headers, body) = fetch(&http, &format!("{base}/docs/swagger-ui-bundle.js")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "text/javascript; charset=utf-8");
    assert!(body.len() > 1_000_000, "{} bytes", body.len());
    let bundle = String::from_utf8_lossy(&body[..2000]);
    assert!(bundle.contains("SwaggerUIBundle"), "{bundle}");

    let (status, headers, body) = fetch(&http, &format!("{base}/docs/swagger-ui.css")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "text/css; charset=utf-8");
    assert!(String::from_utf8_lossy(&body).contains(".swagger-ui"));

    // Anything else under /docs is the API's 404, in the envelope.
    let (status, _, body) = fetch(&http, &format!("{base}/docs/nothing.js")).await;
    assert_eq!(status, 404);
    let refused: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(refused["code"], 40400);
}
