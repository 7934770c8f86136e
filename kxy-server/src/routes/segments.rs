//! `POST /api/segment/allocate`: the seed's allocation endpoint, unchanged in
//! shape so the Python client `kxy-open-id-client` works against it.

use axum::extract::State;
use axum::http::Method;
use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::segments::ClientMark;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    // Public by default, as in the seed and for kxy-open-id-client;
    // --allocation-requires-key asks for an API key (see the guard).
    vec![route(
        Method::POST,
        "/api/segment/allocate",
        Access::Allocation,
        allocate,
    )]
}

/// The request body. The seed's five fields are required, unknown fields are
/// refused (a misspelt field is an error rather than a silent default).
/// kxy's clients may add `store_id` and `high_water`: the store their
/// segments of this counter came from and the highest ID they received, so
/// that a server with no marks of its own still notices a store that went
/// backwards. Either both or neither.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    pub system_code: String,
    pub db_name: String,
    pub table_name: String,
    pub field_name: String,
    pub segment_count: i64,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub high_water: Option<i64>,
}

/// The answer's `data`: the seed's `start` and `end` (inclusive), and the id
/// of the store they came from (clients pin a counter to its store).
#[derive(Serialize)]
struct Allocation {
    start: i64,
    end: i64,
    store_id: String,
}

async fn allocate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AllocateRequest>,
) -> Result<Envelope<Allocation>, Error> {
    let key = SegmentKey::new(
        &request.system_code,
        &request.db_name,
        &request.table_name,
        &request.field_name,
    )?;
    let mark = match (request.store_id, request.high_water) {
        (Some(store_id), Some(high_water)) => Some(ClientMark {
            store_id,
            high_water,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "store_id",
                "store_id and high_water are sent together or not at all",
            ));
        }
    };
    let allocated = state
        .segments
        .allocate(&key, request.segment_count, mark.as_ref())
        .await?;
    let segment = allocated.segment;
    let msg = format!("Allocated segment: {} to {}", segment.start, segment.end);
    let data = Allocation {
        start: segment.start,
        end: segment.end,
        store_id: allocated.store_id.to_string(),
    };
    Ok(Envelope::ok(msg, data))
}
