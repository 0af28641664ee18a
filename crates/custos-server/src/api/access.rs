//! Access requests: ask for access to a case's or a segment's footage,
//! approve or deny a request. Handlers are thin: they parse, call
//! [`custos_ledger::governance`] (where every rule is checked atomically
//! with its custody entry) and answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{optional_body, Authed, Json, Path};
use super::AppState;
use custos_ledger::append::RejectionKind;
use custos_ledger::error::AppendError;
use custos_ledger::governance::{self, AccessAsk, AccessRequest, GovernanceError};
use custos_ledger::wire::{ErrorBody, Receipt};

/// An access request and the entry that recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RequestAnswer {
    /// The request.
    request: AccessRequest,
    /// The `access.requested` entry.
    receipt: Receipt,
}

/// Request access to footage of a case or a segment, with a reason
/// (`access.requested`).
#[utoipa::path(
    post,
    path = "/v1/access-requests",
    tag = "retrieval",
    request_body = AccessAsk,
    responses(
        (status = 201, description = "Requested", body = RequestAnswer),
        (status = 400, description = "No reason, or not exactly one of case and segment", body = ErrorBody),
        (status = 404, description = "No such case or segment", body = ErrorBody),
    )
)]
pub(super) async fn create_access_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Json(ask): Json<AccessAsk>,
) -> Result<(StatusCode, JsonOut<RequestAnswer>), ApiError> {
    let (request, receipt) = governance::request_access(&state.ledger, &caller, &ask).await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(RequestAnswer { request, receipt }),
    ))
}

/// A decision's optional note and, for an approval, how long it stays in
/// force.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// A note for the record.
    #[serde(default)]
    note: Option<String>,
    /// Days the approval stays in force (1 to 366; default `[access]
    /// approval_valid_days`). Ignored for a denial.
    #[serde(default)]
    valid_days: Option<u32>,
}

async fn decide(
    state: &AppState,
    caller: &custos_ledger::auth::Caller,
    id: &str,
    approve: bool,
    body: &Bytes,
) -> Result<JsonOut<Receipt>, ApiError> {
    let d: Decision = optional_body(body)?;
    let decision = governance::Decision {
        approve,
        note: d.note,
        valid_days: if approve { d.valid_days } else { None },
    };
    let receipt = governance::decide(&state.ledger, &state.governance, caller, id, &decision)
        .await
        .map_err(|e| match e {
            GovernanceError::Append(AppendError::Rejected(r))
                if r.kind == RejectionKind::Forbidden =>
            {
                ApiError::new(StatusCode::FORBIDDEN, &r.code, r.message)
            }
            other => other.into(),
        })?;
    Ok(JsonOut(receipt))
}

/// Approve an access request (`access.approved`); not one's own.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/approve",
    tag = "retrieval",
    params(("id" = String, Path, description = "Access request id")),
    request_body(content = Decision, description = "Optional note"),
    responses(
        (status = 200, description = "Approved", body = Receipt),
        (status = 403, description = "The requester's own request", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
    )
)]
pub(super) async fn approve_access_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<JsonOut<Receipt>, ApiError> {
    decide(&state, &caller, &id, true, &body).await
}

/// Deny an access request (`access.denied`); not one's own.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/deny",
    tag = "retrieval",
    params(("id" = String, Path, description = "Access request id")),
    request_body(content = Decision, description = "Optional note"),
    responses(
        (status = 200, description = "Denied", body = Receipt),
        (status = 403, description = "The requester's own request", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
    )
)]
pub(super) async fn deny_access_request(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<JsonOut<Receipt>, ApiError> {
    decide(&state, &caller, &id, false, &body).await
}
