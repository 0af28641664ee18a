//! `custos audit scrub` against a real Garage node: an honest store passes;
//! a byte flipped in one object and another object deleted (both through
//! object_store, behind Custos's back) are named, the exit code is 1, and
//! the findings and the summary are `audit.scrubbed` entries in the ledger.

use std::path::Path;
use std::process::{Command, Output};

use crate::garage_fixture::{setup, text, Setup};
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::object_store::ObjectStoreExt;
use serde_json::{json, Value};

fn scrub(s: &Setup) -> Output {
    s.custos()
        .args(["audit", "scrub", "--config"])
        .arg(&s.config)
        .args(["--jobs", "2"])
        .output()
        .unwrap()
}

fn scrub_entries(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["action"] == "audit.scrubbed")
        .collect()
}

fn key(segment: &str) -> ObjectPath {
    ObjectPath::from(format!("rec-7/{segment}.mp4").as_str())
}

#[test]
fn a_scrub_names_altered_and_missing_objects_and_records_them() {
    const MARCH: &str = "2026-03-01T07:01:00Z";
    let s = setup(&[("seg-a", MARCH), ("seg-b", MARCH), ("seg-c", MARCH)]);

    // An honest store: every object matches, exit 0, one summary entry.
    let out = scrub(&s);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("scrubbed 3 object(s): 3 ok, 0 missing, 0 altered"),
        "{stdout}"
    );
    let entries = s.entries();
    let first = scrub_entries(&entries);
    assert_eq!(first.len(), 1, "{first:?}");
    let summary = first[0];
    assert_eq!(summary["details"]["result"], "summary");
    assert_eq!(summary["details"]["checked"], 3);
    assert_eq!(summary["details"]["ok"], 3);
    assert_eq!(summary["details"]["findings"], json!([]));
    assert_eq!(summary["actor"]["kind"], "system");
    assert!(summary["subject"].as_str().unwrap().starts_with("scrub-"));

    // Behind Custos's back: one byte of seg-b flipped in place, seg-c deleted.
    s.rt.block_on(async {
        let mut bytes = s
            .objects
            .get(&key("seg-b"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[123_456] ^= 0x01;
        s.objects.put(&key("seg-b"), bytes.into()).await.unwrap();
        s.objects.delete(&key("seg-c")).await.unwrap();
    });

    let out = scrub(&s);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let altered: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("ALTERED"))
        .collect();
    let missing: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("MISSING"))
        .collect();
    assert_eq!(altered.len(), 1, "{stdout}");
    assert!(
        altered[0].contains("segment seg-b (object rec-7/seg-b.mp4)"),
        "{stdout}"
    );
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(
        missing[0].contains("segment seg-c (object rec-7/seg-c.mp4)"),
        "{stdout}"
    );
    assert!(!stdout.contains("seg-a"), "{stdout}");
    assert!(
        stdout.contains("scrubbed 3 object(s): 1 ok, 1 missing, 1 altered"),
        "{stdout}"
    );

    let entries = s.entries();
    let all = scrub_entries(&entries);
    assert_eq!(all.len(), 4, "{all:?}");
    let (b, c, summary) = (all[1], all[2], all[3]);
    assert_eq!(b["subject"], "seg-b");
    assert_eq!(b["details"]["result"], "altered");
    assert_eq!(b["details"]["object_key"], "rec-7/seg-b.mp4");
    assert_ne!(
        b["details"]["actual_sha256"],
        b["details"]["expected_sha256"]
    );
    assert_eq!(c["subject"], "seg-c");
    assert_eq!(c["details"]["result"], "missing");
    assert_eq!(summary["details"]["result"], "summary");
    assert_eq!(summary["details"]["checked"], 3);
    assert_eq!(summary["details"]["ok"], 1);
    assert_eq!(summary["details"]["missing"], 1);
    assert_eq!(summary["details"]["altered"], 1);
    assert_eq!(summary["details"]["findings"], json!([b["seq"], c["seq"]]));
    assert_eq!(b["details"]["scrub_id"], summary["subject"]);

    // The finding joins the segment's custody record.
    let ledger = s.ledger();
    let custody = ledger.custody("seg-b").unwrap().unwrap();
    s.rt.block_on(ledger.close());
    assert!(
        custody
            .entries
            .iter()
            .any(|e| e.seq == b["seq"].as_u64().unwrap()),
        "the scrub's finding is not in seg-b's custody"
    );
}

#[test]
fn a_scrub_without_its_configuration_fails_on_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["audit", "scrub", "--config"])
        .arg(Path::new("/nonexistent/custos.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/custos.toml"), "{stderr}");
}
