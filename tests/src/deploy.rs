//! A deployment under test: one embedded-store server, or two servers on
//! the shared Redis, with helpers for the calls every identity test makes.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Answer, request};
use crate::redis_env::{KeyPrefix, shared_redis};
use crate::server::ServerProcess;

/// The first user's password in every deployment.
pub const ROOT_PASSWORD: &str = "root password 1";

/// One or more server processes sharing a store.
pub struct Deployment {
    pub name: &'static str,
    pub servers: Vec<ServerProcess>,
    pub dir: Option<tempfile::TempDir>,
    pub prefix: Option<KeyPrefix>,
    http: reqwest::Client,
    next: std::cell::Cell<usize>,
}

impl Deployment {
    /// The embedded store (one process), and Redis (two) when available.
    pub fn all(extra: &[&str]) -> Vec<Deployment> {
        let mut all = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let server = ServerProcess::start(&args, &[("RUST_LOG", "debug")]);
        all.push(Deployment::new("embedded", vec![server], Some(dir), None));
        if let Some(url) = shared_redis() {
            let prefix = KeyPrefix::new(&url, "auth");
            let mut args = prefix.store_args();
            args.extend_from_slice(extra);
            let servers = vec![
                ServerProcess::start(&args, &[]),
                ServerProcess::start(&args, &[]),
            ];
            all.push(Deployment::new("redis x2", servers, None, Some(prefix)));
        }
        all
    }

    pub fn new(
        name: &'static str,
        servers: Vec<ServerProcess>,
        dir: Option<tempfile::TempDir>,
        prefix: Option<KeyPrefix>,
    ) -> Self {
        Deployment {
            name,
            servers,
            dir,
            prefix,
            http: reqwest::Client::new(),
            next: Default::default(),
        }
    }

    /// The next instance, round robin.
    pub fn url(&self) -> String {
        let i = self.next.get();
        self.next.set(i + 1);
        self.servers[i % self.servers.len()].base_url().to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        request(
            &self.http,
            method,
            &format!("{}{path}", self.url()),
            body.as_ref(),
            token,
        )
        .await
        .unwrap()
    }

    /// A call to instance `i` (not round robin): for checks that every
    /// instance sees a change the moment it returned.
    pub async fn call_on(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.servers[i].base_url());
        request(&self.http, method, &url, body.as_ref(), token)
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), token).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, token).await
    }

    pub async fn init(&self) {
        let answer = self
            .post(
                "/api/auth/init-user",
                json!({"username": "root", "password": ROOT_PASSWORD}),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}: {:?}", self.name, answer.body);
    }

    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.post(
            "/api/auth/login",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    /// (access token, refresh token) of a successful login.
    pub async fn tokens(&self, username: &str, password: &str) -> (String, String) {
        let answer = self.login(username, password).await;
        assert_eq!(answer.status, 200, "{}: {:?}", self.name, answer.body);
        pair(&answer)
    }
}

/// (access token, refresh token) of a login or refresh answer.
pub fn pair(answer: &Answer) -> (String, String) {
    let data = &answer.body["data"];
    (
        data["access_token"].as_str().unwrap().to_owned(),
        data["refresh_token"].as_str().unwrap().to_owned(),
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Deployment {
    /// Everything the store holds, as raw bytes: the embedded store's file,
    /// or every value under this deployment's Redis prefix.
    pub fn raw_store(&self) -> Vec<u8> {
        if let Some(dir) = &self.dir {
            return std::fs::read(dir.path().join("kxy.redb")).expect("read the store file");
        }
        let prefix = self
            .prefix
            .as_ref()
            .expect("a Redis deployment has a prefix");
        let client = redis::Client::open(crate::redis_env::SHARED_REDIS_URL).unwrap();
        let mut connection = client.get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", prefix.as_str()))
            .query(&mut connection)
            .unwrap();
        let mut raw = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
            let values: Vec<String> = match kind.as_str() {
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query(&mut connection)
                    .unwrap(),
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut connection).unwrap()],
                _ => vec![],
            };
            raw.extend(key.into_bytes());
            for value in values {
                raw.extend(value.into_bytes());
            }
        }
        raw
    }

    /// Creates a user with `roles` (as the admin `admin`) and returns its id.
    pub async fn create_user(
        &self,
        admin: &str,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> String {
        let answer = self
            .post(
                "/api/users",
                json!({"username": username, "password": password, "roles": roles}),
                Some(admin),
            )
            .await;
        assert_eq!(answer.status, 200, "{}: {:?}", self.name, answer.body);
        answer.body["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates an API key for the caller of `token`; returns (id, secret).
    pub async fn create_key(&self, token: &str, body: Value) -> (String, String) {
        let answer = self.post("/api/keys", body, Some(token)).await;
        assert_eq!(answer.status, 200, "{}: {:?}", self.name, answer.body);
        let data = &answer.body["data"];
        (
            data["id"].as_str().unwrap().to_owned(),
            data["secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
