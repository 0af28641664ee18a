//! The HTTP API (DESIGN.md "Ledger HTTP API (v1)"): [`app`] builds the
//! axum router; tests call it with `tower::ServiceExt::oneshot`, the server
//! ([`crate::serve`]) binds it to a socket.
//!
//! Routes are registered with `utoipa_axum::routes!`, so the OpenAPI
//! document at `/v1/openapi.json` is generated from the same handlers the
//! router serves. Every request passes, outside in:
//!
//! 1. a request id (`x-request-id`, generated if absent, echoed back) and a
//!    tracing span carrying it; generated ids are a per-process random
//!    prefix and a counter ([`RequestIds`]), unique within the logs of
//!    one service without a system call per request;
//! 2. a timeout ([`ApiConfig::request_timeout`], answered 503 `timeout`);
//! 3. per-route metrics;
//! 4. the body size limit ([`ApiConfig::max_body_bytes`], answered 413 by
//!    the body extractors);
//! 5. on a matched route, `authorize`: the tamper refusal, then the token
//!    (a dock token also needs the station's client certificate when the
//!    service asks for one, [`crate::tls`]), then the role matrix of [`custos_ledger::auth::ROUTES`], then the
//!    `token.used` entry for an admin;
//! 6. the handler (thin: it parses, calls the [`Ledger`], answers).
//!
//! Unknown routes and methods get the JSON error shape too.
//!
//! This module must never decide a rule (who may append what, what a proof
//! is): it asks the [`Ledger`] and the role matrix.

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use custos_core::entry::details::TokenUsed;
use custos_core::entry::Details;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use custos_ledger::auth::{self, Access, AuthError, Role};
use custos_ledger::ledger::Ledger;

mod access;
mod backup;
mod cases;
mod content;
mod coverage;
pub mod error;
mod exports;
pub mod extract;
mod holds;
mod log;
mod ops;
mod segments;
mod supervision;
mod tokens;

pub(crate) use content::content_response;
pub use error::ApiError;
pub(crate) use exports::export_response;
pub(crate) use supervision::csv_response as supervision_csv;

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take, body upload included (answered 503
    /// `timeout`); also how long a connection may take to send a request's
    /// headers, or stay idle between requests, before it is closed
    /// ([`crate::serve`]).
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            // An event envelope is at most a manifest envelope (1 MiB, see
            // custos_core::dsse::MAX_ENVELOPE_BYTES) wrapped once more in
            // base64 (4/3) plus JSON: 2 MiB covers it with room to spare.
            max_body_bytes: 2 << 20,
            // Long enough for a durable append under load (milliseconds)
            // and a page of entries; short enough that a stalled client
            // does not hold a connection for minutes.
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The ledger.
    pub ledger: Ledger,
    /// The HTTP limits.
    pub config: ApiConfig,
    /// The access policy and the object store footage is read from;
    /// shared, so that cloning the state (axum does, several times per
    /// request) allocates nothing.
    pub governance: Arc<custos_ledger::governance::Governance>,
}

impl AppState {
    /// State for `ledger` with default limits.
    pub fn new(ledger: Ledger) -> Self {
        AppState {
            ledger,
            config: ApiConfig::default(),
            governance: Arc::new(custos_ledger::governance::Governance::default()),
        }
    }

    /// The same state with `governance` (access policy, object store).
    pub fn with_governance(mut self, governance: custos_ledger::governance::Governance) -> Self {
        self.governance = Arc::new(governance);
        self
    }
}

/// The OpenAPI document's static part: title, security scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Custos ledger API",
        description = "The custody ledger of Custos: append-only, verifiable (RFC 6962 Merkle tree, C2SP signed checkpoints)."
    ),
    components(schemas(custos_ledger::wire::ErrorBody))
)]
struct ApiDoc;

/// The routes and their OpenAPI document, before state and layers.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(log::post_events))
        .routes(routes!(log::get_checkpoint))
        .routes(routes!(log::get_entries))
        .routes(routes!(log::get_inclusion_proof))
        .routes(routes!(log::get_consistency_proof))
        .routes(routes!(segments::search))
        .routes(routes!(segments::get_segment))
        .routes(routes!(content::get_content))
        .routes(routes!(segments::get_custody))
        .routes(routes!(cases::create_case))
        .routes(routes!(cases::link_segments))
        .routes(routes!(holds::place_hold, holds::release_hold))
        .routes(routes!(access::create_access_request))
        .routes(routes!(access::approve_access_request))
        .routes(routes!(access::deny_access_request))
        .routes(routes!(cases::close_case))
        .routes(routes!(exports::create_export))
        .routes(routes!(coverage::list_findings))
        .routes(routes!(coverage::explain_finding))
        .routes(routes!(supervision::supervision))
        .routes(routes!(tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(backup::get_backup))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// Add the role matrix to the document: a bearer security requirement on
/// every route that needs a token, and the allowed roles in its description.
fn document_roles(api: &mut utoipa::openapi::OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ] {
            let (Some(op), Some(row)) = (op, auth::route_access(method, path)) else {
                continue;
            };
            let who = match row.access {
                Access::Public => "Roles: anyone (no token needed).".to_owned(),
                Access::Roles(roles) => {
                    op.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                    let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                    format!("Roles: {}.", names.join(", "))
                }
            };
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{who}"),
                None => who,
            });
        }
    }
}

/// The OpenAPI document of the API, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = routes().into_openapi();
    document_roles(&mut api);
    api
}

/// The whole API as an axum router (see the module documentation).
pub fn app(state: AppState) -> Router {
    let (router, mut api) = routes().split_for_parts();
    document_roles(&mut api);
    // INVARIANT: an OpenAPI document built by utoipa serialises.
    let doc = Arc::new(
        api.to_pretty_json()
            .expect("INVARIANT: the OpenAPI document serialises"),
    );
    let config = state.config;
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        // The web console: its own sessions and role checks (the same
        // role matrix, see crate::ui), outside the bearer-token middleware.
        .nest_service("/ui", crate::ui::router(state.clone()))
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ui/") }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(ops::OpenApiDoc(doc)))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took longer than the server allows",
                    )
                }))
                .timeout(config.request_timeout),
        )
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Request ids for requests that come without one: `PREFIX-N`, where
/// PREFIX is random per process (so ids of two runs of the service do not
/// collide in the logs) and N counts requests.
#[derive(Debug, Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        use rand_core::RngCore as _;
        RequestIds {
            prefix: format!("{:016x}", rand_core::OsRng.next_u64()).into(),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // INVARIANT: hex digits, a dash and decimal digits are a valid
        // header value.
        let id = HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .expect("INVARIANT: a request id is a valid header value");
        Some(RequestId::new(id))
    }
}

/// The metrics label of a request's method: the standard methods by name,
/// anything else `other`, so that a client cannot make label values
/// without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Count and time every request by method, route template and status.
async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    // MatchedPath holds its route as an `Arc<str>`: cloning it copies no text.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let metrics = state.ledger.metrics();
    metrics
        .http_seconds
        .with_label_values(&[method, route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[method, route, response.status().as_str()])
        .inc();
    response
}

/// The bearer token of a request: `None` without an Authorization header,
/// an error if there is one that is not a well-formed bearer token.
fn bearer(req: &Request) -> Result<Option<&str>, AuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(Some(token.trim()))
}

/// Authorisation of a matched route (step 5 of the module documentation).
async fn authorize(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = matched.as_str();
    let method = req.method().clone();
    // A HEAD is answered by the GET route (axum runs the GET handler and
    // drops the body), so it is allowed to whoever may GET.
    let method = if method == axum::http::Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    if path.starts_with("/v1/") && path != "/v1/openapi.json" {
        if let Some(t) = state.ledger.refusal() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_tampered",
                format!("the ledger refuses to serve: {t}"),
            ));
        }
    }
    // Fail closed: a route missing from the matrix is nobody's.
    let row = auth::route_access(method, path).ok_or_else(|| {
        ApiError::internal(format!("{method} {path} is missing from the role matrix"))
    })?;
    let caller = match bearer(&req)? {
        Some(token) => Some(state.ledger.authenticate(token)?),
        None => None,
    };
    if let Some(caller) = caller.as_ref().filter(|c| c.role == Role::Dock) {
        // A dock token counts only with the station's certificate, when
        // the service asks for one (crate::tls, `[ledger] tls_client_ca`).
        if let Some(connection) = req.extensions().get::<crate::tls::ConnectionInfo>() {
            if let Err(refusal) = connection.check_dock(&caller.name) {
                tracing::warn!(token_id = %caller.token_id, "dock token refused: {refusal}");
                let code = match refusal {
                    crate::tls::DockCertificateRefusal::Missing { .. } => {
                        "client_certificate_required"
                    }
                    _ => "client_certificate_mismatch",
                };
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    code,
                    refusal.to_string(),
                ));
            }
        }
    }
    if let Some(caller) = &caller {
        if caller.role == Role::Admin {
            // Invariant 4: every use of an admin token is on the record,
            // before the request is served or refused.
            let details = Details::TokenUsed(TokenUsed {
                method: req.method().as_str().to_owned(),
                route: path.to_owned(),
                uri: req.uri().to_string(),
                token_id: caller.token_id.clone(),
            });
            state.ledger.record(caller, &caller.name, details).await?;
        }
    }
    match (row.access, &caller) {
        (Access::Public, _) => {}
        (Access::Roles(_), None) => return Err(AuthError::Missing.into()),
        (Access::Roles(roles), Some(c)) if !roles.contains(&c.role) => {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            return Err(AuthError::Forbidden {
                role: c.role,
                what: format!("call {method} {path} (allowed: {})", names.join(", ")),
            }
            .into());
        }
        (Access::Roles(_), Some(_)) => {}
    }
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    Ok(response)
}
