//! A report of many segments, laid out with a fixed measure and drawn with
//! the real font: every item stays inside the A4 page's margins, every page
//! has its "page N of M" footer naming the checkpoint, and every segment's
//! SHA-256 and entries are on some page.

use std::collections::BTreeMap;

use custos_core::checkpoint::Checkpoint;
use custos_core::entry::{Action, Actor, ActorKind, Entry};
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, Timestamp};
use custos_core::merkle::leaf_hash;
use custos_report::layout::{self, Face, Item, Measure, CONTENT_W, MARGIN, PAGE_H, PAGE_W};
use custos_report::model::contents;
use custos_report::{EntryFacts, ReportInput, SegmentFacts};
use serde_json::json;

/// Latin half an em, CJK a whole one.
struct Fixed;
impl Measure for Fixed {
    fn advance(&self, _: Face, c: char) -> f32 {
        if c >= '\u{2E80}' {
            1.0
        } else {
            0.5
        }
    }
}

fn manifest(i: usize) -> Manifest {
    let start = format!("2026-03-01T08:{:02}:00Z", i % 60);
    serde_json::from_value(json!({
        "segment_id": format!("seg-{i:04}"),
        "recorder": {"id": "DSJ1A2B3C", "model": "GA/T 947 body-worn recorder", "profile": "gat947"},
        "officer_id": "012345",
        "dock": {"id": "dock-01", "clock_offset_ms": 0},
        "original_name": format!("DCIM/100MEDIA/DSJ1A2B3C_012345_20260301080000_{i:04}.MP4"),
        "size": 123_456_789,
        "digests": {"sha256": format!("sha256:{:064x}", i)},
        "recorded": {"start": start, "end": start, "source": "media"},
        "media": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_ms": 60_000,
                  "streams": [{"index": 0, "kind": "video", "codec": "h264", "width": 1920, "height": 1080}],
                  "damaged": if i.is_multiple_of(7) { json!("moov atom missing: the file ends early") } else { json!(null) }},
        "ingested_at": start,
        "object": {"url": "file:///tmp/objects", "key": format!("objects/seg-{i:04}")},
        "late": false
    }))
    .unwrap()
}

fn input(segments: usize) -> ReportInput {
    let key = SigningKey::from_seed("ledger", &[7; 32]).unwrap();
    let mut entries = Vec::new();
    let mut facts = Vec::new();
    let mut seq = 0u64;
    for i in 0..segments {
        let m = manifest(i);
        let first = seq;
        let mut seqs = Vec::new();
        for action in [
            "segment.ingested",
            "segment.verified",
            "segment.wiped",
            "segment.viewed",
        ] {
            let entry = Entry {
                seq,
                time: Timestamp::parse("2026-03-01T09:00:00.123456789Z").unwrap(),
                prev: None,
                actor: Actor {
                    kind: ActorKind::Dock,
                    id: "dock-01".into(),
                },
                action: Action::new(action).unwrap(),
                subject: m.segment_id.clone(),
                details: json!({"role": "reviewer", "size": 1, "range": null,
                                "request_id": "req-0001", "note": "x".repeat(400)})
                .as_object()
                .unwrap()
                .clone(),
                envelope: None,
            };
            entries.push(EntryFacts {
                seq,
                leaf: leaf_hash(format!("entry {seq}").as_bytes()),
                entry,
            });
            seqs.push(seq);
            seq += 1;
        }
        facts.push(SegmentFacts {
            bundle_path: format!("footage/{}.mp4", m.segment_id),
            manifest: m,
            ingested_seq: first,
            entries: seqs,
        });
    }
    ReportInput {
        made_at: Timestamp::parse("2026-03-02T10:00:00Z").unwrap(),
        made_by: "reviewer:rev-li".into(),
        case: Some("case-1".into()),
        export: None,
        approvals: BTreeMap::new(),
        ledger_key: key.verifier_key(),
        checkpoint: Checkpoint::new("test.custos/ledger", seq, leaf_hash(b"root")).unwrap(),
        segments: facts,
        entries,
    }
}

/// A box inside the margins.
fn fits(x: f32, y: f32, w: f32, h: f32) {
    assert!(x >= MARGIN - 0.01 && x + w <= MARGIN + CONTENT_W + 0.01 && x + w <= PAGE_W);
    assert!(y >= MARGIN - 0.01 && y + h <= PAGE_H - MARGIN);
}

#[test]
fn every_item_fits_its_page_and_every_page_has_its_footer() {
    let input = input(40);
    let c = contents(&input);
    let pages = layout::layout(&Fixed, &c, true);
    assert!(pages.len() > 5, "{} pages", pages.len());
    let right = MARGIN + CONTENT_W + 0.01;
    for (n, page) in pages.iter().enumerate() {
        for item in &page.items {
            match item {
                Item::Text {
                    x,
                    y,
                    size,
                    face,
                    text,
                } => {
                    assert!(*x >= MARGIN - 0.01, "page {n}: {text:?} at x {x}");
                    let end = x + Fixed.width(*face, *size, text);
                    assert!(end <= right, "page {n}: {text:?} ends at {end}");
                    assert!(
                        *y > MARGIN && *y < PAGE_H - MARGIN,
                        "page {n}: {text:?} at y {y}"
                    );
                }
                Item::Line { x1, y1, x2, y2 } => {
                    for x in [x1, x2] {
                        assert!(*x >= MARGIN - 0.01 && *x <= right);
                    }
                    for y in [y1, y2] {
                        assert!(*y >= MARGIN - 0.01 && *y <= PAGE_H - MARGIN);
                    }
                }
                Item::Shade { x, y, w, h } => fits(*x, *y, *w, *h),
                Item::Qr { x, y, size, .. } => fits(*x, *y, *size, *size),
            }
        }
        let footer = format!("page {} of {}", n + 1, pages.len());
        assert!(page.texts().any(|t| t.ends_with(&footer)), "page {n}");
        assert!(
            page.texts()
                .any(|t| t.contains("test.custos/ledger · size 160")),
            "page {n}"
        );
    }
    let all: Vec<&str> = pages.iter().flat_map(|p| p.texts()).collect();
    for i in 0..40 {
        let sha = format!("sha256 {:064x}", i);
        assert!(all.iter().any(|t| t.contains(&sha)), "{sha}");
    }
    for seq in 0..160u64 {
        assert!(all.contains(&seq.to_string().as_str()), "seq {seq}");
    }
}

#[test]
fn the_real_font_makes_a_pdf() {
    let bytes = std::fs::read(custos_report::DEFAULT_FONT)
        .expect("the report font (Debian's fonts-wqy-microhei, scripts/install-deps)");
    let font = custos_report::ReportFont::new(bytes).unwrap();
    let pdf = custos_report::build(&input(3), &font).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // The subset is far smaller than the 5 MB font.
    assert!(pdf.len() < 1_000_000, "{} bytes", pdf.len());
}
