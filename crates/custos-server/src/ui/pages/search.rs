//! The catalogue search (`GET /v1/segments`) with the console's extra
//! filters (dock, late, damaged) on its results.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{duration, human_bytes, layout, opt, path_part, status_text, time, Need, Page};
use crate::ui::{Ctx, UiError, UiState};
use custos_ledger::catalogue::{SegmentQuery, SegmentRecord, MAX_SEARCH_RESULTS};

#[derive(Debug, Default, Deserialize)]
pub(in crate::ui) struct SearchForm {
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
pub(super) fn time_field(v: Option<String>, offset: Option<String>) -> Option<String> {
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
pub(in crate::ui) async fn search(page: Page, Query(form): Query<SearchForm>) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments"),
        move |Page { state, ctx }, _| async move { search_page(&state, &ctx, form).await },
    )
    .await
}

async fn search_page(state: &UiState, ctx: &Ctx, form: SearchForm) -> Result<Response, UiError> {
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
