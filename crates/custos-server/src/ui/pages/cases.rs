//! Cases: the list, a new case, one case with its linked segments, and
//! its link, close and export forms.

use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{csrf_field, layout, opt, path_part, see_other, CsrfForm, Need, Page, ReasonForm};
use crate::api::export_response;
use crate::ui::{Ctx, UiError};
use custos_ledger::catalogue::{SegmentQuery, MAX_SEARCH_RESULTS};
use custos_ledger::governance::{self, CaseStatus};

/// `GET /ui/cases`.
pub(in crate::ui) async fn cases(page: Page) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments"),
        move |Page { state, ctx }, session| async move {
            let c = ctx.c();
            let all = governance::cases(&state.app.ledger)?;
            let body = html! {
                @if ctx.may("POST", "/v1/cases") {
                    form #case-form method="post" action="/ui/cases" {
                        (csrf_field(&session))
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
        },
    )
    .await
}

fn case_status(ctx: &Ctx, s: CaseStatus) -> String {
    ctx.c().t(match s {
        CaseStatus::Open => "case-open",
        CaseStatus::Closed => "case-closed",
    })
}

#[derive(Debug, Deserialize)]
pub(in crate::ui) struct CaseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
}

/// `POST /ui/cases`: `case.created`.
pub(in crate::ui) async fn create_case(page: Page, Form(form): Form<CaseForm>) -> Response {
    page.run(
        Need::form("POST", "/v1/cases", &form.csrf),
        move |Page { state, .. }, session| async move {
            let (case, _) =
                governance::create_case(&state.app.ledger, &session.caller, &form.title, None)
                    .await?;
            Ok(see_other(&format!("/ui/cases/{}", path_part(&case.id))))
        },
    )
    .await
}

/// `GET /ui/cases/{id}`.
pub(in crate::ui) async fn case(page: Page, Path(id): Path<String>) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments"),
        move |Page { state, ctx }, session| async move {
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
                        (csrf_field(&session))
                        label { (c.t("case-link-ids")) textarea #link-ids name="segments" required {} }
                        button #link-button type="submit" { (c.t("case-link")) }
                    }
                }
                @if open && ctx.may("POST", "/v1/cases/{id}/close") {
                    form #close-form method="post" action=(format!("/ui/cases/{k}/close")) {
                        (csrf_field(&session))
                        button #close-case type="submit" { (c.t("case-close")) }
                    }
                }
                @if ctx.may("POST", "/v1/access-requests") {
                    form #case-request-form method="post" action=(format!("/ui/cases/{k}/request")) {
                        (csrf_field(&session))
                        label { (c.t("access-reason")) textarea name="reason" required {} }
                        button type="submit" { (c.t("access-request-case")) }
                    }
                }
                @if ctx.may("POST", "/v1/exports") && !linked.is_empty() {
                    form #case-export-form method="post" action=(format!("/ui/cases/{k}/export")) {
                        (csrf_field(&session))
                        label { (c.t("export-reason")) input name="reason"; }
                        button type="submit" { (c.t("export-case")) }
                    }
                    p #case-report {
                        (c.t("report-title")) ": "
                        a #case-report-pdf href=(format!("/ui/cases/{k}/report.pdf")) { (c.t("report-pdf")) }
                        " · "
                        a #case-report-html href=(format!("/ui/cases/{k}/report")) { (c.t("report-view")) }
                    }
                }
            };
            Ok(layout(&ctx, &c.ta("case-page-title", &[("title", &case.title)]), body, &[]))
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(in crate::ui) struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    segments: String,
}

/// `POST /ui/cases/{id}/link`: `case.segment_linked` for each id.
pub(in crate::ui) async fn link(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<LinkForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/cases/{id}/segments", &form.csrf),
        move |Page { state, .. }, session| async move {
            let ids: Vec<String> = form
                .segments
                .split(|ch: char| ch.is_whitespace() || ch == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            governance::link_segments(&state.app.ledger, &session.caller, &id, &ids).await?;
            Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
        },
    )
    .await
}

/// `POST /ui/cases/{id}/close`.
pub(in crate::ui) async fn close_case(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/cases/{id}/close", &form.csrf),
        move |Page { state, .. }, session| async move {
            governance::close_case(&state.app.ledger, &session.caller, &id).await?;
            Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
        },
    )
    .await
}

/// `POST /ui/cases/{id}/export`: the case's bundle.
pub(in crate::ui) async fn export_case(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/exports", &form.csrf),
        move |Page { state, .. }, session| async move {
            let reason = opt(&Some(form.reason.clone()));
            Ok(export_response(
                &state.app,
                &session.caller,
                Vec::new(),
                Some(id.clone()),
                reason,
            )
            .await?)
        },
    )
    .await
}
