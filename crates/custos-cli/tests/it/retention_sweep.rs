//! The retention sweeper end to end, footage in a real Garage bucket:
//! `custos retention sweep --dry-run` lists and changes nothing; the
//! scheduled sweep of `custos ledger serve` (a one-second
//! `[retention] sweep_interval` here) deletes only footage whose retention
//! ended and that is not under a hold, recording each deletion; then
//! `custos retention sweep` deletes the rest once the hold is released.
//!
//! Ages come from backdated recording times: "old" and "held" ended on
//! 2026-03-01, more than 180 days before the test runs; "fresh" ended a day
//! ago.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::garage_fixture::{setup, text, Setup};
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::object_store::ObjectStoreExt;
use custos_ledger::governance;
use serde_json::Value;

const MARCH: &str = "2026-03-01T07:01:00Z";

fn key(segment: &str) -> ObjectPath {
    ObjectPath::from(format!("rec-7/{segment}.mp4").as_str())
}

fn exists(s: &Setup, segment: &str) -> bool {
    s.rt.block_on(s.objects.head(&key(segment))).is_ok()
}

fn deletions(s: &Setup) -> Vec<Value> {
    s.entries()
        .into_iter()
        .filter(|e| e["action"] == "retention.deleted")
        .collect()
}

#[test]
fn the_scheduled_sweep_deletes_only_eligible_footage_and_records_it() {
    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let s = setup(&[("old", MARCH), ("held", MARCH), ("fresh", &yesterday)]);
    let supervisor = s
        .ok(s
            .custos()
            .args(["token", "create", "--config"])
            .arg(&s.config)
            .args(["--role", "supervisor", "--name", "sup-1"]))
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let ledger = s.ledger();
    s.rt.block_on(async {
        let caller = ledger.authenticate(&supervisor).unwrap();
        governance::place_hold(&ledger, &caller, "held", "appeal pending")
            .await
            .unwrap();
        ledger.close().await;
    });
    drop(ledger);

    // A dry run lists "old" only and changes nothing.
    let stdout = s.ok(s
        .custos()
        .args(["retention", "sweep", "--dry-run", "--config"])
        .arg(&s.config));
    assert!(
        stdout.contains("would delete old: retention 180 days ended"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("held") && !stdout.contains("fresh"),
        "{stdout}"
    );
    assert!(stdout.contains("1 segment(s) would be deleted"), "{stdout}");
    assert!(deletions(&s).is_empty());
    assert!(exists(&s, "old"));

    // The service sweeps on its own, every second.
    let mut serve = s.custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(&s.config)
        .env("CUSTOS_RETENTION_SWEEP_INTERVAL", "1s")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let (mut server, _url) = custos_testsupport::serve_ledger(serve).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while exists(&s, "old") {
        assert!(
            Instant::now() < deadline,
            "the scheduled sweep did not delete \"old\" within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A few more sweeps: nothing else goes.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();
    assert!(status.success(), "ledger serve exited with {status}");
    assert!(exists(&s, "held"));
    assert!(exists(&s, "fresh"));
    let deleted = deletions(&s);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["subject"], "old");
    assert_eq!(deleted[0]["actor"]["kind"], "ledger");
    assert_eq!(deleted[0]["details"]["object_key"], "rec-7/old.mp4");

    // The hold released, an on-demand sweep deletes "held"; "fresh" stays.
    let ledger = s.ledger();
    s.rt.block_on(async {
        let caller = ledger.authenticate(&supervisor).unwrap();
        governance::release_hold(&ledger, &caller, "held")
            .await
            .unwrap();
        ledger.close().await;
    });
    drop(ledger);
    let stdout = s.ok(s
        .custos()
        .args(["retention", "sweep", "--config"])
        .arg(&s.config));
    assert!(
        stdout.contains("deleted held: retention 180 days"),
        "{stdout}"
    );
    assert!(stdout.contains("1 segment(s) deleted"), "{stdout}");
    assert!(!exists(&s, "held"));
    assert!(exists(&s, "fresh"));
    let deleted = deletions(&s);
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[1]["subject"], "held");
}

#[test]
fn a_bad_sweep_interval_is_refused_on_one_line() {
    let s = setup(&[]);
    let out = s
        .custos()
        .args(["ledger", "serve", "--config"])
        .arg(&s.config)
        .env("CUSTOS_RETENTION_SWEEP_INTERVAL", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("retention.sweep_interval"), "{stderr}");
}
