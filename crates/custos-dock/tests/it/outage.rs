//! Outages during an ingest by the real `custos dock ingest`:
//!
//! - the S3 store (a real Garage node) stopped mid-ingest, started again
//!   after `CUSTOS_OUTAGE_SECS` (default 10; the full run is 30):
//!   the ingest waits, resumes, and completes;
//! - the ledger process killed mid-ingest, restarted after a few seconds:
//!   the dock keeps storing, its signed events wait in its journal and are
//!   delivered in the order they were made.

use std::time::{Duration, Instant};

use custos_testsupport::Garage;

use crate::util;

fn outage_secs() -> u64 {
    std::env::var("CUSTOS_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("custos dock ingest did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stderr_of(child: &mut std::process::Child) -> String {
    use std::io::Read as _;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

#[test]
fn s3_store_stopped_mid_ingest_then_back() {
    let mut garage = Garage::start().unwrap();
    let (site, config, ledger, audit) = util::remote_site(&garage, "");
    let blobs = [
        9_000_000, 9_000_000, 9_000_000, 9_000_000, 9_000_000, 9_000_000,
    ];
    let files = util::recorder(&site.path("rec"), "SIM0002", "100235", 1, &blobs, 21);
    let mut child = util::dock_ingest(&config, &files.root, &garage)
        .spawn()
        .unwrap();
    // Some of it is stored, not all.
    wait_until(
        "the first segment in storage",
        Duration::from_secs(60),
        || util::bucket(&garage).len() >= 2,
    );
    garage.stop();
    let outage = Duration::from_secs(outage_secs());
    std::thread::sleep(outage);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the dock gave up during the outage: {}",
        stderr_of(&mut child)
    );
    garage.start_again().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(240));
    assert!(status.success(), "{status}: {}", stderr_of(&mut child));

    assert!(util::remaining(&files.root).is_empty());
    let entries = util::entries(&ledger.url, &audit);
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), files.files.len());
    let stored = util::bucket(&garage);
    for sha in files.files.values() {
        assert_eq!(stored.values().filter(|s| *s == sha).count(), 1);
    }
    drop(ledger);
}

#[test]
fn ledger_stopped_mid_ingest_queue_drains_in_order() {
    let garage = Garage::start().unwrap();
    let (site, config, mut ledger, audit) = util::remote_site(&garage, "");
    let blobs = [
        4_000_000, 6_000_000, 3_000_000, 7_000_000, 2_000_000, 8_000_000, 1_000_000, 5_000_000,
    ];
    let files = util::recorder(&site.path("rec"), "SIM0003", "100236", 1, &blobs, 31);
    let mut child = util::dock_ingest(&config, &files.root, &garage)
        .spawn()
        .unwrap();
    wait_until("the first custody entries", Duration::from_secs(60), || {
        util::dock_entries(&ledger.url, &audit).len() >= 2
    });
    ledger.kill();
    let at_kill = util::bucket(&garage).len();
    // The dock goes on storing and verifying while its events wait; it
    // wipes nothing whose segment.verified is not acknowledged.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the dock gave up: {}",
        stderr_of(&mut child)
    );
    let during = util::bucket(&garage).len();
    assert!(
        during > at_kill,
        "nothing was stored while the ledger was down ({at_kill} → {during})"
    );
    let before_restart = util::remaining(&files.root).len();
    ledger.restart();
    let status = wait_exit(&mut child, Duration::from_secs(240));
    assert!(status.success(), "{status}: {}", stderr_of(&mut child));
    assert!(
        before_restart > 0,
        "everything was wiped without the ledger"
    );

    assert!(util::remaining(&files.root).is_empty());
    let entries = util::dock_entries(&ledger.url, &audit);
    util::check_segment_entries(&entries, true);
    // Delivered in the order they were made: the dock's own event times
    // never go back along the log, docked comes first and undocked last.
    let times: Vec<_> = entries.iter().map(util::event_time).collect();
    for w in times.windows(2) {
        assert!(w[0] <= w[1], "events out of order: {} then {}", w[0], w[1]);
    }
    assert_eq!(entries.first().unwrap().action, "recorder.docked");
    assert_eq!(entries.last().unwrap().action, "recorder.undocked");
    assert_eq!(entries.len(), 2 + 3 * files.files.len());
}
