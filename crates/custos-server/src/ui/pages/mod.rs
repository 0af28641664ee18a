//! The console's pages: one handler per route of [`super::router`], one
//! file per resource, and [`Page::run`], the one wrapper every page
//! handler goes through: it checks the session, the ledger's refusal to
//! serve and the caller's role against the API route the page mirrors
//! ([`Ctx::require`]) and, for a form, its CSRF token; runs the page; and
//! renders a failure as the error page (or the sign-in redirect) in the
//! request's language. Each page then calls the same function that API
//! route calls. Templates are maud (every interpolated value is
//! HTML-escaped); every string comes from the catalogues (the `t` and `ta`
//! methods of [`super::i18n::Catalogue`]).
//!
//! Rooms: [`sign_in`] (home, sign-in, sign-out), [`search`],
//! [`segments`] (one segment, its player and export), [`access`] (access
//! requests and the approval queue), [`cases`] (and their custody [`report`], PDF and print view), [`holds`], [`coverage`]
//! (coverage findings and their explanations), [`supervision`] (per
//! officer and recorder over a period, and its CSV), [`audit`].
//!
//! No page may skip [`Page::run`] except the sign-in pages and the
//! unknown-path answer, which need no session.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use custos_core::manifest::Timestamp;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::i18n::Lang;
use super::{error_response, finish, Ctx, Session, UiError, UiState, LANG_COOKIE};
use custos_ledger::auth::Role;
use custos_ledger::governance::RequestStatus;

pub(super) mod access;
pub(super) mod audit;
pub(super) mod cases;
pub(super) mod coverage;
pub(super) mod holds;
pub(super) mod report;
pub(super) mod search;
pub(super) mod segments;
pub(super) mod sign_in;
pub(super) mod supervision;

// ---------------------------------------------------------------------------
// The one handler wrapper

/// What every page handler takes: the console's state and the request's
/// context.
pub(super) struct Page {
    /// The console's state.
    state: UiState,
    /// The request's language, session and path.
    ctx: Ctx,
}

impl FromRequestParts<UiState> for Page {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        Ok(Page {
            state: state.clone(),
            ctx,
        })
    }
}

/// What a page needs before it runs.
pub(super) enum Need {
    /// Signed in, a ledger that serves, and a role that may call the API
    /// route `method path` (the API's role matrix).
    Route(&'static str, &'static str),
    /// The same for a form post, whose CSRF token (the third field) must
    /// match the session's.
    Form(&'static str, &'static str, String),
    /// Signed in, with the form's CSRF token: sign-out, which every role
    /// may do whatever the ledger's state.
    SignedIn(String),
}

impl Need {
    /// [`Need::Form`] with the form's token.
    fn form(method: &'static str, path: &'static str, csrf: &str) -> Need {
        Need::Form(method, path, csrf.to_owned())
    }

    /// The session, if the request has what `self` asks for.
    fn check(&self, page: &Page) -> Result<Session, UiError> {
        let (state, ctx) = (&page.state, &page.ctx);
        let session = match self {
            Need::Route(method, path) => ctx.require(state, method, path)?,
            Need::Form(method, path, csrf) => ctx.require_form(state, method, path, csrf)?,
            Need::SignedIn(csrf) => {
                let Some((_, session)) = &ctx.session else {
                    return Err(UiError::SignIn);
                };
                ctx.check_csrf(session, csrf)?;
                session
            }
        };
        Ok(session.clone())
    }
}

impl Page {
    /// The one wrapper of every page handler: check what `need` asks for,
    /// then run `page` with the caller's session; a failure of either is
    /// the error page (or the sign-in redirect) in the request's language.
    async fn run<F, Fut>(self, need: Need, page: F) -> Response
    where
        F: FnOnce(Page, Session) -> Fut,
        Fut: Future<Output = Result<Response, UiError>>,
    {
        let session = match need.check(&self) {
            Ok(session) => session,
            Err(e) => return error_response(&self.ctx, e),
        };
        let ctx = self.ctx.clone();
        finish(&ctx, page(self, session).await)
    }

    /// The error page for a request refused before [`Page::run`] (a form
    /// value that decides which route the page mirrors).
    fn fail(&self, e: UiError) -> Response {
        error_response(&self.ctx, e)
    }
}

/// Unknown console paths.
pub(super) async fn not_found(page: Page) -> Response {
    let path = page.ctx.path.clone();
    page.fail(UiError::page(
        StatusCode::NOT_FOUND,
        format!("no page {path}"),
    ))
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A form with a reason.
#[derive(Debug, Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

// ---------------------------------------------------------------------------
// Layout and small pieces

/// A page in the layout: header with navigation, language switcher and
/// sign-out, then `body`. Scripts are files of `/ui/static/`.
fn layout(ctx: &Ctx, title: &str, body: Markup, scripts: &[&str]) -> Response {
    let c = ctx.c();
    let signed = ctx.session.as_ref().map(|(_, s)| s);
    let markup = html! {
        (DOCTYPE)
        html lang=(ctx.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (c.t("app-name")) }
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
                @for s in scripts {
                    script src=(format!("/ui/static/{s}")) defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/ui/" { (c.t("app-name")) }
                    @if signed.is_some() {
                        nav {
                            @if ctx.may("GET", "/v1/segments") {
                                a #nav-search href="/ui/search" { (c.t("nav-search")) }
                                a #nav-cases href="/ui/cases" { (c.t("nav-cases")) }
                            }
                            @if ctx.may("POST", "/v1/access-requests/{id}/approve") {
                                a #nav-queue href="/ui/queue" { (c.t("nav-queue")) }
                            }
                            @if ctx.may("POST", "/v1/coverage/{seq}/explanation") {
                                a #nav-coverage href="/ui/coverage" { (c.t("nav-coverage")) }
                            }
                            @if ctx.may("GET", "/v1/supervision") {
                                a #nav-supervision href="/ui/supervision" { (c.t("nav-supervision")) }
                            }
                            @if ctx.may("POST", "/v1/segments/{id}/hold") {
                                a #nav-holds href="/ui/holds" { (c.t("nav-holds")) }
                            }
                            @if ctx.may("GET", "/v1/entries") {
                                a #nav-audit href="/ui/audit" { (c.t("nav-audit")) }
                            }
                        }
                    }
                    div.langs {
                        @for l in Lang::ALL {
                            @if l == ctx.lang {
                                span.lang.current lang=(l.tag()) { (l.own_name()) }
                            } @else {
                                a.lang lang=(l.tag()) href=(format!("{}?lang={}", ctx.path, l.tag())) { (l.own_name()) }
                            }
                        }
                    }
                    @if let Some(s) = signed {
                        div.who {
                            span #who { (c.ta("signed-in-as", &[("name", &s.caller.name), ("role", &role_name(ctx, s.caller.role))])) }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button #sign-out type="submit" { (c.t("sign-out")) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut r = Html(markup.into_string()).into_response();
    if ctx.lang_chosen {
        if let Ok(v) =
            HeaderValue::from_str(&ctx.cookie(LANG_COOKIE, ctx.lang.tag(), Some(31_536_000)))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// The error page.
pub(super) fn error_page(ctx: &Ctx, title: &str, detail: &str) -> Response {
    let c = ctx.c();
    layout(
        ctx,
        title,
        html! {
            p.error #error-detail { (detail) }
            p { a href="/ui/" { (c.t("back-home")) } }
        },
        &[],
    )
}

fn role_name(ctx: &Ctx, role: Role) -> String {
    ctx.c().t(&format!("role-{}", role.as_str()))
}

/// A time: UTC in the text and `datetime`; console.js shows it in the
/// viewer's zone with UTC on hover.
fn time(ts: Timestamp) -> Markup {
    let text = ts.to_string();
    html! { time.ts datetime=(text) title=(text) { (text) } }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) => {
            let s = ms / 1000;
            format!("{}:{:02}.{}", s / 60, s % 60, (ms % 1000) / 100)
        }
    }
}

fn status_text(ctx: &Ctx, status: &str) -> String {
    ctx.c().t(&format!("status-{status}"))
}

fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form's text field: trimmed, `None` when empty.
fn opt(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An id for a URL path segment (ids are ASCII without `/`, but escape
/// anyway).
fn path_part(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn request_status(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Pending => "pending",
        RequestStatus::Approved => "approved",
        RequestStatus::Denied => "denied",
    }
}
