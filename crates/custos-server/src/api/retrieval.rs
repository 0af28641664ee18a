//! Evidence retrieval routes: footage (HTTP Range, logged), cases, holds,
//! access requests and their approval. Handlers are thin: they parse,
//! call [`custos_ledger::governance`] (where every rule is checked atomically with
//! its custody entry) and answer.
//!
//! The footage route must never send a byte before its `segment.viewed`
//! entry is durable, and never buffer a whole object in memory.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use futures::TryStreamExt as _;
use object_store::{GetOptions, GetRange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{Authed, Json, Path};
use super::AppState;
use custos_ledger::append::RejectionKind;
use custos_ledger::error::AppendError;
use custos_ledger::governance::{self, AccessAsk, AccessRequest, CaseRecord, GovernanceError};
use custos_ledger::wire::{ErrorBody, Receipt};

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            GovernanceError::Append(a) => a.into(),
            GovernanceError::Read(r) => r.into(),
        }
    }
}

/// An optional JSON body: empty means the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("the request body is not valid JSON for this request: {e}"),
        )
    })
}

/// What a Range header asks for, against an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No (usable) Range header: the whole object, 200.
    Whole,
    /// Bytes `[start, end]` (inclusive), 206.
    Part(u64, u64),
    /// Nothing of the object can satisfy it: 416.
    Unsatisfiable,
}

/// Parse a `Range` header value (RFC 9110 §14.1.2) for one byte range:
/// `bytes=a-b`, `bytes=a-`, `bytes=-n`. A header this server does not
/// handle (another unit, several ranges, malformed) is ignored, as the RFC
/// allows: the whole object is sent.
pub(crate) fn parse_range(value: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size.saturating_sub(n), size - 1),
        },
        (a, "") => match num(a) {
            None => RangeAsk::Whole,
            Some(a) if a >= size => RangeAsk::Unsatisfiable,
            Some(a) => RangeAsk::Part(a, size - 1),
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part(a, b.min(size - 1))
                }
            }
            _ => RangeAsk::Whole,
        },
    }
}

/// The media type of a container as FFmpeg names it.
fn content_type(container: &str) -> &'static str {
    let c = container.to_ascii_lowercase();
    if c.contains("mp4") || c.contains("mov") {
        "video/mp4"
    } else if c.contains("webm") {
        "video/webm"
    } else if c.contains("matroska") {
        "video/x-matroska"
    } else if c.contains("avi") {
        "video/x-msvideo"
    } else if c.contains("mpegts") {
        "video/mp2t"
    } else if c.contains("mpeg") {
        "video/mpeg"
    } else {
        "application/octet-stream"
    }
}

/// Stream a segment's footage (HTTP Range), logged as an access.
///
/// A role listed in `[access] approval_required` needs an approved access
/// request covering the segment (directly or through a case); without one
/// the answer is 403 and the refused attempt is an `access.refused` entry.
/// Every answer with footage is preceded by a `segment.viewed` entry naming
/// the caller, the byte range and the request it rests on.
#[utoipa::path(
    get,
    path = "/v1/segments/{id}/content",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The whole footage", content_type = "video/mp4"),
        (status = 206, description = "The requested byte range", content_type = "video/mp4"),
        (status = 403, description = "No approved access request (the attempt is logged)", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 416, description = "The range is outside the footage", body = ErrorBody),
        (status = 503, description = "No object store configured", body = ErrorBody),
    )
)]
pub(super) async fn get_content(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    content_response(&state, &caller, &id, &method, &headers).await
}

/// The footage answer of [`get_content`], shared with the web console's
/// player (`crate::ui`): the same gate ([`governance::FootageGate`]), the
/// same `segment.viewed` entry before any byte, the same Range handling.
/// `HEAD` answers what `GET` would — the same status and headers, a
/// refusal recorded as `access.refused` — without a body and without a
/// view entry (no byte of footage leaves).
pub(crate) async fn content_response(
    state: &AppState,
    caller: &custos_ledger::auth::Caller,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let head = method == Method::HEAD;
    let record = state
        .ledger
        .segment(id)?
        .ok_or_else(|| ApiError::not_found(format!("no segment {id:?}")))?;
    let size = record.manifest.size;
    let ask = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    if ask == RangeAsk::Unsatisfiable {
        let mut resp = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the range is outside segment {id:?}, which has {size} bytes"),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(resp);
    }
    let objects = state.governance.objects.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_object_store",
            "this ledger has no object store configured ([storage] url), so it cannot serve footage",
        )
    })?;
    let key = object_store::path::Path::parse(&record.manifest.object.key).map_err(|e| {
        ApiError::internal(format!(
            "segment {id:?} has object key {:?} that the store cannot use: {e}",
            record.manifest.object.key
        ))
    })?;
    let part = match ask {
        RangeAsk::Part(a, b) => Some((a, b)),
        _ => None,
    };
    let (status, length) = match part {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a + 1),
        None => (StatusCode::OK, size),
    };
    if head {
        governance::check_footage_access(&state.ledger, &state.governance, caller, &record).await?;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = status;
        footage_headers(resp.headers_mut(), &record, part, length);
        return Ok(resp);
    }
    // Logged before any byte leaves: if this fails, nothing is sent.
    let (receipt, _) =
        governance::record_view(&state.ledger, &state.governance, caller, &record, part).await?;
    let options = GetOptions {
        range: part.map(|(a, b)| GetRange::Bounded(a..b + 1)),
        ..GetOptions::default()
    };
    let got = objects.get_opts(&key, options).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "object_missing",
            format!(
                "the footage of segment {id:?} is missing from the store at key {:?}",
                record.manifest.object.key
            ),
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "object_store",
            format!("reading the footage of segment {id:?}: {other}"),
        ),
    })?;
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    footage_headers(h, &record, part, length);
    h.insert("x-custos-entry", HeaderValue::from(receipt.seq));
    Ok(resp)
}

/// The headers of a footage answer (`GET` and `HEAD` alike).
fn footage_headers(
    h: &mut HeaderMap,
    record: &custos_ledger::catalogue::SegmentRecord,
    part: Option<(u64, u64)>,
    length: u64,
) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&record.manifest.media.container)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((a, b)) = part {
        let size = record.manifest.size;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
}

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
