//! Legal holds: the list of holds in force, placing and releasing one.

use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::{csrf_field, layout, path_part, see_other, CsrfForm, Need, Page, ReasonForm};
use crate::ui::UiError;
use custos_ledger::governance;

/// `GET /ui/holds`: the legal holds in force.
pub(in crate::ui) async fn holds(page: Page) -> Response {
    page.run(
        Need::Route("POST", "/v1/segments/{id}/hold"),
        move |Page { state, ctx }, session| async move {
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
                                        (csrf_field(&session))
                                        button type="submit" { (c.t("hold-release")) }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            Ok(layout(&ctx, &c.t("holds-title"), body, &[]))
        },
    )
    .await
}

/// `POST /ui/segments/{id}/hold`.
pub(in crate::ui) async fn place_hold(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/segments/{id}/hold", &form.csrf),
        move |Page { state, .. }, session| async move {
            if state.app.ledger.segment(&id)?.is_none() {
                return Err(UiError::page(
                    StatusCode::NOT_FOUND,
                    format!("no segment {id:?}"),
                ));
            }
            governance::place_hold(&state.app.ledger, &session.caller, &id, &form.reason).await?;
            Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
        },
    )
    .await
}

/// `POST /ui/segments/{id}/release`.
pub(in crate::ui) async fn release_hold(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    page.run(
        Need::form("DELETE", "/v1/segments/{id}/hold", &form.csrf),
        move |Page { state, .. }, session| async move {
            governance::release_hold(&state.app.ledger, &session.caller, &id).await?;
            Ok(see_other(&format!("/ui/segments/{}", path_part(&id))))
        },
    )
    .await
}
