//! The catalogue's routes: search, one segment, its custody record.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use super::extract::{Path, Query};
use super::AppState;
use custos_ledger::catalogue::SegmentQuery;
use custos_ledger::governance;
use custos_ledger::wire::{Custody, ErrorBody, SearchResults, SegmentDetail, SegmentView};

/// Search the catalogue by officer, recorder, recording time and case.
#[utoipa::path(
    get,
    path = "/v1/segments",
    tag = "catalogue",
    params(SegmentQuery),
    responses(
        (status = 200, description = "Matching segments", body = SearchResults),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
    )
)]
pub(super) async fn search(
    State(state): State<AppState>,
    Query(q): Query<SegmentQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let ledger = state.ledger.clone();
    let found = tokio::task::spawn_blocking(move || ledger.search(&q))
        .await
        .map_err(|e| ApiError::internal(format!("searching: {e}")))??;
    Ok(Json(SearchResults {
        segments: found.into_iter().map(SegmentView::from).collect(),
    }))
}

/// One segment: manifest, status, linked cases, retention (keep-until
/// date, open cases, hold, eligible for deletion) and its legal hold.
#[utoipa::path(
    get,
    path = "/v1/segments/{id}",
    tag = "catalogue",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The segment with its retention and hold", body = SegmentDetail),
        (status = 404, description = "No such segment", body = ErrorBody),
    )
)]
pub(super) async fn get_segment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SegmentDetail>, ApiError> {
    let record = state
        .ledger
        .segment(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no segment {id:?}")))?;
    let retention =
        governance::retention_status(&state.ledger, &state.governance.retention, &record)?;
    let hold = governance::hold(&state.ledger, &id)?;
    Ok(Json(SegmentDetail {
        segment: record.into(),
        retention,
        hold,
    }))
}

/// Every custody entry about a segment, each with its inclusion proof
/// against the checkpoint included in the answer.
#[utoipa::path(
    get,
    path = "/v1/segments/{id}/custody",
    tag = "catalogue",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The custody record with proofs", body = Custody),
        (status = 404, description = "No such segment", body = ErrorBody),
    )
)]
pub(super) async fn get_custody(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Custody>, ApiError> {
    let ledger = state.ledger.clone();
    let lookup = id.clone();
    let custody = tokio::task::spawn_blocking(move || ledger.custody(&lookup))
        .await
        .map_err(|e| ApiError::internal(format!("reading custody: {e}")))??
        .ok_or_else(|| ApiError::not_found(format!("no segment {id:?}")))?;
    Ok(Json(custody))
}
