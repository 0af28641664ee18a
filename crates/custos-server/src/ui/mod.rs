//! The reviewers' web console, served under `/ui/` by the ledger service.
//!
//! Server-rendered pages (maud: every value is HTML-escaped), their CSS
//! and JavaScript compiled into the binary ([`assets`]), the message
//! catalogues of [`i18n`]. A person signs in with their bearer token; the
//! console exchanges it for a session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when the request came over TLS) whose id is
//! random and kept only as its SHA-256, with the caller's identity and a
//! CSRF token that every form carries.
//!
//! This module must never decide a rule of its own: each page checks the
//! caller's role against the API's role matrix ([`custos_ledger::auth::ROUTES`],
//! for the API route that does the same thing), and each action calls the
//! same function the API route calls ([`custos_ledger::governance`],
//! [`custos_ledger::export`], the footage answer of `GET /v1/segments/{id}/content`).
//! It must never render a value unescaped, never run inline script (the
//! Content-Security-Policy forbids it), and never store a bearer token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::api::{ApiError, AppState};
use custos_ledger::auth::{self, Caller, Role, TokenRecord, TOKENS};

pub mod assets;
pub mod i18n;
mod pages;

use i18n::{catalogue, Catalogue, Lang};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "custos_session";
/// The language cookie's name.
pub const LANG_COOKIE: &str = "custos_lang";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "custos_login_csrf";
/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once; the oldest is dropped past it.
const MAX_SESSIONS: usize = 10_000;

/// The Content-Security-Policy of every console answer: only this
/// origin's scripts, styles and media; no inline script or style, no
/// frames, forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who, as the token said at sign-in.
    pub caller: Caller,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    expires: Instant,
}

/// The sessions, keyed by the SHA-256 of their cookie value.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Start a session for `caller`; returns the cookie value.
    pub fn create(&self, caller: Caller) -> String {
        let id = random_text();
        let session = Session {
            caller,
            csrf: random_text(),
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(key_of(&id), session);
        id
    }

    /// The live session of a cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key_of(id))
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// End a session.
    pub fn remove(&self, id: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key_of(id));
    }
}

/// The console's state: the API's, plus the sessions.
#[derive(Debug, Clone)]
pub struct UiState {
    /// What the API handlers get.
    pub app: AppState,
    /// Signed-in sessions.
    pub sessions: Arc<Sessions>,
}

/// The console's routes (to be nested under `/ui`).
pub fn router(app: AppState) -> Router {
    let state = UiState {
        app,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/", get(pages::sign_in::home))
        .route(
            "/login",
            get(pages::sign_in::login_form).post(pages::sign_in::login),
        )
        .route("/logout", post(pages::sign_in::logout))
        .route("/static/{file}", get(assets::serve))
        .route("/search", get(pages::search::search))
        .route("/segments/{id}", get(pages::segments::segment))
        .route(
            "/segments/{id}/request",
            post(pages::access::request_access),
        )
        .route("/segments/{id}/media", get(pages::segments::media))
        .route(
            "/segments/{id}/report",
            get(pages::report::segment_report_html),
        )
        .route(
            "/segments/{id}/report.pdf",
            get(pages::report::segment_report_pdf),
        )
        .route(
            "/segments/{id}/export",
            post(pages::segments::export_segment),
        )
        .route("/segments/{id}/hold", post(pages::holds::place_hold))
        .route("/segments/{id}/release", post(pages::holds::release_hold))
        .route("/queue", get(pages::access::queue))
        .route("/requests/{id}/decide", post(pages::access::decide))
        .route(
            "/cases",
            get(pages::cases::cases).post(pages::cases::create_case),
        )
        .route("/cases/{id}", get(pages::cases::case))
        .route("/cases/{id}/link", post(pages::cases::link))
        .route("/cases/{id}/close", post(pages::cases::close_case))
        .route(
            "/cases/{id}/request",
            post(pages::access::request_case_access),
        )
        .route("/cases/{id}/export", post(pages::cases::export_case))
        .route("/cases/{id}/report", get(pages::report::report_html))
        .route("/cases/{id}/report.pdf", get(pages::report::report_pdf))
        .route("/holds", get(pages::holds::holds))
        .route("/coverage", get(pages::coverage::coverage))
        .route("/coverage/{seq}/explain", post(pages::coverage::explain))
        .route("/supervision", get(pages::supervision::supervision))
        .route("/supervision.csv", get(pages::supervision::supervision_csv))
        .route("/audit", get(pages::audit::audit))
        .route("/audit/custody/{id}", get(pages::audit::audit_custody))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The headers of every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A cookie's value in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The request's context: language, session, whether it came over TLS.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The page language.
    pub lang: Lang,
    /// Whether `?lang=` chose it (the answer then sets the cookie).
    pub lang_chosen: bool,
    /// The session and its cookie value, if signed in.
    pub session: Option<(String, Session)>,
    /// TLS (the service's own, [`crate::tls`], or as a proxy in front
    /// says): cookies get `Secure`.
    pub secure: bool,
    /// The request path and query, for the language switcher.
    pub path: String,
    /// The login form's CSRF cookie, if any.
    pub login_csrf: Option<String>,
}

impl FromRequestParts<UiState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let query_lang = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "lang")
                .and_then(|(_, v)| Lang::from_tag(v))
        });
        let lang = query_lang
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::from_tag))
            .unwrap_or_else(|| {
                Lang::negotiate(
                    parts
                        .headers
                        .get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok()),
                )
            });
        let session = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| {
            let s = state.sessions.get(id)?;
            // A token revoked or expired since sign-in ends its sessions
            // (read from the store on every request: no cache to lag).
            let record: Option<TokenRecord> = state
                .app
                .ledger
                .store()
                .table_get_json(TOKENS, s.caller.token_id.as_bytes())
                .ok()
                .flatten();
            match record {
                Some(r) if r.in_force(state.app.ledger.now()) => Some((id.to_owned(), s)),
                _ => {
                    state.sessions.remove(id);
                    None
                }
            }
        });
        let secure = parts.uri.scheme_str() == Some("https")
            || parts
                .extensions
                .get::<crate::tls::ConnectionInfo>()
                .is_some_and(|c| c.tls)
            || parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        // The path as the browser sees it (this router is nested at /ui).
        let mut path = format!("/ui{}", parts.uri.path());
        if path.ends_with('/') && path.len() > 4 {
            path.pop();
        }
        Ok(Ctx {
            lang,
            lang_chosen: query_lang.is_some(),
            session,
            secure,
            path,
            login_csrf: cookie(&parts.headers, LOGIN_CSRF_COOKIE).map(str::to_owned),
        })
    }
}

impl Ctx {
    /// The catalogue of the page language.
    pub fn c(&self) -> &'static Catalogue {
        catalogue(self.lang)
    }

    /// A `Set-Cookie` value with the console's attributes.
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// The signed-in caller, allowed to do what the API route `method
    /// path` does (the API's role matrix), on a ledger that serves.
    pub fn require(&self, state: &UiState, method: &str, path: &str) -> Result<&Session, UiError> {
        let Some((_, session)) = &self.session else {
            return Err(UiError::SignIn);
        };
        if let Some(t) = state.app.ledger.refusal() {
            return Err(UiError::page(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger refuses to serve: {t}"),
            ));
        }
        if !self.may(method, path) {
            return Err(UiError::page(
                StatusCode::FORBIDDEN,
                format!(
                    "role {} may not {method} {path}",
                    session.caller.role.as_str()
                ),
            ));
        }
        Ok(session)
    }

    /// Whether the signed-in role may call the API route (false when not
    /// signed in; a route missing from the matrix is nobody's).
    pub fn may(&self, method: &str, path: &str) -> bool {
        let Some((_, session)) = &self.session else {
            return false;
        };
        auth::route_access(method, path).is_some_and(|row| row.access.allows(session.caller.role))
    }

    /// [`Ctx::require`] for a form post: the role check, then the form's
    /// CSRF token against the session's.
    pub fn require_form(
        &self,
        state: &UiState,
        method: &str,
        path: &str,
        csrf: &str,
    ) -> Result<&Session, UiError> {
        let session = self.require(state, method, path)?;
        self.check_csrf(session, csrf)?;
        Ok(session)
    }

    /// Check a form's CSRF token against the session's.
    pub fn check_csrf(&self, session: &Session, given: &str) -> Result<(), UiError> {
        if bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(UiError::page(
                StatusCode::FORBIDDEN,
                "the form's CSRF token does not match this session; reload the page and try again",
            ))
        }
    }
}

/// The roles that may sign in to the console.
pub const CONSOLE_ROLES: &[Role] = &[Role::Reviewer, Role::Supervisor, Role::Auditor];

/// Why a console request failed.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in: go to the sign-in page.
    SignIn,
    /// An error page with this status and detail.
    Page {
        /// The status.
        status: StatusCode,
        /// The detail (the ledger's own message).
        detail: String,
    },
}

impl UiError {
    /// An error page.
    pub fn page(status: StatusCode, detail: impl Into<String>) -> UiError {
        UiError::Page {
            status,
            detail: detail.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError::page(e.status, e.message)
    }
}

impl From<custos_ledger::governance::GovernanceError> for UiError {
    fn from(e: custos_ledger::governance::GovernanceError) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<custos_ledger::error::ReadError> for UiError {
    fn from(e: custos_ledger::error::ReadError) -> UiError {
        ApiError::from(e).into()
    }
}

/// Turn a handler's result into a response: an error page (or the
/// sign-in redirect) in the request's language.
pub fn finish(ctx: &Ctx, result: Result<Response, UiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => error_response(ctx, e),
    }
}

/// Render an error for `ctx`.
pub fn error_response(ctx: &Ctx, e: UiError) -> Response {
    match e {
        UiError::SignIn => Redirect::to("/ui/login").into_response(),
        UiError::Page { status, detail } => {
            let c = ctx.c();
            let title = match status {
                StatusCode::FORBIDDEN => c.t("error-forbidden"),
                StatusCode::NOT_FOUND => c.t("error-not-found"),
                StatusCode::CONFLICT => c.t("error-conflict"),
                s if s.is_client_error() => c.t("error-bad-request"),
                _ => c.t("error-server"),
            };
            let body = pages::error_page(ctx, &title, &detail);
            (status, body).into_response()
        }
    }
}
