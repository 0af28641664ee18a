//! Access requests: asking for a segment's or a case's footage, and the
//! supervisors' approval queue with its decisions.

use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{
    csrf_field, layout, opt, path_part, request_status, see_other, Need, Page, ReasonForm,
};
use crate::ui::UiError;
use custos_ledger::governance::{self, AccessAsk, RequestStatus};

/// `POST /ui/segments/{id}/request`: `access.requested` for the segment.
pub(in crate::ui) async fn request_access(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/access-requests", &form.csrf),
        move |Page { state, .. }, session| async move {
            let ask = AccessAsk {
                case: None,
                segment: Some(id.clone()),
                reason: form.reason.clone(),
            };
            governance::request_access(&state.app.ledger, &session.caller, &ask).await?;
            Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
        },
    )
    .await
}

/// `POST /ui/cases/{id}/request`: `access.requested` for a case.
pub(in crate::ui) async fn request_case_access(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/access-requests", &form.csrf),
        move |Page { state, .. }, session| async move {
            let ask = AccessAsk {
                case: Some(id.clone()),
                segment: None,
                reason: form.reason.clone(),
            };
            governance::request_access(&state.app.ledger, &session.caller, &ask).await?;
            Ok(see_other(&format!("/ui/cases/{}", path_part(&id))))
        },
    )
    .await
}

/// `GET /ui/queue`: access requests, pending first.
pub(in crate::ui) async fn queue(page: Page) -> Response {
    page.run(
        Need::Route("POST", "/v1/access-requests/{id}/approve"),
        move |Page { state, ctx }, session| async move {
            let c = ctx.c();
            let mut all = governance::access_requests(&state.app.ledger)?;
            all.sort_by_key(|r| (r.status != RequestStatus::Pending, std::cmp::Reverse(r.requested_seq)));
            let open_findings = super::coverage::open_count(&state.app.ledger)?;
            let body = html! {
                @if open_findings > 0 {
                    p.notice #coverage-open-notice {
                        a href="/ui/coverage" { (c.ta("coverage-open-count", &[("count", &open_findings.to_string())])) }
                    }
                }
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
                                            (csrf_field(&session))
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
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(in crate::ui) struct DecideForm {
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
pub(in crate::ui) async fn decide(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return page.fail(UiError::page(
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
    page.run(
        Need::form("POST", route, &form.csrf),
        move |Page { state, .. }, session| async move {
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
        },
    )
    .await
}
