//! Keys, manifests and signed events that tests build again and again, with
//! fixed seeds and times so that every run signs the same bytes.

use custos_core::digest::Digest;
use custos_core::dsse::Envelope;
use custos_core::entry::details::{RecorderDocked, SegmentIngested, SegmentVerified, SegmentWiped};
use custos_core::entry::{Details, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, Timestamp};
use serde_json::{json, Map, Value};

/// The ledger's key in every test (a fixed seed: tests are reproducible).
pub fn ledger_key() -> SigningKey {
    SigningKey::from_seed("ledger", &[1; 32]).expect("INVARIANT: fixture")
}

/// The dock's key.
pub fn dock_key() -> SigningKey {
    SigningKey::from_seed("dock-01", &[2; 32]).expect("INVARIANT: fixture")
}

/// The instant fixtures' events carry.
pub fn now() -> Timestamp {
    Timestamp::parse("2026-03-01T08:00:00Z").expect("INVARIANT: fixture")
}

/// A signed event from `key`.
pub fn event_by(
    key: &SigningKey,
    action: &str,
    subject: &str,
    details: Map<String, Value>,
) -> Envelope {
    Event::new(action, subject, details, now())
        .expect("INVARIANT: fixture")
        .sign(key)
        .expect("INVARIANT: fixture")
}

/// A signed event from the test dock.
pub fn event(action: &str, subject: &str, details: Map<String, Value>) -> Envelope {
    event_by(&dock_key(), action, subject, details)
}

/// A `segment.wiped` event by the test dock about `segment`.
pub fn wiped_event(segment: &str) -> Envelope {
    let details = Details::SegmentWiped(SegmentWiped {
        recorder_id: "rec-7".into(),
        original_name: None,
        verified_seq: None,
        again: false,
    });
    event(details.action(), segment, details.to_map())
}

/// A valid manifest for `segment`.
pub fn manifest(segment: &str, recorder: &str, officer: &str, start: &str) -> Manifest {
    serde_json::from_value(json!({
        "segment_id": segment,
        "recorder": {"id": recorder, "model": "BWC-9", "profile": "generic"},
        "officer_id": officer,
        "dock": {"id": "dock-01", "clock_offset_ms": 0},
        "original_name": format!("{segment}.MP4"),
        "size": 1024,
        "digests": {"sha256": format!("sha256:{}", "ab".repeat(32))},
        "recorded": {"start": start, "end": start, "source": "media"},
        "media": {"container": "mp4", "duration_ms": 1000, "streams": [], "damaged": null},
        "ingested_at": start,
        "object": {"url": "file:///tmp/objects", "key": format!("objects/{segment}")},
        "late": false
    }))
    .expect("INVARIANT: fixture")
}

/// A manifest of a one-minute recording by `rec-7` whose `size` bytes,
/// hashing to `sha256`, are stored under `rec-7/<segment>.mp4`.
pub fn stored_manifest(segment: &str, size: u64, sha256: Digest) -> Manifest {
    let mut m = manifest(segment, "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    m.recorded.end = Timestamp::parse("2026-03-01T07:01:00Z").expect("INVARIANT: fixture");
    m.media.duration_ms = Some(60_000);
    m.ingested_at = now();
    m.object.url = "file:///objects".into();
    m.object.key = format!("rec-7/{segment}.mp4");
    m.size = size;
    m.digests.sha256 = sha256;
    m
}

/// A `segment.ingested` event carrying `manifest` signed by `key`.
pub fn ingest_event_with(key: &SigningKey, manifest: &Manifest) -> Envelope {
    let signed = manifest.sign(key).expect("INVARIANT: fixture");
    let details = Details::SegmentIngested(SegmentIngested {
        manifest: signed,
        object_key: Some(manifest.object.key.clone()),
        sha256: Some(manifest.digests.sha256.to_string()),
    });
    event_by(
        key,
        details.action(),
        &manifest.segment_id,
        details.to_map(),
    )
}

/// A `recorder.docked` event by the test dock about recorder `subject`
/// (slot 1, a simulated recorder).
pub fn docked_event(subject: &str) -> Envelope {
    let details = Details::RecorderDocked(RecorderDocked {
        slot: "1".into(),
        profile: "generic".into(),
        model: "BWC-T".into(),
        transport: "simulated".into(),
        clock_offset_ms: None,
        recorder_time: None,
        serial: None,
        officer_id: None,
        firmware: None,
    });
    event(details.action(), subject, details.to_map())
}

/// A `segment.verified` event by the test dock about `segment`.
pub fn verified_event(segment: &str) -> Envelope {
    let details = Details::SegmentVerified(SegmentVerified {
        method: "read_back".into(),
        object_key: format!("objects/{segment}"),
        sha256: "00".repeat(32),
    });
    event(details.action(), segment, details.to_map())
}

/// A `segment.ingested` event by the test dock.
pub fn ingest_event(segment: &str) -> Envelope {
    ingest_event_with(
        &dock_key(),
        &manifest(segment, "rec-7", "officer-42", "2026-03-01T07:00:00Z"),
    )
}
