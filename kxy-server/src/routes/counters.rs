//! Counters over HTTP: the admin form of `kxy-server counters add/list`.

use axum::extract::State;
use axum::http::Method;
use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::openapi;
use crate::state::AppState;
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

/// A counter and where it stands.
#[derive(Serialize, utoipa::ToSchema)]
struct CounterView {
    system_code: String,
    db_name: String,
    table_name: String,
    field_name: String,
    /// The highest ID handed out (or registered as in use).
    current: i64,
    /// The next ID allocation hands out; null while fenced.
    next_id: Option<i64>,
    /// The store went backwards: the counter refuses to allocate until
    /// raised to at least `current`.
    fenced: bool,
    /// Unix seconds of the last segment this instance handed out of it
    /// (`null`: none since the instance started).
    last_allocated_at: Option<u64>,
    /// IDs this instance handed out per minute over the last hour, oldest
    /// first; the last entry is the minute in progress.
    ids_per_minute: Vec<u64>,
    /// The pace: IDs per minute over the last 15 minutes.
    pace_per_minute: f64,
    /// Seconds until the counter would pass 2^63-1 at that pace (`null`
    /// when idle).
    runway_seconds: Option<u64>,
}

/// Minutes the pace (and so the runway) is averaged over.
const PACE_MINUTES: usize = 15;

/// Lists every registered counter.
#[utoipa::path(
    get,
    path = "/api/counters",
    tag = "counters",
    operation_id = "counters_list",
    responses(
        (status = 200, description = "Every counter", body = openapi::Envelope<Vec<CounterView>>),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<CounterView>>, Error> {
    let counters = state.segments.counters().await?;
    let now = crate::counter_activity::now();
    let views = counters
        .into_iter()
        .map(|c| {
            let activity = state.segments.activity().view(&c.key);
            let pace = activity.as_ref().map_or(0.0, |a| a.pace(PACE_MINUTES, now));
            let left = i64::MAX.saturating_sub(c.current) as f64;
            CounterView {
                system_code: c.key.system_code().to_owned(),
                db_name: c.key.db_name().to_owned(),
                table_name: c.key.table_name().to_owned(),
                field_name: c.key.field_name().to_owned(),
                current: c.current,
                next_id: c.current.checked_add(1).filter(|_| !c.fenced),
                fenced: c.fenced,
                last_allocated_at: activity.as_ref().map(|a| a.last_allocated_at),
                ids_per_minute: activity.map_or_else(
                    || vec![0; crate::counter_activity::MINUTES],
                    |a| a.ids_per_minute,
                ),
                pace_per_minute: pace,
                // f64 -> u64 saturates: a slow counter's runway is "forever".
                runway_seconds: (pace > 0.0).then(|| (left / pace * 60.0) as u64),
            }
        })
        .collect();
    Ok(Envelope::ok("ok", views))
}

/// The body of `POST /api/counters` (with `start`) and of
/// `POST /api/counters/raise` (with `to`, the recovery step after a store
/// went backwards): the counter's four names and the highest ID in use.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CounterBody {
    system_code: String,
    db_name: String,
    table_name: String,
    field_name: String,
    /// For registration: the highest ID already in use (0 for a new counter).
    start: Option<i64>,
    /// For a raise: the next ID handed out is `to + 1`.
    to: Option<i64>,
    /// For registration: refuse (409) if the counter exists, instead of
    /// raising it (the admin page's "register", where a taken name is a
    /// mistake).
    #[serde(default)]
    only_new: bool,
}

impl CounterBody {
    /// The counter and the value named `field`, which this route requires.
    fn parse(&self, field: &str) -> Result<(SegmentKey, i64), Error> {
        let key = SegmentKey::new(
            &self.system_code,
            &self.db_name,
            &self.table_name,
            &self.field_name,
        )?;
        let (wanted, other) = match field {
            "start" => (self.start, self.to),
            _ => (self.to, self.start),
        };
        match (wanted, other) {
            (Some(value), None) => Ok((key, value)),
            (None, None) => Err(Error::InvalidBody(format!("missing field `{field}`"))),
            (_, Some(_)) => Err(Error::InvalidBody(format!(
                "send `{field}`: `start` registers (POST /api/counters), `to` raises \
                 (POST /api/counters/raise)"
            ))),
        }
    }
}

/// The outcome of a registration or raise.
#[derive(Serialize, utoipa::ToSchema)]
struct Registered {
    /// `created`, `raised`, `unfenced` or `unchanged` (counters never move
    /// backwards).
    outcome: &'static str,
    current: i64,
    next_id: i64,
}

/// The answer to a registration or raise of `key` to `requested`.
fn registered(
    key: &SegmentKey,
    registration: Registration,
    requested: i64,
) -> Envelope<Registered> {
    let (outcome, current) = match registration {
        Registration::Created => ("created", requested),
        Registration::Raised { .. } => ("raised", requested),
        Registration::Unfenced { floor } => {
            tracing::warn!("counter {key} raised to {requested} and unfenced (floor {floor})");
            ("unfenced", requested)
        }
        Registration::Unchanged { current } => ("unchanged", current),
    };
    let body = Registered {
        outcome,
        current,
        next_id: current.saturating_add(1),
    };
    Envelope::ok(format!("counter {key} {outcome}"), body)
}

/// Registers a counter (or raises one that stands lower).
///
/// Send `start`, the highest ID already in use (0 for a new counter); the
/// first ID handed out is `start + 1`. Counters never move backwards.
#[utoipa::path(
    post,
    path = "/api/counters",
    tag = "counters",
    operation_id = "counters_add",
    request_body = CounterBody,
    responses(
        (status = 200, description = "Registered, raised or unchanged", body = openapi::Envelope<Registered>),
        (
            status = 400,
            description = "`start` missing or `to` sent (40001); a bad name or a negative start \
                           (40002)",
            body = openapi::ErrorEnvelope
        ),
        (status = 409, description = "The counter is fenced and `start` is below its floor (40904)", body = openapi::ErrorEnvelope),
    )
)]
async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CounterBody>,
) -> Result<Envelope<Registered>, Error> {
    let (key, start) = body.parse("start")?;
    let registration = if body.only_new {
        state.segments.register_new(&key, start).await?
    } else {
        state.segments.register(&key, start).await?
    };
    Ok(registered(&key, registration, start))
}

/// Raises a counter: the recovery step after a store went backwards.
///
/// Send `to`; the next ID handed out is `to + 1`. A fenced counter is
/// unfenced when raised to at least its floor.
#[utoipa::path(
    post,
    path = "/api/counters/raise",
    tag = "counters",
    operation_id = "counters_raise",
    request_body = CounterBody,
    responses(
        (status = 200, description = "Raised, unfenced or unchanged", body = openapi::Envelope<Registered>),
        (
            status = 400,
            description = "`to` missing or `start` sent (40001); a bad name (40002)",
            body = openapi::ErrorEnvelope
        ),
        (status = 404, description = "The counter is not registered (40401)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The counter is fenced and `to` is below its floor (40904)", body = openapi::ErrorEnvelope),
    )
)]
async fn raise(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CounterBody>,
) -> Result<Envelope<Registered>, Error> {
    let (key, to) = body.parse("to")?;
    let registration = state.segments.raise(&key, to).await?;
    Ok(registered(&key, registration, to))
}
