//! Counters over HTTP: the admin form of `kxy-server counters add/list`.

use axum::extract::State;
use axum::http::Method;
use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::app::AppState;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::store::Registration;

pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(
            Method::GET,
            "/api/counters",
            Access::Permission("counters:read"),
            list,
        ),
        route(
            Method::POST,
            "/api/counters",
            Access::Permission("counters:write"),
            add,
        ),
        route(
            Method::POST,
            "/api/counters/raise",
            Access::Permission("counters:write"),
            raise,
        ),
    ]
}

#[derive(Serialize)]
struct CounterView {
    system_code: String,
    db_name: String,
    table_name: String,
    field_name: String,
    current: i64,
    next_id: Option<i64>,
    /// The store went backwards: the counter refuses to allocate until
    /// raised to at least `current`.
    fenced: bool,
}

async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<CounterView>>, Error> {
    let counters = state.segments.counters().await?;
    let views = counters
        .into_iter()
        .map(|c| CounterView {
            system_code: c.key.system_code().to_owned(),
            db_name: c.key.db_name().to_owned(),
            table_name: c.key.table_name().to_owned(),
            field_name: c.key.field_name().to_owned(),
            current: c.current,
            next_id: c.current.checked_add(1).filter(|_| !c.fenced),
            fenced: c.fenced,
        })
        .collect();
    Ok(Envelope::ok("ok", views))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCounter {
    system_code: String,
    db_name: String,
    table_name: String,
    field_name: String,
    /// The highest ID already in use (0 for a new counter).
    start: i64,
}

/// `POST /api/counters/raise`: the recovery step after a store went
/// backwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseCounter {
    system_code: String,
    db_name: String,
    table_name: String,
    field_name: String,
    /// The highest ID that may be in use; the next one handed out is `to + 1`.
    to: i64,
}

#[derive(Serialize)]
struct Registered {
    /// `created`, `raised`, `unfenced` or `unchanged` (counters never move
    /// backwards).
    outcome: &'static str,
    current: i64,
    next_id: i64,
}

impl Registered {
    fn new(registration: Registration, requested: i64) -> Self {
        let (outcome, current) = match registration {
            Registration::Created => ("created", requested),
            Registration::Raised { .. } => ("raised", requested),
            Registration::Unfenced { .. } => ("unfenced", requested),
            Registration::Unchanged { current } => ("unchanged", current),
        };
        Registered {
            outcome,
            current,
            next_id: current.saturating_add(1),
        }
    }
}

async fn raise(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RaiseCounter>,
) -> Result<Envelope<Registered>, Error> {
    let key = SegmentKey::new(
        &body.system_code,
        &body.db_name,
        &body.table_name,
        &body.field_name,
    )?;
    let registration = state.segments.raise(&key, body.to).await?;
    if let Registration::Unfenced { floor } = registration {
        tracing::warn!(
            "counter {key} raised to {} and unfenced (floor {floor})",
            body.to
        );
    }
    let registered = Registered::new(registration, body.to);
    Ok(Envelope::ok(
        format!("counter {key} {}", registered.outcome),
        registered,
    ))
}

async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewCounter>,
) -> Result<Envelope<Registered>, Error> {
    let key = SegmentKey::new(
        &body.system_code,
        &body.db_name,
        &body.table_name,
        &body.field_name,
    )?;
    let registration = state.segments.register(&key, body.start).await?;
    let registered = Registered::new(registration, body.start);
    Ok(Envelope::ok(
        format!("counter {key} {}", registered.outcome),
        registered,
    ))
}
