//! Coverage of each recorder's footage: the ledger's findings
//! (`coverage.gap`) and a supervisor's explanation of one
//! (`coverage.explained`, the 中断说明). Handlers are thin: the rules are
//! [`custos_ledger::governance`]'s.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{optional_body, Authed, Path, Query};
use super::AppState;
use custos_ledger::governance;
use custos_ledger::wire::{CoverageList, CoverageQuery, ErrorBody, Receipt};

/// A supervisor's explanation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplanationBody {
    /// Why the footage is incomplete (required; at most 2000 bytes).
    #[serde(default)]
    reason: String,
}

/// List coverage findings, by recorder, officer and state.
#[utoipa::path(
    get,
    path = "/v1/coverage",
    tag = "coverage",
    params(CoverageQuery),
    responses(
        (status = 200, description = "The findings", body = CoverageList),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
    )
)]
pub(super) async fn list_findings(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Json<CoverageList>, ApiError> {
    let ledger = state.ledger.clone();
    let findings = tokio::task::spawn_blocking(move || governance::coverage_findings(&ledger, &q))
        .await
        .map_err(|e| ApiError::internal(format!("listing coverage findings: {e}")))??;
    Ok(Json(CoverageList { findings }))
}

/// Explain a coverage finding (`coverage.explained`); once per finding.
#[utoipa::path(
    post,
    path = "/v1/coverage/{seq}/explanation",
    tag = "coverage",
    params(("seq" = u64, Path, description = "The seq of the finding's coverage.gap entry")),
    request_body = ExplanationBody,
    responses(
        (status = 200, description = "Explained", body = Receipt),
        (status = 400, description = "No reason, or one too long", body = ErrorBody),
        (status = 404, description = "No such finding", body = ErrorBody),
        (status = 409, description = "Already explained", body = ErrorBody),
    )
)]
pub(super) async fn explain_finding(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(seq): Path<String>,
    body: Bytes,
) -> Result<Json<Receipt>, ApiError> {
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_seq",
            format!("{seq:?} is not a finding's entry seq (a whole number)"),
        )
    })?;
    let body: ExplanationBody = optional_body(&body)?;
    Ok(Json(
        governance::explain_gap(&state.ledger, &caller, seq, &body.reason).await?,
    ))
}
