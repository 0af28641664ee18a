//! Cases: open one, link segments to it, close it. Handlers are thin: they
//! parse, call [`custos_ledger::governance`] (where every rule is checked
//! atomically with its custody entry) and answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{Authed, Json, Path};
use super::AppState;
use custos_ledger::governance::{self, CaseRecord};
use custos_ledger::wire::{ErrorBody, Receipt};

/// `POST /v1/cases`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCase {
    /// The case title.
    title: String,
    /// Its retention category (`[retention.categories]`).
    #[serde(default)]
    category: Option<String>,
}

/// A new case and the entry that recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct CaseAnswer {
    /// The case.
    case: CaseRecord,
    /// The `case.created` entry.
    receipt: Receipt,
}

/// Open a case (`case.created`).
#[utoipa::path(
    post,
    path = "/v1/cases",
    tag = "retrieval",
    request_body = NewCase,
    responses(
        (status = 201, description = "The case", body = CaseAnswer),
        (status = 400, description = "No title", body = ErrorBody),
    )
)]
pub(super) async fn create_case(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Json(body): Json<NewCase>,
) -> Result<(StatusCode, JsonOut<CaseAnswer>), ApiError> {
    let (case, receipt) = governance::create_case(
        &state.ledger,
        &caller,
        &body.title,
        body.category.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(CaseAnswer { case, receipt })))
}

/// `POST /v1/cases/{id}/segments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkSegments {
    /// Segment ids to link.
    segments: Vec<String>,
}

/// The entries a step wrote.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Receipts {
    /// One per entry.
    receipts: Vec<Receipt>,
}

/// Link segments to an open case (one `case.segment_linked` entry each).
#[utoipa::path(
    post,
    path = "/v1/cases/{id}/segments",
    tag = "retrieval",
    params(("id" = String, Path, description = "Case id")),
    request_body = LinkSegments,
    responses(
        (status = 200, description = "Linked", body = Receipts),
        (status = 404, description = "No such case or segment", body = ErrorBody),
        (status = 409, description = "The case is closed", body = ErrorBody),
    )
)]
pub(super) async fn link_segments(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Json(body): Json<LinkSegments>,
) -> Result<JsonOut<Receipts>, ApiError> {
    let receipts = governance::link_segments(&state.ledger, &caller, &id, &body.segments).await?;
    Ok(JsonOut(Receipts { receipts }))
}

/// Close an open case (`case.closed`).
#[utoipa::path(
    post,
    path = "/v1/cases/{id}/close",
    tag = "retrieval",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "Closed", body = Receipt),
        (status = 404, description = "No such case", body = ErrorBody),
        (status = 409, description = "Already closed", body = ErrorBody),
    )
)]
pub(super) async fn close_case(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<JsonOut<Receipt>, ApiError> {
    Ok(JsonOut(
        governance::close_case(&state.ledger, &caller, &id).await?,
    ))
}
