//! The allocation endpoint as tests call it, with the envelope unpacked.

use kxy_core::Segment;
use serde_json::{Value, json};

/// One answer of the server: HTTP status and the parsed envelope.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> i64 {
        self.body["code"]
            .as_i64()
            .expect("envelope has an integer code")
    }

    pub fn msg(&self) -> &str {
        self.body["msg"].as_str().expect("envelope has a msg")
    }

    /// Asserts the HTTP status and envelope code, showing the envelope if not.
    pub fn assert_refused(&self, status: u16, code: i64) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "{:?}",
            self.body
        );
    }

    /// The segment of a successful allocation; panics with the envelope otherwise.
    pub fn segment(&self) -> Segment {
        assert_eq!((self.status, self.code()), (200, 0), "{:?}", self.body);
        serde_json::from_value(self.body["data"].clone()).expect("data is a segment")
    }
}

/// `POST /api/segment/allocate` for a counter in system `sys`, database `db`.
pub async fn allocate(
    http: &reqwest::Client,
    base_url: &str,
    table: &str,
    field: &str,
    count: i64,
) -> Result<Answer, reqwest::Error> {
    post_json(
        http,
        base_url,
        "/api/segment/allocate",
        &json!({
            "system_code": "sys",
            "db_name": "db",
            "table_name": table,
            "field_name": field,
            "segment_count": count,
        }),
    )
    .await
}

pub async fn post_json(
    http: &reqwest::Client,
    base_url: &str,
    path: &str,
    body: &Value,
) -> Result<Answer, reqwest::Error> {
    let response = http
        .post(format!("{base_url}{path}"))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await?;
    Ok(Answer { status, body })
}

pub async fn get(
    http: &reqwest::Client,
    base_url: &str,
    path: &str,
) -> Result<Answer, reqwest::Error> {
    let response = http.get(format!("{base_url}{path}")).send().await?;
    let status = response.status().as_u16();
    let body = response.json().await?;
    Ok(Answer { status, body })
}

/// Panics if any two segments share an ID.
pub fn assert_disjoint(segments: &[Segment]) {
    let mut sorted = segments.to_vec();
    sorted.sort_by_key(|s| s.start);
    for pair in sorted.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "segments overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// Any request with an optional JSON body and bearer token.
pub async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Result<Answer, reqwest::Error> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    send(http, method, url, body, &headers).await
}

/// Any request with an optional JSON body and any headers.
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<Answer, reqwest::Error> {
    let mut builder = http.request(method, url);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Answer { status, body })
}
