//! The HTTP surface of allocation, as a caller meets it: the envelope, bad
//! input, unregistered counters, configuration by flags and environment.

use kxy_core::Segment;
use kxy_e2e::api::{allocate, get, post_json};
use kxy_e2e::server::{ServerProcess, register_counter};
use serde_json::{Value, json};

fn registered_server(extra: &[&str], envs: &[(&str, &str)]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    register_counter(&["--data-dir", &data_dir], "orders", 0);
    let mut args = vec!["--data-dir", data_dir.as_str()];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args, envs);
    (dir, server)
}

#[tokio::test]
async fn success_uses_the_seed_envelope_with_a_trace_id() {
    let (_dir, server) = registered_server(&[], &[]);
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/api/segment/allocate", server.base_url()))
        .header("X-Trace-Id", "caller-trace-42")
        .json(&json!({
            "system_code": "sys", "db_name": "db", "table_name": "orders",
            "field_name": "id", "segment_count": 10000
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-trace-id"], "caller-trace-42");
    let mut body: Value = response.json().await.unwrap();
    // The store's id: 32 hex digits, the same on every answer of this store.
    let store_id = body["data"]["store_id"].take();
    let store_id = store_id.as_str().unwrap();
    assert!(
        store_id.len() == 32 && store_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{store_id}"
    );
    body["data"].as_object_mut().unwrap().remove("store_id");
    assert_eq!(
        body,
        json!({
            "code": 0,
            "msg": "Allocated segment: 1 to 10000",
            "data": {"start": 1, "end": 10000},
            "traceId": "caller-trace-42"
        })
    );

    // Without a caller id the server makes one, in the header and the body.
    let answer = allocate(&http, server.base_url(), "orders", "id", 5)
        .await
        .unwrap();
    assert_eq!(
        answer.segment(),
        Segment {
            start: 10001,
            end: 10005
        }
    );
    assert_eq!(answer.body["traceId"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_changes_nothing() {
    let (_dir, server) = registered_server(&["--max-segment", "1000"], &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();
    let valid = json!({
        "system_code": "sys", "db_name": "db", "table_name": "orders",
        "field_name": "id", "segment_count": 10
    });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(Value, u16, i64, &str)> = vec![
        (without("db_name"), 400, 40001, "missing field `db_name`"),
        (
            without("segment_count"),
            400,
            40001,
            "missing field `segment_count`",
        ),
        (
            with("segment_cnt", json!(5)),
            400,
            40001,
            "unknown field `segment_cnt`",
        ),
        (
            with("segment_count", json!("10")),
            400,
            40001,
            "segment_count: invalid type",
        ),
        (
            with("segment_count", json!(1.5)),
            400,
            40001,
            "segment_count: invalid type",
        ),
        (
            with("segment_count", json!(1e30)),
            400,
            40001,
            "segment_count",
        ),
        (
            with("table_name", json!(7)),
            400,
            40001,
            "table_name: invalid type",
        ),
        (
            with("segment_count", json!(0)),
            400,
            40002,
            "segment_count must be between 1 and 1000; got 0",
        ),
        (
            with("segment_count", json!(-5)),
            400,
            40002,
            "segment_count must be between 1 and 1000; got -5",
        ),
        (
            with("segment_count", json!(1001)),
            400,
            40002,
            "segment_count must be between 1 and 1000; got 1001",
        ),
        (
            with("system_code", json!("")),
            400,
            40002,
            "system_code must not be empty",
        ),
        (
            with("system_code", json!("a:b")),
            400,
            40002,
            "system_code contains ':' at position 1",
        ),
        (
            with("field_name", json!("id; DROP")),
            400,
            40002,
            "field_name contains ';'",
        ),
        (
            with("db_name", json!("x".repeat(129))),
            400,
            40002,
            "db_name is 129 characters long",
        ),
        (json!([1, 2]), 400, 40001, "invalid type"),
        (json!(null), 400, 40001, "invalid type"),
    ];
    for (body, status, code, message) in cases {
        let answer = post_json(&http, base, "/api/segment/allocate", &body)
            .await
            .unwrap();
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{body}: {:?}",
            answer.body
        );
        assert!(
            answer.msg().contains(message),
            "{body}: {:?} lacks {message:?}",
            answer.msg()
        );
        assert_eq!(answer.body["data"], Value::Null);
    }

    let raw = |body: &'static str, content_type: &'static str| {
        http.post(format!("{base}/api/segment/allocate"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = raw("{not json", "application/json").await.unwrap();
    assert_eq!(response.status(), 400);
    let response = raw(r#"{"system_code":"sys"}"#, "text/plain").await.unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 41500);
    let huge = format!(r#"{{"system_code":"{}"}}"#, "x".repeat(100_000));
    let response = http
        .post(format!("{base}/api/segment/allocate"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 41300);
    assert!(body["msg"].as_str().unwrap().contains("16384 bytes"));

    // None of that moved the counter. (A new client: the server closes a
    // connection after refusing an oversized body, and a pooled one might
    // be picked before the close is seen.)
    let answer = allocate(&reqwest::Client::new(), base, "orders", "id", 1)
        .await
        .unwrap();
    assert_eq!(answer.segment(), Segment { start: 1, end: 1 });
}

#[tokio::test]
async fn unregistered_counters_are_refused_unless_auto_create() {
    let (_dir, server) = registered_server(&[], &[]);
    let http = reqwest::Client::new();
    let answer = allocate(&http, server.base_url(), "invoices", "id", 10)
        .await
        .unwrap();
    assert_eq!((answer.status, answer.code()), (404, 40401));
    assert!(
        answer
            .msg()
            .contains("counter sys:db:invoices:id is not registered")
    );
    drop(server);

    // The environment form of --auto-create, and of --max-segment.
    let (_dir, server) = registered_server(
        &[],
        &[("KXY_AUTO_CREATE", "true"), ("KXY_MAX_SEGMENT", "50")],
    );
    let answer = allocate(&http, server.base_url(), "invoices", "id", 50)
        .await
        .unwrap();
    assert_eq!(answer.segment(), Segment { start: 1, end: 50 });
    let answer = allocate(&http, server.base_url(), "invoices", "id", 51)
        .await
        .unwrap();
    assert_eq!((answer.status, answer.code()), (400, 40002));
}

#[tokio::test]
async fn routes_methods_and_health() {
    let (_dir, server) = registered_server(&[], &[]);
    let http = reqwest::Client::new();
    let health = get(&http, server.base_url(), "/health").await.unwrap();
    assert_eq!((health.status, health.code()), (200, 0));
    assert_eq!(health.body["data"]["status"], "ok");
    assert_eq!(health.body["data"]["store"]["backend"], "embedded");
    assert_eq!(health.body["data"]["store"]["reachable"], true);

    let missing = get(&http, server.base_url(), "/api/nothing").await.unwrap();
    assert_eq!((missing.status, missing.code()), (404, 40400));
    let wrong_method = get(&http, server.base_url(), "/api/segment/allocate")
        .await
        .unwrap();
    assert_eq!((wrong_method.status, wrong_method.code()), (405, 40500));
}
