//! Coverage of recorders' footage, the supervisor's page: the ledger's
//! open findings (`coverage.gap`) with a form to record each one's
//! explanation (`coverage.explained`, the 中断说明), then the explained
//! ones; all of them, or (from the Supervision page's links) those of one
//! recorder and/or officer about a period.

use axum::extract::{Form, Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::{csrf_field, layout, opt, path_part, see_other, Need, Page, ReasonForm};
use crate::ui::{Ctx, Session, UiError};
use custos_ledger::governance;
use custos_ledger::wire::{CoverageFinding, CoverageQuery};

/// Which findings the page shows (`GET /v1/coverage`'s filters); none:
/// all of them.
#[derive(Debug, Default, Deserialize)]
pub(in crate::ui) struct CoverageFilter {
    recorder: Option<String>,
    officer: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl CoverageFilter {
    fn query(&self) -> CoverageQuery {
        CoverageQuery {
            recorder: opt(&self.recorder),
            officer: opt(&self.officer),
            from: opt(&self.from),
            to: opt(&self.to),
            ..CoverageQuery::default()
        }
    }
}

/// The Coverage page's address showing the findings of `recorder` and/or
/// `officer` about `[from, to)` (the Supervision page's links).
pub(in crate::ui) fn filtered_href(
    recorder: Option<&str>,
    officer: Option<&str>,
    from: &str,
    to: &str,
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(r) = recorder {
        q.append_pair("recorder", r);
    }
    if let Some(o) = officer {
        q.append_pair("officer", o);
    }
    q.append_pair("from", from).append_pair("to", to);
    format!("/ui/coverage?{}", q.finish())
}

/// `GET /ui/coverage`: open findings first, each with its explanation
/// form; then the explained ones.
pub(in crate::ui) async fn coverage(page: Page, Query(filter): Query<CoverageFilter>) -> Response {
    page.run(
        Need::Route("POST", "/v1/coverage/{seq}/explanation"),
        move |Page { state, ctx }, session| async move {
            let c = ctx.c();
            let query = filter.query();
            let all = governance::coverage_findings(&state.app.ledger, &query)?;
            let (open, explained): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|f| f.explanation.is_none());
            let filtered = query != CoverageQuery::default();
            let body = html! {
                p.hint { (c.t("coverage-hint")) }
                @if filtered {
                    p #coverage-filter {
                        (c.t("coverage-filtered")) " "
                        @for (label, value) in [
                            (c.t("col-recorder"), &query.recorder),
                            (c.t("col-officer"), &query.officer),
                        ] {
                            @if let Some(v) = value { span.filter { (label) " " strong { (v) } } " " }
                        }
                        @for (label, value) in [
                            (c.t("supervision-from"), &query.from),
                            (c.t("supervision-to"), &query.to),
                        ] {
                            @if let Some(v) = value {
                                span.filter { (label) " " strong { time.ts datetime=(v) title=(v) { (v) } } } " "
                            }
                        }
                        "· " a #coverage-all href="/ui/coverage" { (c.t("coverage-show-all")) }
                    }
                }
                h2 { (c.t("coverage-open-title")) }
                @if open.is_empty() { p #coverage-empty { (c.t("coverage-none-open")) } }
                @else { (table(&ctx, "coverage-open", &open, Some(&session))) }
                @if !explained.is_empty() {
                    h2 { (c.t("coverage-explained-title")) }
                    (table(&ctx, "coverage-explained", &explained, None))
                }
            };
            Ok(layout(&ctx, &c.t("coverage-title"), body, &[]))
        },
    )
    .await
}

/// The findings as a table; with a session, each row has the explanation
/// form.
fn table(ctx: &Ctx, id: &str, findings: &[CoverageFinding], form: Option<&Session>) -> Markup {
    let c = ctx.c();
    html! {
        table id=(id) {
            thead { tr {
                th { (c.t("col-recorder")) } th { (c.t("col-officer")) } th { (c.t("col-finding")) }
                th { (c.t("coverage-gap-time")) } th { (c.t("col-segments")) } th { (c.t("coverage-explanation")) }
            } }
            tbody {
                @for f in findings {
                    tr.finding data-seq=(f.gap_seq) data-kind=(f.gap.kind) {
                        td { (f.gap.recorder_id) }
                        td { (f.gap.officer_id) }
                        td {
                            strong { (c.t(&format!("coverage-kind-{}", f.gap.kind))) }
                            @if let (Some(a), Some(b)) = (f.gap.first, f.gap.last) {
                                " " @if a == b { (format!("{a:04}")) } @else { (format!("{a:04}–{b:04}")) }
                            }
                            br;
                            small { (c.t("coverage-found")) " " time.ts datetime=(f.found_at) title=(f.found_at) { (f.found_at) } " · #" (f.gap_seq) }
                        }
                        td {
                            @if let (Some(from), Some(to)) = (&f.gap.from, &f.gap.to) {
                                time.ts datetime=(from) title=(from) { (from) } " – " time.ts datetime=(to) title=(to) { (to) }
                            }
                        }
                        td {
                            @for s in &f.gap.segments {
                                a href=(format!("/ui/segments/{}", path_part(s))) { (s) } br;
                            }
                        }
                        td {
                            @if let Some(e) = &f.explanation {
                                (e.reason) br;
                                small { (c.ta("coverage-explained-by", &[("by", &e.by.id), ("seq", &e.seq.to_string())])) }
                            } @else if let Some(session) = form {
                                form.explain method="post" action=(format!("/ui/coverage/{}/explain", f.gap_seq)) {
                                    (csrf_field(session))
                                    textarea name="reason" required maxlength="2000" aria-label=(c.t("coverage-explanation")) {}
                                    button type="submit" { (c.t("coverage-explain")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/coverage/{seq}/explain`.
pub(in crate::ui) async fn explain(
    page: Page,
    Path(seq): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/coverage/{seq}/explanation", &form.csrf),
        move |Page { state, .. }, session| async move {
            let seq: u64 = seq.parse().map_err(|_| {
                UiError::page(
                    StatusCode::BAD_REQUEST,
                    format!("{seq:?} is not a finding's entry seq"),
                )
            })?;
            governance::explain_gap(&state.app.ledger, &session.caller, seq, &form.reason).await?;
            Ok(see_other("/ui/coverage"))
        },
    )
    .await
}

/// How many findings are open (for the approval queue's notice).
pub(in crate::ui) fn open_count(
    ledger: &custos_ledger::Ledger,
) -> Result<usize, governance::GovernanceError> {
    Ok(governance::coverage_findings(
        ledger,
        &CoverageQuery {
            open: Some(true),
            ..CoverageQuery::default()
        },
    )?
    .len())
}
