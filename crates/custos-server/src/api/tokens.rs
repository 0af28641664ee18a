//! The admin's token routes: list every token, revoke one at once.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Authed, Path, Query};
use super::AppState;
use custos_ledger::auth::TokenInfo;
use custos_ledger::wire::ErrorBody;

/// `GET /v1/tokens`: every token, never a secret nor its hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(super) struct TokenList {
    /// By name, then id.
    pub tokens: Vec<TokenInfo>,
}

/// Every bearer token: id, role, name, created, end, state
/// (`active`, `expired`, `revoked`) and a dock's key id.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "admin",
    responses(
        (status = 200, description = "Every token", body = TokenList),
        (status = 401, description = "Missing, invalid, revoked or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.ledger.tokens()?,
    }))
}

/// `token_id` of a revocation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RevokeQuery {
    /// Revoke only this token of the name (16 hex digits), for example
    /// the old token of a dock whose key was replaced by a new token.
    token_id: Option<String>,
}

/// The answer to a revocation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(super) struct Revoked {
    /// The `token.revoked` entry.
    pub seq: u64,
    /// The tokens revoked.
    pub token_ids: Vec<String>,
}

/// Revoke every token in force held by `name` (or only `token_id`): a
/// `token.revoked` entry; the next request with any of them answers 401
/// and console sessions opened with them end. A dock's key stays
/// registered, so what it signed before still verifies.
#[utoipa::path(
    post,
    path = "/v1/tokens/{name}/revoke",
    tag = "admin",
    params(("name" = String, Path, description = "The token holder's name"), RevokeQuery),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 401, description = "Missing, invalid, revoked or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No token in force of that name (and id)", body = ErrorBody),
    )
)]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(name): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<Json<Revoked>, ApiError> {
    let (receipt, token_ids) = state
        .ledger
        .revoke_token(caller.actor(), &name, q.token_id.as_deref())
        .await?;
    Ok(Json(Revoked {
        seq: receipt.seq,
        token_ids,
    }))
}
