//! Evidence retrieval routes: footage, cases, holds, access requests,
//! exports. Their rules arrive with the retrieval issue; until then each
//! answers 501 `not_implemented`, *after* the role matrix has been applied
//! (the middleware runs first), so the matrix is already enforced and
//! tested for them.

use super::error::ApiError;
use super::extract::Authed;
use crate::wire::ErrorBody;

fn pending(what: &str) -> ApiError {
    ApiError::not_implemented(format!(
        "{what} is not available yet in this ledger version"
    ))
}

/// Stream a segment's footage (HTTP Range), logged as an access.
#[utoipa::path(
    get,
    path = "/v1/segments/{id}/content",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn get_content(Authed(_caller): Authed) -> ApiError {
    pending("streaming footage")
}

/// Open a case.
#[utoipa::path(
    post,
    path = "/v1/cases",
    tag = "retrieval",
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn create_case(Authed(_caller): Authed) -> ApiError {
    pending("creating cases")
}

/// Link segments to a case.
#[utoipa::path(
    post,
    path = "/v1/cases/{id}/segments",
    tag = "retrieval",
    params(("id" = String, Path, description = "Case id")),
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn link_segments(Authed(_caller): Authed) -> ApiError {
    pending("linking segments to cases")
}

/// Place a legal hold on a segment.
#[utoipa::path(
    post,
    path = "/v1/segments/{id}/hold",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn place_hold(Authed(_caller): Authed) -> ApiError {
    pending("legal holds")
}

/// Release a legal hold.
#[utoipa::path(
    delete,
    path = "/v1/segments/{id}/hold",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn release_hold(Authed(_caller): Authed) -> ApiError {
    pending("legal holds")
}

/// Request access to footage, with a reason.
#[utoipa::path(
    post,
    path = "/v1/access-requests",
    tag = "retrieval",
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn create_access_request(Authed(_caller): Authed) -> ApiError {
    pending("access requests")
}

/// Approve an access request.
#[utoipa::path(
    post,
    path = "/v1/access-requests/{id}/approve",
    tag = "retrieval",
    params(("id" = String, Path, description = "Access request id")),
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn approve_access_request(Authed(_caller): Authed) -> ApiError {
    pending("approving access requests")
}

/// Build an export bundle.
#[utoipa::path(
    post,
    path = "/v1/exports",
    tag = "retrieval",
    responses((status = 501, description = "Not implemented yet", body = ErrorBody))
)]
pub(super) async fn create_export(Authed(_caller): Authed) -> ApiError {
    pending("export bundles")
}
