//! `GET /api/counters` tells what the instance handed out lately: the last
//! allocation, IDs per minute over the last hour and the runway at that
//! pace, for the admin page's counters screen.

use kxy_e2e::api::allocate;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, unix_now};
use serde_json::{Value, json};

fn counter<'a>(list: &'a Value, table: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["table_name"] == table)
        .unwrap_or_else(|| panic!("no counter for {table} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_list_shows_recent_activity() {
    let d = Deployment::all(&[]).remove(0);
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    for table in ["busy", "idle"] {
        let body = json!({"system_code": "sys", "db_name": "db", "table_name": table,
                          "field_name": "id", "start": 0});
        assert_eq!(
            d.post("/api/counters", body, Some(&token)).await.status,
            200
        );
    }
    // The page registers with only_new: a taken name is refused, unchanged.
    let again = json!({"system_code": "sys", "db_name": "db", "table_name": "busy",
                       "field_name": "id", "start": 50, "only_new": true});
    let answer = d.post("/api/counters", again, Some(&token)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, 40902),
        "{:?}",
        answer.body
    );
    assert!(answer.msg().contains("already exists"), "{}", answer.msg());
    let before = unix_now();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let answer = allocate(&http, &d.url(), "busy", "id", 100).await.unwrap();
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }

    let list = d.get("/api/counters", Some(&token)).await.body["data"].clone();
    let busy = counter(&list, "busy");
    let last = busy["last_allocated_at"]
        .as_u64()
        .expect("a last allocation");
    assert!((before..=unix_now()).contains(&last), "{busy}");
    let minutes: Vec<u64> = busy["ids_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(minutes.len(), 60);
    assert_eq!(minutes.iter().sum::<u64>(), 300, "{busy}");
    assert_eq!(busy["current"], 300);
    assert!(busy["pace_per_minute"].as_f64().unwrap() > 0.0, "{busy}");
    let runway = busy["runway_seconds"].as_u64().expect("a runway");
    // 2^63 IDs at no more than 300 a minute last far beyond a thousand years.
    assert!(runway > 1000 * 365 * 24 * 3600, "{busy}");

    let idle = counter(&list, "idle");
    assert!(idle["last_allocated_at"].is_null(), "{idle}");
    assert!(idle["runway_seconds"].is_null(), "{idle}");
    assert_eq!(idle["pace_per_minute"], 0.0);
    assert!(
        idle["ids_per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == 0)
    );
}
