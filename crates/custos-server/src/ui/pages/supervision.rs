//! The supervisor's view (执法全过程记录): over a period, per officer, per
//! recorder and per officer with each recorder, the recording time, files,
//! late and damaged files, open and explained coverage findings
//! (`GET /v1/supervision`), with a period chooser (a GET form) and the
//! rows as a CSV download.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::search::time_field;
use super::{coverage, layout, opt, Need, Page};
use crate::ui::{Ctx, UiError, UiState};
use custos_ledger::governance::{self, GovernanceError};
use custos_ledger::wire::{Supervision, SupervisionCounts, SupervisionQuery};

/// The period chooser's fields.
#[derive(Debug, Default, Deserialize)]
pub(in crate::ui) struct SupervisionForm {
    from: Option<String>,
    to: Option<String>,
    /// Minutes east of UTC of the browser's zone at `from` (console.js).
    from_tz: Option<String>,
    /// The same at `to`.
    to_tz: Option<String>,
    officer: Option<String>,
    recorder: Option<String>,
}

impl SupervisionForm {
    /// The API query: the period as entered; a bound not entered is the
    /// ledger's default (up to now, seven days).
    fn query(&self) -> SupervisionQuery {
        // A date alone (a link such as ?from=2026-12-01) is the API's UTC day.
        let bound = |v: &Option<String>, tz: &Option<String>| match opt(v) {
            Some(d) if d.len() == 10 => Some(d),
            v => time_field(v, opt(tz)),
        };
        SupervisionQuery {
            from: bound(&self.from, &self.from_tz),
            to: bound(&self.to, &self.to_tz),
            officer: opt(&self.officer),
            recorder: opt(&self.recorder),
            format: None,
        }
    }
}

async fn view(state: &UiState, query: SupervisionQuery) -> Result<Supervision, GovernanceError> {
    let ledger = state.app.ledger.clone();
    tokio::task::spawn_blocking(move || governance::supervision(&ledger, &query))
        .await
        .map_err(|e| GovernanceError::Invalid(format!("counting the supervision view: {e}")))?
}

/// The CSV link's query string: the period shown (the defaults resolved,
/// so the file holds what the page showed) and the same filters.
fn query_string(view: &Supervision, q: &SupervisionQuery) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.append_pair("from", &view.from)
        .append_pair("to", &view.to);
    for (k, v) in [("officer", &q.officer), ("recorder", &q.recorder)] {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// Recording time as `h:mm:ss` (a short clip still shows its seconds).
fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The counting columns of one row (recording time to explained findings);
/// open findings link to the Coverage page showing them (`coverage`), for
/// those who may open it.
fn count_cells(c: &SupervisionCounts, coverage: Option<String>) -> Markup {
    html! {
        td.num { (hms(c.recording_ms)) }
        td.num { (c.segments) }
        td.num { (c.late) }
        td.num { (c.damaged) }
        td.num.open-findings {
            @if c.findings_open > 0 {
                @if let Some(href) = coverage {
                    a href=(href) { span.flag.bad { (c.findings_open) } }
                } @else { span.flag.bad { (c.findings_open) } }
            } @else { "0" }
        }
        td.num { (c.findings_explained) }
    }
}

/// Which table of sums: per officer or per recorder.
#[derive(Clone, Copy)]
enum Per {
    Officer,
    Recorder,
}

/// A table of sums, one row per officer or per recorder, and the total.
fn sums_table(ctx: &Ctx, view: &Supervision, per: Per) -> Markup {
    let c = ctx.c();
    let (id, who, sums) = match per {
        Per::Officer => ("supervision-officers", c.t("col-officer"), &view.by_officer),
        Per::Recorder => (
            "supervision-recorders",
            c.t("col-recorder"),
            &view.by_recorder,
        ),
    };
    let link = |recorder: Option<&str>, officer: Option<&str>| {
        may_explain(ctx).then(|| coverage::filtered_href(recorder, officer, &view.from, &view.to))
    };
    html! {
        table.supervision-sums #(id) {
            thead { tr {
                th { (who) }
                th.num { (c.t("supervision-minutes")) } th.num { (c.t("col-segments")) }
                th.num { (c.t("supervision-late")) } th.num { (c.t("supervision-damaged")) }
                th.num { (c.t("supervision-open")) } th.num { (c.t("supervision-explained")) }
            } }
            tbody {
                @for s in sums {
                    @let href = match per {
                        Per::Officer => link(None, Some(&s.id)),
                        Per::Recorder => link(Some(&s.id), None),
                    };
                    tr.supervision-sum data-id=(s.id) { td { (s.id) } (count_cells(&s.counts, href)) }
                }
            }
            tfoot { tr.supervision-total { th { (c.t("supervision-total")) } (count_cells(&view.total, link(None, None))) } }
        }
    }
}

/// Whether the caller may open the Coverage page (supervisors; auditors
/// read the counts here but explain nothing).
fn may_explain(ctx: &Ctx) -> bool {
    ctx.may("POST", "/v1/coverage/{seq}/explanation")
}

/// `GET /ui/supervision`: the period chooser, the tables and the CSV link.
pub(in crate::ui) async fn supervision(
    page: Page,
    Query(form): Query<SupervisionForm>,
) -> Response {
    page.run(
        Need::Route("GET", "/v1/supervision"),
        move |Page { state, ctx }, _| async move { render(&state, &ctx, form).await },
    )
    .await
}

async fn render(state: &UiState, ctx: &Ctx, form: SupervisionForm) -> Result<Response, UiError> {
    let c = ctx.c();
    let query = form.query();
    let (found, error) = match view(state, query.clone()).await {
        Ok(v) => (Some(v), None),
        Err(GovernanceError::Invalid(m)) => (None, Some(m)),
        Err(e) => return Err(e.into()),
    };
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let body = html! {
        p.hint { (c.t("supervision-hint")) }
        form #supervision-form.search method="get" action="/ui/supervision" {
            label { (c.t("supervision-from")) input name="from" type="datetime-local" step="1" value=(v(&form.from)); }
            label { (c.t("supervision-to")) input name="to" type="datetime-local" step="1" value=(v(&form.to)); }
            // Set by console.js on submit: the browser's offset for each date.
            input name="from_tz" type="hidden" value="";
            input name="to_tz" type="hidden" value="";
            label { (c.t("search-officer")) input name="officer" value=(v(&form.officer)); }
            label { (c.t("search-recorder")) input name="recorder" value=(v(&form.recorder)); }
            button #supervision-button type="submit" { (c.t("supervision-show")) }
        }
        @if let Some(e) = &error { p.error #supervision-error { (e) } }
        @if let Some(view) = &found {
            p #supervision-period {
                (c.t("supervision-period")) " "
                time.ts datetime=(view.from) title=(view.from) { (view.from) }
                " – "
                time.ts datetime=(view.to) title=(view.to) { (view.to) }
                " · "
                a #supervision-csv href=(format!("/ui/supervision.csv?{}", query_string(view, &query))) download { (c.t("supervision-csv")) }
            }
            @if view.rows.is_empty() {
                p #supervision-empty { (c.t("supervision-none")) }
            } @else {
                h2 { (c.t("supervision-by-officer")) }
                (sums_table(ctx, view, Per::Officer))
                h2 { (c.t("supervision-by-recorder")) }
                (sums_table(ctx, view, Per::Recorder))
                h2 { (c.t("supervision-by-pair")) }
                table #supervision {
                    thead { tr {
                        th { (c.t("col-officer")) } th { (c.t("col-recorder")) }
                        th.num { (c.t("supervision-minutes")) } th.num { (c.t("col-segments")) }
                        th.num { (c.t("supervision-late")) } th.num { (c.t("supervision-damaged")) }
                        th.num { (c.t("supervision-open")) } th.num { (c.t("supervision-explained")) }
                    } }
                    tbody {
                        @for r in &view.rows {
                            tr.supervision-row data-officer=(r.officer_id) data-recorder=(r.recorder_id) {
                                td { (r.officer_id) }
                                td { (r.recorder_id) }
                                (count_cells(
                                    &SupervisionCounts::from(r),
                                    may_explain(ctx).then(|| coverage::filtered_href(
                                        Some(&r.recorder_id), Some(&r.officer_id), &view.from, &view.to,
                                    )),
                                ))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(ctx, &c.t("supervision-title"), body, &[]))
}

/// `GET /ui/supervision.csv`: the same rows as a CSV file.
pub(in crate::ui) async fn supervision_csv(
    page: Page,
    Query(form): Query<SupervisionForm>,
) -> Response {
    page.run(
        Need::Route("GET", "/v1/supervision"),
        move |Page { state, .. }, _| async move {
            let query = form.query();
            let found = view(&state, query).await.map_err(|e| match e {
                GovernanceError::Invalid(m) => UiError::page(StatusCode::BAD_REQUEST, m),
                e => e.into(),
            })?;
            Ok(crate::api::supervision_csv(&found))
        },
    )
    .await
}
