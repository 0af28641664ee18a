//! A recorder unplugged during the wipe, over the in-process simulated
//! recorder: `segment.wiped` is recorded only when the removal is known to
//! be on the recorder (synced while the very medium attached was still
//! there). Otherwise the step stays Wiping and the next docking looks
//! again: a file that is gone counts as wiped, a file still there with the
//! same path, size and time is removed again — and neither is reported as
//! "on the recorder again".
//!
//! tests/usb/ found the case on real USB: files wiped on a mount whose
//! device had just left came back after a replug.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use custos_dock::journal::Step;
use custos_dock::usb::simulated::SimulatedRecorder;
use custos_dock::{Dock, SessionReport, UsbTransport};
use tokio_util::sync::CancellationToken;

use crate::util::{self, Site};

const ID: &str = "SIM0051";

fn transport(dock: &Dock, rec: &SimulatedRecorder) -> Box<UsbTransport> {
    let profile = Arc::new(dock.profiles().get("simulated").unwrap().clone());
    Box::new(UsbTransport::new(
        Box::new(rec.channel()),
        Box::new(rec.locator()),
        profile,
        None,
        Some(b"s3cret".to_vec()),
        "simulated",
    ))
}

fn site_with_recorder() -> (Site, util::RecorderFiles, SimulatedRecorder) {
    let site = Site::new();
    site.write_config(
        "file://./data/objects",
        "127.0.0.1:0",
        None,
        "unlock_password = \"s3cret\"\n",
    );
    let files = util::recorder(
        &site.path("vol"),
        ID,
        "100251",
        0,
        &[30_000, 60_000, 90_000],
        51,
    );
    let rec = SimulatedRecorder::new(ID, "100251", b"s3cret", site.path("vol"), 0);
    (site, files, rec)
}

fn steps(dock: &Dock) -> Vec<Step> {
    dock.journal()
        .segments_of(ID)
        .unwrap()
        .iter()
        .map(|r| r.step)
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn docking(
    dock: &Arc<Dock>,
    rec: &SimulatedRecorder,
    slot: &str,
) -> tokio::task::JoinHandle<SessionReport> {
    let dock = dock.clone();
    let t = transport(&dock, rec);
    let slot = slot.to_owned();
    tokio::spawn(async move {
        let deadline = Some(Instant::now() + Duration::from_secs(120));
        let (_t, report) = dock
            .ingest(&slot, t, CancellationToken::new(), deadline)
            .await;
        report
    })
}

/// The ledger's entries after the dock's key registration.
async fn entries(dock: &Dock, ledger: &custos_ledger::Ledger) -> Vec<custos_core::entry::Entry> {
    let stop = CancellationToken::new();
    assert!(
        dock.drain(Some(Instant::now() + Duration::from_secs(30)), &stop)
            .await,
        "events still pending"
    );
    ledger
        .entries(0, None)
        .unwrap()
        .iter()
        .map(util::parse_line)
        .filter(|e| e.action != "token.created")
        .collect()
}

fn count(entries: &[custos_core::entry::Entry], action: &str) -> usize {
    entries.iter().filter(|e| e.action == action).count()
}

/// The unplug reached the recorder but not yet the docking session (the
/// kernel had not reported it; the mount is still there): the wipe touches
/// nothing and records nothing; after the replug every file is wiped once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_before_the_wipe_nothing_counts_until_replugged() {
    let (site, files, rec) = site_with_recorder();
    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let ledger = assembled.local_ledger.unwrap();

    // The ledger's acknowledgements are held back (no outbox pump yet), so
    // every segment waits at Verified, before its wipe.
    let first = docking(&dock, &rec, "usb-1-1").await;
    wait_for("every segment at Verified", Duration::from_secs(60), || {
        let s = steps(&dock);
        s.len() == files.files.len() && s.iter().all(|s| *s == Step::Verified)
    })
    .await;
    rec.set_plugged(false);
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());
    let report = tokio::time::timeout(Duration::from_secs(60), first)
        .await
        .expect("the docking did not end")
        .unwrap();

    assert_eq!(
        util::remaining(&site.path("vol")).len(),
        files.files.len(),
        "a file was removed from a recorder that had left"
    );
    assert!(
        steps(&dock).iter().all(|s| *s == Step::Wiping),
        "{:?}",
        steps(&dock)
    );
    assert!(!report.is_complete(), "{report:?}");
    assert!(report.cancelled, "{report:?}");
    assert_eq!(report.failed.len(), files.files.len(), "{report:?}");
    assert!(
        report
            .failed
            .iter()
            .all(|(_, why)| why.contains("not counted as wiped")),
        "{report:?}"
    );
    let after_first = entries(&dock, &ledger).await;
    assert_eq!(
        count(&after_first, "segment.wiped"),
        0,
        "wiped while unplugged"
    );
    assert_eq!(count(&after_first, "segment.verified"), files.files.len());
    dock.undock("usb-1-1", &report).await;

    // Plugged back in: the same files, still there, are wiped now.
    rec.set_plugged(true);
    let report = docking(&dock, &rec, "usb-1-1").await.await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(util::remaining(&site.path("vol")).is_empty());
    dock.undock("usb-1-1", &report).await;
    let all = entries(&dock, &ledger).await;
    let manifests = util::check_segment_entries(&all, true);
    assert_eq!(manifests.len(), files.files.len());
    assert_eq!(count(&all, "recorder.docked"), 2);
    assert_eq!(count(&all, "recorder.undocked"), 2);
    // Every acknowledgement written back into the journal: drain (in
    // `entries`) waits for them, not only for an empty queue.
    assert!(dock.recorder_done(ID).unwrap());
    stop.cancel();
    pump.await.unwrap();
    ledger.close().await;
}

/// The recorder is pulled out right after the dock removed a file, before
/// the dock saw it leave: no `segment.wiped` for anything, since no removal
/// is known to have reached the recorder. At the replug, one removed file
/// is back (a removal on a stale mount that never reached the medium),
/// another stays gone: the first is removed again, the second counts as
/// wiped, the untouched ones are wiped — each once, none reported as "on the
/// recorder again".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_right_after_a_removal_the_next_docking_decides() {
    let (site, files, rec) = site_with_recorder();
    let media = site.path("vol/DCIM/100MEDIA");
    let kept: BTreeMap<String, (Vec<u8>, SystemTime)> = files
        .files
        .keys()
        .map(|n| {
            let p = media.join(n);
            let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
            (n.clone(), (std::fs::read(&p).unwrap(), mtime))
        })
        .collect();
    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let ledger = assembled.local_ledger.unwrap();
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());

    rec.unplug_after_removals(1);
    let report = docking(&dock, &rec, "usb-1-2").await.await.unwrap();
    assert!(report.cancelled, "{report:?}");
    let left = util::remaining(&site.path("vol"));
    let removed: Vec<&String> = kept.keys().filter(|n| !left.contains(n)).collect();
    assert!(!removed.is_empty(), "nothing was removed: {report:?}");
    let after_first = entries(&dock, &ledger).await;
    assert_eq!(
        count(&after_first, "segment.wiped"),
        0,
        "a removal that may not have reached the recorder was recorded as a wipe"
    );
    assert!(
        steps(&dock).iter().all(|s| *s == Step::Wiping),
        "{:?}",
        steps(&dock)
    );
    dock.undock("usb-1-2", &report).await;

    // The first removed file comes back, byte for byte, with its time.
    let (back, (bytes, mtime)) = kept.get_key_value(removed[0]).unwrap();
    let path = media.join(back);
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(*mtime)
        .unwrap();
    assert!(Path::new(&path).exists());

    rec.set_plugged(true);
    let report = docking(&dock, &rec, "usb-1-2").await.await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(
        util::remaining(&site.path("vol")).is_empty(),
        "{:?}",
        util::remaining(&site.path("vol"))
    );
    dock.undock("usb-1-2", &report).await;
    let all = entries(&dock, &ledger).await;
    let manifests = util::check_segment_entries(&all, true);
    assert_eq!(manifests.len(), files.files.len());
    // Every acknowledgement written back into the journal: drain (in
    // `entries`) waits for them, not only for an empty queue.
    assert!(dock.recorder_done(ID).unwrap());
    stop.cancel();
    pump.await.unwrap();
    ledger.close().await;
}
