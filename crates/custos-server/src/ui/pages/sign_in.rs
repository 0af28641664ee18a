//! Home, sign-in and sign-out: a bearer token exchanged for a session
//! cookie, only for the console's roles ([`CONSOLE_ROLES`]). The sign-in
//! form carries its own CSRF token (a cookie, before there is a session).

use axum::extract::Form;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{layout, role_name, see_other, CsrfForm, Need, Page};
use crate::ui::{random_text, Ctx, CONSOLE_ROLES};
use crate::ui::{LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_LIFETIME};
use custos_ledger::auth::Role;

/// `GET /ui/`: the caller's start page.
pub(in crate::ui) async fn home(ctx: Ctx) -> Response {
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
pub(in crate::ui) async fn login_form(ctx: Ctx) -> Response {
    if ctx.session.is_some() {
        return see_other("/ui/");
    }
    login_page(&ctx, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(in crate::ui) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/login`: a bearer token for a session cookie.
pub(in crate::ui) async fn login(
    Page { state, ctx }: Page,
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

/// `POST /ui/logout`.
pub(in crate::ui) async fn logout(page: Page, Form(form): Form<CsrfForm>) -> Response {
    page.run(
        Need::SignedIn(form.csrf),
        |Page { state, ctx }, _| async move {
            if let Some((id, _)) = &ctx.session {
                state.sessions.remove(id);
            }
            let mut r = see_other("/ui/login");
            if let Ok(v) = HeaderValue::from_str(&ctx.cookie(SESSION_COOKIE, "", Some(0))) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(r)
        },
    )
    .await
}
