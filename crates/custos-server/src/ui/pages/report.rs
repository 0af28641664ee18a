//! A case's or one segment's chain-of-custody report in the console: the
//! PDF `custos report` writes (a download) and a print-friendly HTML view
//! of the same contents ([`custos_report::model::contents`]), bilingual
//! like the PDF.
//!
//! The report yields no footage but lists names, hashes and custody, so it
//! is gated as an export is (`POST /v1/exports`'s roles, then the footage
//! gate: where the access policy asks for one, an approval in force for
//! every segment, a refusal recorded as `access.refused`). Making it
//! records nothing else, as `custos report` does.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, DOCTYPE};

use super::{path_part, Need, Page};
use crate::ui::{Session, UiError, UiState};
use custos_ledger::governance::FootageGate;
use custos_ledger::report::{self, ReportError};
use custos_ledger::{export, Ledger};
use custos_report::model::contents;
use custos_report::text;
use custos_report::ReportInput;

/// What `attempted` says in the `access.refused` entry of a refused report.
const ATTEMPTED: &str = "custody.report";

fn report_error(e: ReportError) -> UiError {
    let status = match e {
        ReportError::UnknownSegment(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    UiError::page(status, e.to_string())
}

/// What a report is about: a case (`custos report --case`) or one segment
/// (`--segment`).
#[derive(Debug, Clone)]
enum Scope {
    Case(String),
    Segment(String),
}

impl Scope {
    /// The console page the report belongs to.
    fn page(&self) -> String {
        match self {
            Scope::Case(id) => format!("/ui/cases/{}", path_part(id)),
            Scope::Segment(id) => format!("/ui/segments/{}", path_part(id)),
        }
    }

    fn id(&self) -> &str {
        match self {
            Scope::Case(id) | Scope::Segment(id) => id,
        }
    }
}

/// The report's facts for `scope`, once the caller passed the export's
/// gate.
async fn gated_input(
    state: &UiState,
    session: &Session,
    scope: &Scope,
) -> Result<(Ledger, ReportInput), UiError> {
    let ledger = state.app.ledger.clone();
    let (ids, case) = match scope {
        Scope::Case(case) => (
            export::case_segments(&ledger, case)
                .map_err(|e| UiError::page(StatusCode::NOT_FOUND, e.to_string()))?,
            Some(case.clone()),
        ),
        Scope::Segment(id) => (vec![id.clone()], None),
    };
    let mut records = Vec::with_capacity(ids.len());
    for id in &ids {
        records.push(
            ledger.segment(id)?.ok_or_else(|| {
                UiError::page(StatusCode::NOT_FOUND, format!("no segment {id:?}"))
            })?,
        );
    }
    let gate = FootageGate::for_caller(&state.app.governance, &session.caller);
    gate.precheck(&ledger, &records, ATTEMPTED).await?;
    let (l, actor) = (ledger.clone(), gate.actor.clone());
    let input =
        tokio::task::spawn_blocking(move || report::standalone_input(&l, &ids, case, &actor))
            .await
            .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(report_error)?;
    Ok((ledger, input))
}

/// `GET /ui/cases/{id}/report.pdf`: the case's report as a PDF download.
pub(in crate::ui) async fn report_pdf(page: Page, Path(id): Path<String>) -> Response {
    pdf(page, Scope::Case(id)).await
}

/// `GET /ui/segments/{id}/report.pdf`: one segment's report as a PDF.
pub(in crate::ui) async fn segment_report_pdf(page: Page, Path(id): Path<String>) -> Response {
    pdf(page, Scope::Segment(id)).await
}

/// `GET /ui/cases/{id}/report`: the case's report as a print-friendly page.
pub(in crate::ui) async fn report_html(page: Page, Path(id): Path<String>) -> Response {
    print_view(page, Scope::Case(id)).await
}

/// `GET /ui/segments/{id}/report`: one segment's report as a
/// print-friendly page.
pub(in crate::ui) async fn segment_report_html(page: Page, Path(id): Path<String>) -> Response {
    print_view(page, Scope::Segment(id)).await
}

/// The report of `scope` as a PDF download.
async fn pdf(page: Page, scope: Scope) -> Response {
    page.run(
        Need::Route("POST", "/v1/exports"),
        move |Page { state, .. }, session| async move {
            let (ledger, input) = gated_input(&state, &session, &scope).await?;
            let font_path = ledger.report_font().to_owned();
            let pdf = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ReportError> {
                let font = report::load_font(&font_path)?;
                Ok(custos_report::build(&input, &font)?)
            })
            .await
            .map_err(|e| UiError::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(report_error)?;
            let mut r = pdf.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            );
            let name = format!("custody-report-{}.pdf", path_part(scope.id()));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(r)
        },
    )
    .await
}

/// The report of `scope` as a print-friendly page (report.css: A4, no
/// navigation, tables that break between rows).
async fn print_view(page: Page, scope: Scope) -> Response {
    page.run(
        Need::Route("POST", "/v1/exports"),
        move |Page { state, ctx }, session| async move {
            let c = ctx.c();
            let (_, input) = gated_input(&state, &session, &scope).await?;
            let m = contents(&input);
            let back = scope.page();
            let id = scope.id();
            let markup = html! {
                (DOCTYPE)
                html lang="zh-CN" {
                    head {
                        meta charset="utf-8";
                        title { (text::TITLE) " — " (id) }
                        link rel="stylesheet" href="/ui/static/report.css";
                        script src="/ui/static/console.js" defer {}
                    }
                    body.report {
                        nav.screen-only lang=(ctx.lang.tag()) {
                            a #report-back href=(back) {
                                (c.t(match scope { Scope::Case(_) => "report-back", Scope::Segment(_) => "report-back-segment" }))
                            }
                            " · "
                            a #report-pdf href=(format!("{back}/report.pdf")) { (c.t("report-pdf")) }
                            " · "
                            button #print-report type="button" { (c.t("report-print")) }
                        }
                        // A frame whose foot the browser repeats on every
                        // printed page: the checkpoint, as on the PDF's pages.
                        table.frame { tfoot { tr { td { p.mono.small.page-foot { (m.footer) } } } } tbody { tr { td {
                        header {
                            h1 { (text::TITLE) }
                            p.en { (text::TITLE_EN) }
                        }
                        table.kv #report-cover {
                            @for (label, value) in &m.cover { tr { th { (label) } td { (value) } } }
                        }
                        h2 { (text::APPROVALS) }
                        @if m.approvals.is_empty() { p { (text::NO_APPROVALS) } } @else {
                            table #report-approvals {
                                thead { tr { @for col in text::APPROVAL_COLUMNS { th { (col) } } } }
                                tbody { @for a in &m.approvals { tr {
                                    td.mono { (a.request_id) } td { (a.requester) } td { (a.reason) }
                                    td { (a.covers) }
                                    td { (a.decided_by.clone().unwrap_or_else(|| a.status.clone())) }
                                    td { (a.valid_until.map(|t| t.to_string()).unwrap_or_default()) }
                                } } }
                            }
                        }
                        p.note { (text::STANDALONE_ZH) }
                        p.note { (text::STANDALONE_EN) }
                        h2 { (text::LIST) }
                        table #report-files {
                            thead { tr { @for col in text::LIST_COLUMNS { th { (col) } } } }
                            tbody { @for f in &m.files { tr.file data-segment=(f.segment_id) {
                                td { (f.number) }
                                td { (f.bundle_path) br; (f.original_name) }
                                td { (f.recorder) br; (f.officer) }
                                td { (f.recorded) }
                                td { (f.duration) br; (f.size) }
                                td { (f.format) }
                                td.mono.hash { (f.digests) }
                                td { (f.flags) }
                            } } }
                        }
                        h2 { (text::COVERAGE) }
                        @if m.coverage.is_empty() { p { (text::NO_COVERAGE) } } @else {
                            table #report-coverage {
                                thead { tr { @for col in text::COVERAGE_COLUMNS { th { (col) } } } }
                                tbody { @for row in &m.coverage { tr { @for cell in row { td { (cell) } } } } }
                            }
                        }
                        @for s in &m.segments {
                            section.segment data-segment=(s.segment_id) {
                                h2 { (text::TIMELINE) " · " span.mono { (s.segment_id) } }
                                p.mono.small { @for line in &s.caption { (line) br; } }
                                table.timeline {
                                    thead { tr { @for col in text::TIMELINE_COLUMNS { th { (col) } } } }
                                    tbody { @for t in &s.timeline { tr {
                                        td { (t.seq) } td { (t.time) } td { (t.actor) } td { (t.action) }
                                        td { (t.details) } td.mono.hash { (t.leaf) }
                                    } } }
                                }
                                h3 { (text::ACCESS) }
                                @if s.access.is_empty() { p { (text::NO_ACCESS) } } @else {
                                    table.access {
                                        thead { tr { @for col in text::ACCESS_COLUMNS { th { (col) } } } }
                                        tbody { @for a in &s.access { tr {
                                            td { (a.seq) } td { (a.time) } td { (a.who) } td { (a.what) } td { (a.approval) }
                                        } } }
                                    }
                                }
                            }
                        }
                        } } } }
                        footer { p.mono.small #report-checkpoint { (m.footer) } }
                    }
                }
            };
            Ok(Html(markup.into_string()).into_response())
        },
    )
    .await
}
