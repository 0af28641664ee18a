//! The console's pages: one handler per route of [`super::router`], each
//! checking the role as the API route it mirrors does ([`Ctx::require`])
//! and calling the same function that route calls. Templates are maud
//! (every interpolated value is HTML-escaped); every string comes from the
//! catalogues (the `t` and `ta` methods of [`super::i18n::Catalogue`]).

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use custos_core::dsse::MANIFEST_PAYLOAD_TYPE;
use custos_core::entry::details::SegmentIngested;
use custos_core::entry::{Details, Entry};
use custos_core::keys::VerifierKey;
use custos_core::manifest::Timestamp;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::i18n::Lang;
use super::{finish, random_text, Ctx, UiError, UiState, CONSOLE_ROLES};
use super::{LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_LIFETIME};
use crate::api::{content_response, export_response};
use custos_ledger::auth::{DockKeyRecord, Role, DOCK_KEYS};
use custos_ledger::catalogue::{SegmentQuery, SegmentRecord, MAX_SEARCH_RESULTS};
use custos_ledger::governance::{self, AccessAsk, CaseStatus, RequestStatus};

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

fn csrf_field(session: &super::Session) -> Markup {
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

// ---------------------------------------------------------------------------
// Home, sign-in, sign-out

/// `GET /ui/`: the caller's start page.
pub(super) async fn home(ctx: Ctx) -> Response {
    match &ctx.session {
        None => see_other("/ui/login"),
        Some((_, s)) => see_other(match s.caller.role {
            Role::Supervisor => "/ui/queue",
            Role::Auditor => "/ui/audit",
            _ => "/ui/search",
        }),
    }
}

fn login_page(ctx: &Ctx, error: Option<&str>, status: StatusCode) -> Response {
    let c = ctx.c();
    let csrf = random_text();
    let body = html! {
        p { (c.t("login-intro")) }
        @if let Some(e) = error {
            p.error #login-error { (e) }
        }
        form #login method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token" { (c.t("login-token")) }
            input #token type="password" name="token" autocomplete="off" required;
            button #sign-in type="submit" { (c.t("sign-in")) }
        }
        p.hint { (c.t("login-hint")) }
    };
    let mut r = layout(ctx, &c.t("login-title"), body, &[]);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&ctx.cookie(LOGIN_CSRF_COOKIE, &csrf, Some(3600))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /ui/login`.
pub(super) async fn login_form(ctx: Ctx) -> Response {
    if ctx.session.is_some() {
        return see_other("/ui/");
    }
    login_page(&ctx, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/login`: a bearer token for a session cookie.
pub(super) async fn login(
    State(state): State<UiState>,
    ctx: Ctx,
    Form(form): Form<LoginForm>,
) -> Response {
    let c = ctx.c();
    let csrf_ok = ctx.login_csrf.as_deref().is_some_and(|k| {
        !form.csrf.is_empty() && bool::from(k.as_bytes().ct_eq(form.csrf.as_bytes()))
    });
    if !csrf_ok {
        return login_page(&ctx, Some(&c.t("login-expired")), StatusCode::FORBIDDEN);
    }
    let caller = match state.app.ledger.authenticate(form.token.trim()) {
        Ok(caller) => caller,
        Err(_) => {
            return login_page(
                &ctx,
                Some(&c.t("login-bad-token")),
                StatusCode::UNAUTHORIZED,
            )
        }
    };
    if !CONSOLE_ROLES.contains(&caller.role) {
        let role = role_name(&ctx, caller.role);
        return login_page(
            &ctx,
            Some(&c.ta("login-role-refused", &[("role", &role)])),
            StatusCode::FORBIDDEN,
        );
    }
    tracing::info!(name = %caller.name, role = %caller.role, "console sign-in");
    let id = state.sessions.create(caller);
    let mut r = see_other("/ui/");
    for cookie in [
        ctx.cookie(SESSION_COOKIE, &id, Some(SESSION_LIFETIME.as_secs())),
        ctx.cookie(LOGIN_CSRF_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`.
pub(super) async fn logout(
    State(state): State<UiState>,
    ctx: Ctx,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = (|| {
        let Some((id, session)) = &ctx.session else {
            return Err(UiError::SignIn);
        };
        ctx.check_csrf(session, &form.csrf)?;
        state.sessions.remove(id);
        let mut r = see_other("/ui/login");
        if let Ok(v) = HeaderValue::from_str(&ctx.cookie(SESSION_COOKIE, "", Some(0))) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(r)
    })();
    finish(&ctx, result)
}

/// Unknown console paths.
pub(super) async fn not_found(ctx: Ctx) -> Response {
    finish(
        &ctx,
        Err(UiError::page(
            StatusCode::NOT_FOUND,
            format!("no page {}", ctx.path),
        )),
    )
}

// ---------------------------------------------------------------------------
// Search

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchForm {
    officer: Option<String>,
    recorder: Option<String>,
    dock: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Minutes east of UTC of the browser's zone at `from` (console.js).
    from_tz: Option<String>,
    /// The same at `to`.
    to_tz: Option<String>,
    case: Option<String>,
    late: Option<String>,
    damaged: Option<String>,
}

/// A time field: RFC 3339 as given, or the `datetime-local` form
/// (`YYYY-MM-DDTHH:MM[:SS]`) in the zone `offset` gives — minutes east of
/// UTC, which console.js sets from the browser for the date entered — or
/// in UTC when there is none (no JavaScript) or it is not a real offset.
fn time_field(v: Option<String>, offset: Option<String>) -> Option<String> {
    let v = v?;
    if v.ends_with('Z') || v.contains('+') || v.len() > 19 {
        return Some(v);
    }
    let zone = offset
        .and_then(|o| o.trim().parse::<i32>().ok())
        .filter(|m| m.abs() <= 18 * 60)
        .map(|m| {
            let sign = if m < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
        })
        .unwrap_or_else(|| "Z".to_owned());
    Some(match v.len() {
        16 => format!("{v}:00{zone}"),
        _ => format!("{v}{zone}"),
    })
}

/// `GET /ui/search`: the catalogue search (`GET /v1/segments`) with the
/// console's extra filters (dock, late, damaged) on its results.
pub(super) async fn search(
    State(state): State<UiState>,
    ctx: Ctx,
    Query(form): Query<SearchForm>,
) -> Response {
    let result = search_page(&state, &ctx, form).await;
    finish(&ctx, result)
}

async fn search_page(state: &UiState, ctx: &Ctx, form: SearchForm) -> Result<Response, UiError> {
    ctx.require(state, "GET", "/v1/segments")?;
    let c = ctx.c();
    let dock = opt(&form.dock);
    let late = form.late.is_some();
    let damaged = form.damaged.is_some();
    let query = SegmentQuery {
        officer: opt(&form.officer),
        recorder: opt(&form.recorder),
        from: time_field(opt(&form.from), opt(&form.from_tz)),
        to: time_field(opt(&form.to), opt(&form.to_tz)),
        case: opt(&form.case),
        limit: Some(MAX_SEARCH_RESULTS),
    };
    let ledger = state.app.ledger.clone();
    let found = tokio::task::spawn_blocking(move || ledger.search(&query))
        .await
        .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (rows, error) = match found {
        Ok(rows) => (rows, None),
        Err(custos_ledger::catalogue::SearchError::BadTime { param, value }) => (
            Vec::new(),
            Some(c.ta("search-bad-time", &[("param", param), ("value", &value)])),
        ),
        Err(e) => return Err(crate::api::ApiError::from(e).into()),
    };
    let rows: Vec<SegmentRecord> = rows
        .into_iter()
        .filter(|r| dock.as_ref().is_none_or(|d| *d == r.manifest.dock.id))
        .filter(|r| !late || r.manifest.late)
        .filter(|r| !damaged || r.manifest.media.damaged.is_some())
        .collect();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let body = html! {
        form #search-form.search method="get" action="/ui/search" {
            label { (c.t("search-officer")) input name="officer" value=(v(&form.officer)); }
            label { (c.t("search-recorder")) input name="recorder" value=(v(&form.recorder)); }
            label { (c.t("search-dock")) input name="dock" value=(v(&form.dock)); }
            label { (c.t("search-from")) input name="from" type="datetime-local" step="1" value=(v(&form.from)); }
            label { (c.t("search-to")) input name="to" type="datetime-local" step="1" value=(v(&form.to)); }
            // Set by console.js on submit: the browser's offset for each date.
            input name="from_tz" type="hidden" value="";
            input name="to_tz" type="hidden" value="";
            label { (c.t("search-case")) input name="case" value=(v(&form.case)); }
            label.check { input name="late" type="checkbox" value="1" checked[late]; (c.t("search-late")) }
            label.check { input name="damaged" type="checkbox" value="1" checked[damaged]; (c.t("search-damaged")) }
            button #search-button type="submit" { (c.t("search-button")) }
        }
        p.hint { (c.t("search-utc-hint")) }
        @if let Some(e) = error {
            p.error #search-error { (e) }
        }
        p #result-count { (c.ta("search-count", &[("count", &rows.len().to_string())])) }
        @if !rows.is_empty() {
            table #results {
                thead { tr {
                    th { (c.t("col-segment")) } th { (c.t("col-name")) } th { (c.t("col-recorded")) }
                    th { (c.t("col-duration")) } th { (c.t("col-size")) } th { (c.t("col-status")) }
                    th { (c.t("col-officer")) } th { (c.t("col-recorder")) } th { (c.t("col-dock")) }
                    th { (c.t("col-flags")) }
                } }
                tbody {
                    @for r in &rows {
                        @let m = &r.manifest;
                        tr.result {
                            td { a.segment-link href=(format!("/ui/segments/{}", path_part(&r.segment_id))) { (r.segment_id) } }
                            td.name { (m.original_name.to_string_lossy()) }
                            td { (time(m.recorded.start)) }
                            td { (duration(m.media.duration_ms)) }
                            td { (human_bytes(m.size)) }
                            td { (status_text(ctx, r.status())) }
                            td { (m.officer_id) }
                            td { (m.recorder.id) }
                            td { (m.dock.id) }
                            td {
                                @if m.late { span.flag { (c.t("flag-late")) } " " }
                                @if m.media.damaged.is_some() { span.flag.bad { (c.t("flag-damaged")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(ctx, &c.t("search-title"), body, &[]))
}

// ---------------------------------------------------------------------------
// One segment

/// The dock signature of a segment's manifest, checked again now against
/// the registered dock keys: `Ok(signers)` or why not.
fn dock_signature(state: &UiState, record: &SegmentRecord) -> Result<Vec<String>, String> {
    let ledger = &state.app.ledger;
    let raw = ledger
        .entry(record.ingested_seq)
        .map_err(|e| format!("entry {}: {e}", record.ingested_seq))?;
    let entry = Entry::parse(&raw).map_err(|e| format!("entry {}: {e}", record.ingested_seq))?;
    let envelope = match entry.parsed_details() {
        Ok(Details::SegmentIngested(SegmentIngested { manifest, .. })) => manifest,
        Ok(_) => return Err("the ingest entry is not a segment.ingested".into()),
        Err(e) => return Err(e.to_string()),
    };
    let mut keys = Vec::new();
    for sig in &envelope.signatures {
        let record: Option<DockKeyRecord> = ledger
            .store()
            .table_get_json(DOCK_KEYS, sig.keyid.as_bytes())
            .map_err(|e| e.to_string())?;
        if let Some(k) = record.and_then(|r| r.key.parse::<VerifierKey>().ok()) {
            keys.push(k);
        }
    }
    envelope
        .verify_for(MANIFEST_PAYLOAD_TYPE, &keys)
        .map_err(|e| e.to_string())
}

/// A custody entry's details for the timeline: everything but the manifest
/// envelope, as compact JSON.
fn details_text(entry: &Entry) -> String {
    let mut d = entry.details.clone();
    if d.remove("manifest").is_some() {
        d.insert("manifest".into(), "(signed manifest)".into());
    }
    serde_json::to_string(&d).unwrap_or_default()
}

/// `GET /ui/segments/{id}`.
pub(super) async fn segment(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let result = segment_page(&state, &ctx, &id).await;
    finish(&ctx, result)
}

async fn segment_page(state: &UiState, ctx: &Ctx, id: &str) -> Result<Response, UiError> {
    let session = ctx.require(state, "GET", "/v1/segments/{id}")?;
    let c = ctx.c();
    let ledger = &state.app.ledger;
    let record = ledger
        .segment(id)?
        .ok_or_else(|| UiError::page(StatusCode::NOT_FOUND, format!("no segment {id:?}")))?;
    let m = &record.manifest;
    let signature = dock_signature(state, &record);
    let custody = if ctx.may("GET", "/v1/segments/{id}/custody") {
        let l = ledger.clone();
        let lookup = id.to_owned();
        tokio::task::spawn_blocking(move || l.custody(&lookup))
            .await
            .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
    } else {
        None
    };
    let caller = &session.caller;
    let may_view = ctx.may("GET", "/v1/segments/{id}/content");
    let needs = state.app.governance.needs_approval(caller.role);
    let approved = governance::approved_request(ledger, caller, &record)?;
    let me = caller.actor();
    let mine: Vec<_> = governance::access_requests(ledger)?
        .into_iter()
        .filter(|r| {
            r.requester == me
                && (r.segment.as_deref() == Some(id)
                    || r.case.as_ref().is_some_and(|k| record.cases.contains(k)))
        })
        .collect();
    let hold = governance::hold(ledger, id)?;
    let seg = path_part(id);
    let body = html! {
        section #manifest {
            h2 { (c.t("segment-manifest")) }
            table.kv {
                tr { th { (c.t("col-segment")) } td #segment-id { (record.segment_id) } }
                tr { th { (c.t("col-name")) } td #original-name { (m.original_name.to_string_lossy()) } }
                tr { th { (c.t("col-status")) } td #segment-status { (status_text(ctx, record.status())) } }
                tr { th { (c.t("col-sha256")) } td.mono #sha256 { (m.digests.sha256.to_string()) } }
                @if let Some(sm3) = &m.digests.sm3 {
                    tr { th { "SM3" } td.mono { (sm3.to_string()) } }
                }
                tr { th { (c.t("col-size")) } td { (human_bytes(m.size)) " (" (m.size) " B)" } }
                tr { th { (c.t("col-recorded")) } td { (time(m.recorded.start)) " – " (time(m.recorded.end)) } }
                tr { th { (c.t("col-duration")) } td { (duration(m.media.duration_ms)) } }
                tr { th { (c.t("col-officer")) } td { (m.officer_id) } }
                tr { th { (c.t("col-recorder")) } td { (m.recorder.id) " · " (m.recorder.model) " · " (m.recorder.profile) } }
                tr { th { (c.t("col-dock")) } td { (m.dock.id) " (" (c.ta("clock-offset", &[("ms", &m.dock.clock_offset_ms.to_string())])) ")" } }
                tr { th { (c.t("col-ingested")) } td { (time(m.ingested_at)) " · " (c.ta("entry-number", &[("seq", &record.ingested_seq.to_string())])) } }
                tr { th { (c.t("col-container")) } td { (m.media.container) } }
                tr { th { (c.t("col-streams")) } td {
                    @for s in &m.media.streams {
                        span.stream { (format!("#{} {:?} {}", s.index, s.kind, s.codec)) @if let (Some(w), Some(h)) = (s.width, s.height) { " " (w) "×" (h) } } " "
                    }
                } }
                tr { th { (c.t("col-flags")) } td {
                    @if m.late { span.flag { (c.t("flag-late")) } " " }
                    @if let Some(d) = &m.media.damaged { span.flag.bad { (c.t("flag-damaged")) ": " (d) } }
                } }
                tr { th { (c.t("col-object")) } td.mono { (m.object.url) " · " (m.object.key) } }
                tr { th { (c.t("col-cases")) } td {
                    @for k in &record.cases { a href=(format!("/ui/cases/{}", path_part(k))) { (k) } " " }
                } }
                tr { th { (c.t("col-dock-signature")) } td #dock-signature {
                    @match &signature {
                        Ok(signers) => span.ok data-state="valid" { (c.ta("signature-valid", &[("keys", &signers.join(", "))])) },
                        Err(why) => span.bad data-state="invalid" { (c.t("signature-invalid")) ": " (why) },
                    }
                } }
            }
        }
        @if may_view {
            section #access {
                h2 { (c.t("segment-footage")) }
                @if !needs || approved.is_some() {
                    @if let Some(r) = &approved {
                        p #approved-by { (c.ta("access-approved", &[("id", &r.id)])) }
                    }
                    video #player controls preload="metadata" src=(format!("/ui/segments/{seg}/media")) {}
                    p.hint { (c.t("player-logged")) }
                    @if ctx.may("POST", "/v1/exports") {
                        form #export-form method="post" action=(format!("/ui/segments/{seg}/export")) {
                            (csrf_field(session))
                            label { (c.t("export-reason")) input #export-reason name="reason"; }
                            button #export-button type="submit" { (c.t("export-button")) }
                        }
                    }
                } @else {
                    p #needs-approval { (c.t("access-needed")) }
                    @for r in &mine {
                        p.request { (c.ta("access-request-status", &[("id", &r.id), ("status", &c.t(&format!("request-{}", request_status(r.status))))])) }
                    }
                    @if ctx.may("POST", "/v1/access-requests") {
                        form #request-form method="post" action=(format!("/ui/segments/{seg}/request")) {
                            (csrf_field(session))
                            label { (c.t("access-reason")) textarea #reason name="reason" required {} }
                            button #request-button type="submit" { (c.t("access-request")) }
                        }
                    }
                }
            }
        }
        @if ctx.may("POST", "/v1/segments/{id}/hold") {
            section #hold {
                h2 { (c.t("holds-title")) }
                @if let Some(h) = &hold {
                    p #hold-status { (c.ta("hold-in-force", &[("by", &h.placed_by.id), ("reason", &h.reason)])) }
                    form method="post" action=(format!("/ui/segments/{seg}/release")) {
                        (csrf_field(session))
                        button #release-hold type="submit" { (c.t("hold-release")) }
                    }
                } @else {
                    form #hold-form method="post" action=(format!("/ui/segments/{seg}/hold")) {
                        (csrf_field(session))
                        label { (c.t("hold-reason")) input #hold-reason name="reason" required; }
                        button #place-hold type="submit" { (c.t("hold-place")) }
                    }
                }
            }
        }
        @if let Some(custody) = &custody {
            section #custody {
                h2 { (c.t("custody-title")) }
                p.hint { (c.ta("custody-proven", &[("size", &custody.size.to_string())])) " "
                    @if ctx.may("GET", "/v1/entries") {
                        a #audit-link href=(format!("/ui/audit?segment={seg}")) { (c.t("custody-check")) }
                    }
                }
                table #timeline {
                    thead { tr { th { "#" } th { (c.t("col-time")) } th { (c.t("col-actor")) } th { (c.t("col-action")) } th { (c.t("col-details")) } } }
                    tbody {
                        @for e in &custody.entries {
                            @if let Ok(entry) = Entry::parse(e.entry.get().as_bytes()) {
                                tr.entry data-action=(entry.action.as_str()) {
                                    td { (e.seq) }
                                    td { (time(entry.time)) }
                                    td { (entry.actor.kind.as_str()) ": " (entry.actor.id) }
                                    td.action { (action_text(ctx, entry.action.as_str())) }
                                    td.details { (details_text(&entry)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        ctx,
        &c.ta("segment-title", &[("id", &record.segment_id)]),
        body,
        &[],
    ))
}

fn action_text(ctx: &Ctx, action: &str) -> String {
    let key = format!("action-{}", action.replace(['.', '_'], "-"));
    let t = ctx.c().t(&key);
    if t == key {
        action.to_owned()
    } else {
        format!("{t} ({action})")
    }
}

fn request_status(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Pending => "pending",
        RequestStatus::Approved => "approved",
        RequestStatus::Denied => "denied",
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/segments/{id}/request`: `access.requested` for the segment.
pub(super) async fn request_access(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/access-requests", &form.csrf)?;
        let ask = AccessAsk {
            case: None,
            segment: Some(id.clone()),
            reason: form.reason.clone(),
        };
        governance::request_access(&state.app.ledger, &session.caller, &ask).await?;
        Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

/// `GET /ui/segments/{id}/media`: the footage, as `GET
/// /v1/segments/{id}/content` serves it (Range, approval, a
/// `segment.viewed` entry before any byte).
pub(super) async fn media(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let session = ctx.require(&state, "GET", "/v1/segments/{id}/content")?;
        Ok(content_response(&state.app, &session.caller, &id, &method, &headers).await?)
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/segments/{id}/export`: the bundle of one segment, as `POST
/// /v1/exports` builds it.
pub(super) async fn export_segment(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/exports", &form.csrf)?;
        let reason = opt(&Some(form.reason.clone()));
        Ok(export_response(&state.app, &session.caller, vec![id.clone()], None, reason).await?)
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/segments/{id}/hold`.
pub(super) async fn place_hold(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/segments/{id}/hold", &form.csrf)?;
        if state.app.ledger.segment(&id)?.is_none() {
            return Err(UiError::page(
                StatusCode::NOT_FOUND,
                format!("no segment {id:?}"),
            ));
        }
        governance::place_hold(&state.app.ledger, &session.caller, &id, &form.reason).await?;
        Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/segments/{id}/release`.
pub(super) async fn release_hold(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "DELETE", "/v1/segments/{id}/hold", &form.csrf)?;
        governance::release_hold(&state.app.ledger, &session.caller, &id).await?;
        Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

// ---------------------------------------------------------------------------
// Supervisor: approval queue, cases, holds

/// `GET /ui/queue`: access requests, pending first.
pub(super) async fn queue(State(state): State<UiState>, ctx: Ctx) -> Response {
    let result = async {
        let session = ctx.require(&state, "POST", "/v1/access-requests/{id}/approve")?;
        let c = ctx.c();
        let mut all = governance::access_requests(&state.app.ledger)?;
        all.sort_by_key(|r| (r.status != RequestStatus::Pending, std::cmp::Reverse(r.requested_seq)));
        let body = html! {
            @if all.iter().all(|r| r.status != RequestStatus::Pending) {
                p #queue-empty { (c.t("queue-empty")) }
            }
            table #queue {
                thead { tr { th { (c.t("col-request")) } th { (c.t("col-requester")) } th { (c.t("col-covers")) } th { (c.t("col-reason")) } th { (c.t("col-status")) } th { (c.t("col-decision")) } } }
                tbody {
                    @for r in &all {
                        tr.request data-id=(r.id) data-status=(request_status(r.status)) {
                            td { (r.id) }
                            td { (r.requester.kind.as_str()) ": " (r.requester.id) }
                            td {
                                @if let Some(s) = &r.segment { a href=(format!("/ui/segments/{}", path_part(s))) { (s) } }
                                @if let Some(k) = &r.case { a href=(format!("/ui/cases/{}", path_part(k))) { (c.t("col-case")) " " (k) } }
                            }
                            td.reason { (r.reason) }
                            td { (c.t(&format!("request-{}", request_status(r.status)))) }
                            td {
                                @if r.status == RequestStatus::Pending {
                                    form.decide method="post" action=(format!("/ui/requests/{}/decide", path_part(&r.id))) {
                                        (csrf_field(session))
                                        input.note name="note" placeholder=(c.t("decision-note"));
                                        label.valid-days { (c.t("decision-valid-days")) " " input.valid-days type="number" name="valid_days" min="1" max="366" value=(state.app.governance.approval_valid_days); }
                                        button.approve type="submit" name="decision" value="approve" { (c.t("decision-approve")) }
                                        button.deny type="submit" name="decision" value="deny" { (c.t("decision-deny")) }
                                    }
                                } @else if let Some(by) = &r.decided_by {
                                    (by.id)
                                    @if let Some(until) = &r.valid_until {
                                        br; span.valid-until { (c.t("decision-valid-until")) " " (until.to_string()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout(&ctx, &c.t("queue-title"), body, &[]))
    }
    .await;
    finish(&ctx, result)
}

#[derive(Debug, Deserialize)]
pub(super) struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    valid_days: String,
}

/// `POST /ui/requests/{id}/decide`: approve or deny.
pub(super) async fn decide(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let result = async {
        let approve = match form.decision.as_str() {
            "approve" => true,
            "deny" => false,
            other => {
                return Err(UiError::page(
                    StatusCode::BAD_REQUEST,
                    format!("decision {other:?} is neither approve nor deny"),
                ))
            }
        };
        let route = if approve {
            "/v1/access-requests/{id}/approve"
        } else {
            "/v1/access-requests/{id}/deny"
        };
        let session = ctx.require_form(&state, "POST", route, &form.csrf)?;
        let valid_days = match form.valid_days.trim() {
            "" => None,
            text => Some(text.parse::<u32>().map_err(|_| {
                UiError::page(
                    StatusCode::BAD_REQUEST,
                    format!("valid days {text:?} is not a whole number of days"),
                )
            })?),
        };
        let decision = governance::Decision {
            approve,
            note: opt(&Some(form.note.clone())),
            valid_days: if approve { valid_days } else { None },
        };
        governance::decide(
            &state.app.ledger,
            &state.app.governance,
            &session.caller,
            &id,
            &decision,
        )
        .await?;
        Ok(see_other("/ui/queue"))
    }
    .await;
    finish(&ctx, result)
}

/// `GET /ui/cases`.
pub(super) async fn cases(State(state): State<UiState>, ctx: Ctx) -> Response {
    let result = async {
        let session = ctx.require(&state, "GET", "/v1/segments")?;
        let c = ctx.c();
        let all = governance::cases(&state.app.ledger)?;
        let body = html! {
            @if ctx.may("POST", "/v1/cases") {
                form #case-form method="post" action="/ui/cases" {
                    (csrf_field(session))
                    label { (c.t("case-title")) input #case-title name="title" required; }
                    button #create-case type="submit" { (c.t("case-create")) }
                }
            }
            table #cases {
                thead { tr { th { (c.t("col-case")) } th { (c.t("case-title")) } th { (c.t("col-status")) } } }
                tbody {
                    @for k in &all {
                        tr.case {
                            td { a href=(format!("/ui/cases/{}", path_part(&k.id))) { (k.id) } }
                            td.title { (k.title) }
                            td { (case_status(&ctx, k.status)) }
                        }
                    }
                }
            }
        };
        Ok(layout(&ctx, &c.t("cases-title"), body, &[]))
    }
    .await;
    finish(&ctx, result)
}

fn case_status(ctx: &Ctx, s: CaseStatus) -> String {
    ctx.c().t(match s {
        CaseStatus::Open => "case-open",
        CaseStatus::Closed => "case-closed",
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct CaseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
}

/// `POST /ui/cases`: `case.created`.
pub(super) async fn create_case(
    State(state): State<UiState>,
    ctx: Ctx,
    Form(form): Form<CaseForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/cases", &form.csrf)?;
        let (case, _) =
            governance::create_case(&state.app.ledger, &session.caller, &form.title, None).await?;
        Ok(see_other(&format!("/ui/cases/{}", path_part(&case.id))))
    }
    .await;
    finish(&ctx, result)
}

/// `GET /ui/cases/{id}`.
pub(super) async fn case(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let session = ctx.require(&state, "GET", "/v1/segments")?;
        let c = ctx.c();
        let ledger = &state.app.ledger;
        let case = governance::case(ledger, &id)?
            .ok_or_else(|| UiError::page(StatusCode::NOT_FOUND, format!("no case {id:?}")))?;
        let l = ledger.clone();
        let q = SegmentQuery {
            case: Some(id.clone()),
            limit: Some(MAX_SEARCH_RESULTS),
            ..SegmentQuery::default()
        };
        let linked = tokio::task::spawn_blocking(move || l.search(&q))
            .await
            .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(crate::api::ApiError::from)?;
        let k = path_part(&id);
        let open = case.status == CaseStatus::Open;
        let body = html! {
            table.kv {
                tr { th { (c.t("col-case")) } td #case-id { (case.id) } }
                tr { th { (c.t("case-title")) } td #case-title-text { (case.title) } }
                tr { th { (c.t("col-status")) } td #case-status { (case_status(&ctx, case.status)) } }
            }
            h2 { (c.t("case-segments")) }
            ul #case-segments {
                @for r in &linked {
                    li { a href=(format!("/ui/segments/{}", path_part(&r.segment_id))) { (r.segment_id) } " · " (r.manifest.original_name.to_string_lossy()) }
                }
            }
            @if open && ctx.may("POST", "/v1/cases/{id}/segments") {
                form #link-form method="post" action=(format!("/ui/cases/{k}/link")) {
                    (csrf_field(session))
                    label { (c.t("case-link-ids")) textarea #link-ids name="segments" required {} }
                    button #link-button type="submit" { (c.t("case-link")) }
                }
            }
            @if open && ctx.may("POST", "/v1/cases/{id}/close") {
                form #close-form method="post" action=(format!("/ui/cases/{k}/close")) {
                    (csrf_field(session))
                    button #close-case type="submit" { (c.t("case-close")) }
                }
            }
            @if ctx.may("POST", "/v1/access-requests") {
                form #case-request-form method="post" action=(format!("/ui/cases/{k}/request")) {
                    (csrf_field(session))
                    label { (c.t("access-reason")) textarea name="reason" required {} }
                    button type="submit" { (c.t("access-request-case")) }
                }
            }
            @if ctx.may("POST", "/v1/exports") && !linked.is_empty() {
                form #case-export-form method="post" action=(format!("/ui/cases/{k}/export")) {
                    (csrf_field(session))
                    label { (c.t("export-reason")) input name="reason"; }
                    button type="submit" { (c.t("export-case")) }
                }
            }
        };
        Ok(layout(&ctx, &c.ta("case-page-title", &[("title", &case.title)]), body, &[]))
    }
    .await;
    finish(&ctx, result)
}

#[derive(Debug, Deserialize)]
pub(super) struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    segments: String,
}

/// `POST /ui/cases/{id}/link`: `case.segment_linked` for each id.
pub(super) async fn link(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<LinkForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/cases/{id}/segments", &form.csrf)?;
        let ids: Vec<String> = form
            .segments
            .split(|ch: char| ch.is_whitespace() || ch == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        governance::link_segments(&state.app.ledger, &session.caller, &id, &ids).await?;
        Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/cases/{id}/close`.
pub(super) async fn close_case(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/cases/{id}/close", &form.csrf)?;
        governance::close_case(&state.app.ledger, &session.caller, &id).await?;
        Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/cases/{id}/request`: `access.requested` for a case.
pub(super) async fn request_case_access(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/access-requests", &form.csrf)?;
        let ask = AccessAsk {
            case: Some(id.clone()),
            segment: None,
            reason: form.reason.clone(),
        };
        governance::request_access(&state.app.ledger, &session.caller, &ask).await?;
        Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
    }
    .await;
    finish(&ctx, result)
}

/// `POST /ui/cases/{id}/export`: the case's bundle.
pub(super) async fn export_case(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let session = ctx.require_form(&state, "POST", "/v1/exports", &form.csrf)?;
        let reason = opt(&Some(form.reason.clone()));
        Ok(export_response(
            &state.app,
            &session.caller,
            Vec::new(),
            Some(id.clone()),
            reason,
        )
        .await?)
    }
    .await;
    finish(&ctx, result)
}

/// `GET /ui/holds`: the legal holds in force.
pub(super) async fn holds(State(state): State<UiState>, ctx: Ctx) -> Response {
    let result = async {
        let session = ctx.require(&state, "POST", "/v1/segments/{id}/hold")?;
        let c = ctx.c();
        let all = governance::holds(&state.app.ledger)?;
        let body = html! {
            p.hint { (c.t("holds-hint")) }
            @if all.is_empty() { p #holds-empty { (c.t("holds-empty")) } }
            table #holds {
                thead { tr { th { (c.t("col-segment")) } th { (c.t("col-reason")) } th { (c.t("col-actor")) } th {} } }
                tbody {
                    @for h in &all {
                        tr {
                            td { a href=(format!("/ui/segments/{}", path_part(&h.segment_id))) { (h.segment_id) } }
                            td { (h.reason) }
                            td { (h.placed_by.id) }
                            td {
                                form method="post" action=(format!("/ui/segments/{}/release", path_part(&h.segment_id))) {
                                    (csrf_field(session))
                                    button type="submit" { (c.t("hold-release")) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout(&ctx, &c.t("holds-title"), body, &[]))
    }
    .await;
    finish(&ctx, result)
}

// ---------------------------------------------------------------------------
// Auditor

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditForm {
    segment: Option<String>,
}

/// `GET /ui/audit`: the log's size and checkpoint; a segment's custody
/// proofs checked by the browser (audit.js); a consistency check.
pub(super) async fn audit(
    State(state): State<UiState>,
    ctx: Ctx,
    Query(form): Query<AuditForm>,
) -> Response {
    let result = async {
        ctx.require(&state, "GET", "/v1/entries")?;
        let c = ctx.c();
        let ledger = &state.app.ledger;
        let published = ledger.published();
        let vkey = ledger.verifier_key().to_string();
        let segment = opt(&form.segment);
        let msg_keys = [
            "verify-checking",
            "verify-verified",
            "verify-not-verified",
            "verify-entry-ok",
            "verify-entry-bad",
            "verify-sig-ok",
            "verify-sig-bad",
            "verify-sig-unsupported",
            "verify-root-bad",
            "verify-fetch-failed",
            "consistency-ok",
            "consistency-bad",
            "consistency-same",
            "consistency-paste",
        ];
        let body = html! {
            section #log {
                h2 { (c.t("audit-log")) }
                table.kv {
                    tr { th { (c.t("audit-size")) } td #log-size { (published.size) } }
                    tr { th { (c.t("audit-full-check")) } td #full-check { (ledger.full_check()) } }
                    tr { th { (c.t("audit-key")) } td.mono #ledger-key { (vkey) } }
                }
                h3 { (c.t("audit-checkpoint")) }
                pre #checkpoint { (published.checkpoint.as_ref()) }
            }
            // Messages for audit.js, from the catalogue.
            div #msgs hidden {
                @for k in msg_keys { span data-key=(k) { (c.t(k)) } }
            }
            section #proofs {
                h2 { (c.t("audit-proofs")) }
                form method="get" action="/ui/audit" {
                    label { (c.t("col-segment")) input #audit-segment name="segment" value=(segment.clone().unwrap_or_default()); }
                    button #audit-check type="submit" { (c.t("audit-check")) }
                }
                @if let Some(s) = &segment {
                    div #proof data-custody=(format!("/ui/audit/custody/{}", path_part(s))) data-vkey=(vkey) {
                        p #verdict data-state="checking" { (c.t("verify-checking")) }
                        p #signature-result {}
                        ol #proof-results {}
                    }
                }
            }
            section #consistency {
                h2 { (c.t("audit-consistency")) }
                p.hint { (c.t("consistency-paste")) }
                textarea #old-checkpoint rows="6" {}
                button #check-consistency type="button" data-vkey=(vkey) { (c.t("consistency-check")) }
                p #consistency-result data-state="" {}
            }
        };
        Ok(layout(&ctx, &c.t("audit-title"), body, &["audit.js"]))
    }
    .await;
    finish(&ctx, result)
}

/// `GET /ui/audit/custody/{id}`: the custody record with proofs, as `GET
/// /v1/segments/{id}/custody` answers, for audit.js.
pub(super) async fn audit_custody(
    State(state): State<UiState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        ctx.require(&state, "GET", "/v1/segments/{id}/custody")?;
        let l = state.app.ledger.clone();
        let lookup = id.clone();
        let custody = tokio::task::spawn_blocking(move || l.custody(&lookup))
            .await
            .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
            .ok_or_else(|| UiError::page(StatusCode::NOT_FOUND, format!("no segment {id:?}")))?;
        Ok(Json(custody).into_response())
    }
    .await;
    finish(&ctx, result)
}

#[cfg(test)]
mod tests {
    use super::time_field;

    fn t(v: &str, tz: Option<&str>) -> Option<String> {
        time_field(Some(v.to_owned()), tz.map(str::to_owned))
    }

    #[test]
    fn form_times_take_the_browsers_zone_else_utc() {
        assert_eq!(
            t("2026-03-01T08:00", Some("480")).as_deref(),
            Some("2026-03-01T08:00:00+08:00")
        );
        assert_eq!(
            t("2026-03-01T08:00:30", Some("-330")).as_deref(),
            Some("2026-03-01T08:00:30-05:30")
        );
        assert_eq!(
            t("2026-03-01T08:00", None).as_deref(),
            Some("2026-03-01T08:00:00Z")
        );
        // Not an offset: UTC, as without JavaScript.
        for bad in ["", "east", "99999", "1.5"] {
            assert_eq!(
                t("2026-03-01T08:00", Some(bad)).as_deref(),
                Some("2026-03-01T08:00:00Z"),
                "{bad:?}"
            );
        }
        // A time that names its zone keeps it.
        assert_eq!(
            t("2026-03-01T08:00:00Z", Some("480")).as_deref(),
            Some("2026-03-01T08:00:00Z")
        );
        assert_eq!(time_field(None, Some("480".into())), None);
    }
}
