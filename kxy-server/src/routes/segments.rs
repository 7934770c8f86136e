//! `POST /api/segment/allocate`: the seed's allocation endpoint, unchanged in
//! shape so the Python client `kxy-open-id-client` works against it.

use axum::extract::State;
use axum::http::Method;
use kxy_core::{Segment, SegmentKey};
use serde::Deserialize;

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::app::AppState;
use crate::envelope::Envelope;
use crate::extract::ApiJson;

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

/// The request body. Every field is required and unknown fields are refused,
/// so a misspelt field is an error rather than a silent default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    pub system_code: String,
    pub db_name: String,
    pub table_name: String,
    pub field_name: String,
    pub segment_count: i64,
}

async fn allocate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AllocateRequest>,
) -> Result<Envelope<Segment>, Error> {
    let key = SegmentKey::new(
        &request.system_code,
        &request.db_name,
        &request.table_name,
        &request.field_name,
    )?;
    let segment = state.segments.allocate(&key, request.segment_count).await?;
    let msg = format!("Allocated segment: {} to {}", segment.start, segment.end);
    Ok(Envelope::ok(msg, segment))
}
