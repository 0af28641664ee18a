//! One segment: its manifest, dock signature, footage (the player, with
//! the approval it rests on or the form to ask for one), hold, and custody
//! timeline; the footage itself and the segment's export bundle.

use axum::extract::{Form, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use custos_core::dsse::MANIFEST_PAYLOAD_TYPE;
use custos_core::entry::details::SegmentIngested;
use custos_core::entry::{Details, Entry};
use custos_core::keys::VerifierKey;
use maud::html;

use super::{
    csrf_field, duration, human_bytes, layout, opt, path_part, request_status, status_text, time,
    Need, Page, ReasonForm,
};
use crate::api::{content_response, export_response};
use crate::ui::{Ctx, Session, UiError, UiState};
use custos_ledger::auth::{DockKeyRecord, DOCK_KEYS};
use custos_ledger::catalogue::SegmentRecord;
use custos_ledger::governance;

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
pub(in crate::ui) async fn segment(page: Page, Path(id): Path<String>) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments/{id}"),
        move |Page { state, ctx }, session| async move {
            segment_page(&state, &ctx, &session, &id).await
        },
    )
    .await
}

async fn segment_page(
    state: &UiState,
    ctx: &Ctx,
    session: &Session,
    id: &str,
) -> Result<Response, UiError> {
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
                tr { th { (c.t("col-container")) } td { (m.media.container_label()) } }
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
                        p #segment-report {
                            (c.t("report-title")) ": "
                            a #segment-report-pdf href=(format!("/ui/segments/{seg}/report.pdf")) { (c.t("report-pdf")) }
                            " · "
                            a #segment-report-html href=(format!("/ui/segments/{seg}/report")) { (c.t("report-view")) }
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

/// `GET /ui/segments/{id}/media`: the footage, as `GET
/// /v1/segments/{id}/content` serves it (Range, approval, a
/// `segment.viewed` entry before any byte).
pub(in crate::ui) async fn media(
    page: Page,
    Path(id): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    page.run(
        Need::Route("GET", "/v1/segments/{id}/content"),
        move |Page { state, .. }, session| async move {
            Ok(content_response(&state.app, &session.caller, &id, &method, &headers).await?)
        },
    )
    .await
}

/// `POST /ui/segments/{id}/export`: the bundle of one segment, as `POST
/// /v1/exports` builds it.
pub(in crate::ui) async fn export_segment(
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    page.run(
        Need::form("POST", "/v1/exports", &form.csrf),
        move |Page { state, .. }, session| async move {
            let reason = opt(&Some(form.reason.clone()));
            Ok(
                export_response(&state.app, &session.caller, vec![id.clone()], None, reason)
                    .await?,
            )
        },
    )
    .await
}
