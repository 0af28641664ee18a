//! The exact bytes Custos signs, stores and publishes, as one reviewed
//! snapshot: a manifest and its DSSE envelope, a dock event and its
//! envelope, the custody entry made of it (the Merkle leaf) and the signed
//! checkpoint over it. Any change to these bytes breaks every verifier in
//! the field, so it must be seen in review, not found by an auditor.

use custos_core::checkpoint::Checkpoint;
use custos_core::entry::details::SegmentIngested;
use custos_core::entry::{Actor, ActorKind, Details, Entry, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, Timestamp};
use custos_core::merkle::leaf_hash;
use serde_json::json;

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn the_signed_and_stored_bytes_are_as_reviewed() {
    // Ed25519 signatures are deterministic: fixed seeds give fixed bytes.
    let dock = SigningKey::from_seed("dock-01", &[2; 32]).unwrap();
    let ledger = SigningKey::from_seed("custos.example.org/ledger", &[1; 32]).unwrap();
    let manifest: Manifest = serde_json::from_value(json!({
        "segment_id": "rec-7-20260301T070000Z-0001",
        "recorder": {"id": "rec-7", "model": "BWC-9", "profile": "generic"},
        "officer_id": "officer-42",
        "dock": {"id": "dock-01", "clock_offset_ms": -1500},
        "original_name": "20260301_070000_0001.MP4",
        "size": 1024,
        "digests": {"sha256": format!("sha256:{}", "ab".repeat(32))},
        "recorded": {"start": "2026-03-01T07:00:00Z", "end": "2026-03-01T07:01:00Z", "source": "media"},
        "media": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_ms": 60000, "streams": [], "damaged": null},
        "ingested_at": "2026-03-01T08:00:00Z",
        "object": {"url": "s3://evidence", "key": "rec-7/rec-7-20260301T070000Z-0001.mp4"},
        "late": false
    }))
    .unwrap();
    let signed_manifest = manifest.sign(&dock).unwrap();
    let time = Timestamp::parse("2026-03-01T08:00:01Z").unwrap();
    let details = Details::SegmentIngested(SegmentIngested {
        manifest: signed_manifest.clone(),
        object_key: Some(manifest.object.key.clone()),
        sha256: Some(manifest.digests.sha256.to_string()),
    });
    let event = Event::of(&details, &manifest.segment_id, time).unwrap();
    let envelope = event.sign(&dock).unwrap();
    let entry = Entry::from_event(
        0,
        None,
        Timestamp::parse("2026-03-01T08:00:02Z").unwrap(),
        Actor {
            kind: ActorKind::Dock,
            id: "dock-01".into(),
        },
        event.clone(),
        envelope.clone(),
    )
    .unwrap();
    let leaf = entry.to_bytes().unwrap();
    let checkpoint = Checkpoint::new("custos.example.org/ledger", 1, leaf_hash(&leaf))
        .unwrap()
        .sign(&ledger);

    let shown = [
        (
            "manifest (canonical JSON, the DSSE payload)",
            text(&manifest.to_canonical().unwrap()).to_owned(),
        ),
        (
            "manifest envelope",
            text(&signed_manifest.to_json()).to_owned(),
        ),
        (
            "event (canonical JSON, the DSSE payload)",
            text(&event.to_canonical().unwrap()).to_owned(),
        ),
        ("event envelope", text(&envelope.to_json()).to_owned()),
        ("custody entry 0 (the Merkle leaf)", text(&leaf).to_owned()),
        ("leaf hash", leaf_hash(&leaf).to_string()),
        ("checkpoint (C2SP signed note)", checkpoint),
    ];
    let snapshot: Vec<String> = shown
        .iter()
        .map(|(what, bytes)| format!("## {what}\n{bytes}"))
        .collect();
    insta::assert_snapshot!(snapshot.join("\n\n"));
}
