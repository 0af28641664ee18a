//! Legal holds on a segment: place one, release it. Handlers are thin:
//! they parse, call [`custos_ledger::governance`] (where every rule is
//! checked atomically with its custody entry) and answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json as JsonOut;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{optional_body, Authed, Path};
use super::AppState;
use custos_ledger::governance;
use custos_ledger::wire::{ErrorBody, Receipt};

/// A hold's reason.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    /// Why the footage must be kept (required).
    #[serde(default)]
    reason: String,
}

/// Place a legal hold on a segment (`hold.placed`).
#[utoipa::path(
    post,
    path = "/v1/segments/{id}/hold",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    request_body = HoldBody,
    responses(
        (status = 200, description = "Held", body = Receipt),
        (status = 400, description = "No reason", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Already held", body = ErrorBody),
    )
)]
pub(super) async fn place_hold(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<JsonOut<Receipt>, ApiError> {
    let body: HoldBody = optional_body(&body)?;
    if state.ledger.segment(&id)?.is_none() {
        return Err(ApiError::not_found(format!("no segment {id:?}")));
    }
    Ok(JsonOut(
        governance::place_hold(&state.ledger, &caller, &id, &body.reason).await?,
    ))
}

/// Release a legal hold (`hold.released`).
#[utoipa::path(
    delete,
    path = "/v1/segments/{id}/hold",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "Released", body = Receipt),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Not held", body = ErrorBody),
    )
)]
pub(super) async fn release_hold(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<JsonOut<Receipt>, ApiError> {
    Ok(JsonOut(
        governance::release_hold(&state.ledger, &caller, &id).await?,
    ))
}
