//! The auditor's page: the log's size and checkpoint, a segment's custody
//! proofs checked in the browser (audit.js), a consistency check; and the
//! custody record audit.js fetches.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::Deserialize;

use super::{layout, opt, path_part, Need, Page};
use crate::ui::UiError;

// ---------------------------------------------------------------------------
// Auditor

#[derive(Debug, Default, Deserialize)]
pub(in crate::ui) struct AuditForm {
    segment: Option<String>,
}

/// `GET /ui/audit`: the log's size and checkpoint; a segment's custody
/// proofs checked by the browser (audit.js); a consistency check.
pub(in crate::ui) async fn audit(page: Page, Query(form): Query<AuditForm>) -> Response {
    page.run(
        Need::Route("GET", "/v1/entries"),
        move |Page { state, ctx }, _| async move {
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
                "verify-suites-browser",
                "verify-sm2-not-in-browser",
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
                        @for other in ledger.verifier_keys().iter().skip(1) {
                            tr { th { (c.t("audit-key")) " (" (other.algorithm().as_str().to_uppercase()) ")" } td.mono.ledger-key-more { (other.to_string()) } }
                        }
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
                            p #suites-result {}
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
        },
    )
    .await
}

/// `GET /ui/audit/custody/{id}`: the custody record with proofs, as `GET
/// /v1/segments/{id}/custody` answers, for audit.js.
pub(in crate::ui) async fn audit_custody(page: Page, Path(id): Path<String>) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments/{id}/custody"),
        move |Page { state, .. }, _| async move {
            let l = state.app.ledger.clone();
            let lookup = id.clone();
            let custody = tokio::task::spawn_blocking(move || l.custody(&lookup))
                .await
                .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
                .ok_or_else(|| {
                    UiError::page(StatusCode::NOT_FOUND, format!("no segment {id:?}"))
                })?;
            Ok(Json(custody).into_response())
        },
    )
    .await
}
