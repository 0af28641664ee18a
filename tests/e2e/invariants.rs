//! DESIGN.md's invariants under the failures of the field, with separate
//! processes and independent checkers: the dock killed with SIGKILL
//! mid-ingest (twice) and run again; the ledger service killed mid-run and
//! started again while the dock waits; a second, different file on a key
//! already taken. (crates/custos-dock/tests covers the same failures in one
//! process at every step of the journal; here the point is the real
//! processes and checks that share no code with Custos.)

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::harness::{ok, poll, wait_for, Site, SiteOptions};

/// Spawn `custos dock ingest` of `rec`, its output appended to logs/.
pub(crate) fn spawn_dock(site: &Site, rec: &Path) -> Child {
    let log = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(site.path(&format!("logs/{name}")))
            .unwrap()
    };
    site.dock_ingest(rec)
        .stdout(log("dock.out"))
        .stderr(log("dock.err"))
        .spawn()
        .unwrap()
}

/// Kill the dock (SIGKILL) as soon as the ledger has `more` entries beyond
/// `base`; panics if the dock finished first (the kill would prove nothing).
fn kill_dock_after(site: &Site, dock: &mut Child, base: u64, more: u64) {
    let mut exited = None;
    let reached = poll(Duration::from_secs(60), || {
        if let Some(status) = dock.try_wait().unwrap() {
            exited = Some(status);
            return true;
        }
        site.size() >= base + more
    });
    assert!(reached, "the dock made no progress in 60 s");
    assert!(
        exited.is_none(),
        "the dock finished ({exited:?}) before it could be killed mid-ingest"
    );
    dock.kill().unwrap();
    dock.wait().unwrap();
}

/// At any instant: every object in the bucket is an original recording (or
/// its manifest), and every file gone from the recorder is stored and has a
/// segment.verified entry.
fn check_nothing_lost_yet(site: &Site, rec: &Path) {
    let mut args = site.store_args(&[rec]);
    args.push("--partial".into());
    site.check("check_store.py", &args);
}

#[test]
fn dock_killed_mid_ingest_twice_resumes_with_every_segment_stored_once() {
    // One segment at a time, each a two-part multipart upload, so that the
    // kills land between and inside segments.
    let site = Site::start(SiteOptions {
        concurrency: 1,
        ..SiteOptions::default()
    });
    let rec = site.recorder("DSJK0003", "070809", 4, 2);
    let total = Site::files_on(&rec).len();

    let base = site.size();
    let mut dock = spawn_dock(&site, &rec);
    kill_dock_after(&site, &mut dock, base, 1);
    let left = Site::files_on(&rec).len();
    assert!(left > 0, "nothing was left to resume after the first kill");
    let first = site.keep_checkpoint("after-first-kill");
    check_nothing_lost_yet(&site, &rec);

    let base = site.size();
    let mut dock = spawn_dock(&site, &rec);
    kill_dock_after(&site, &mut dock, base, 3);
    let second = site.keep_checkpoint("after-second-kill");
    check_nothing_lost_yet(&site, &rec);

    let out = site.dock_ingest(&rec).output().unwrap();
    let stdout = ok("custos dock ingest after two kills", &out);
    assert!(stdout.contains("0 left on the recorder"), "{stdout}");
    assert!(
        Site::files_on(&rec).is_empty(),
        "{:?}",
        Site::files_on(&rec)
    );
    // Each segment stored once, one segment.ingested/verified/wiped each,
    // no multipart upload left open, the log only grew.
    site.check_everything(&[&rec], total, &[first, second]);
}

#[test]
fn ledger_killed_mid_run_the_dock_waits_then_delivers_in_order() {
    let mut site = Site::start(SiteOptions::default());
    let rec_a = site.recorder("DSJL0004", "101112", 1, 2);
    ok(
        "custos dock ingest",
        &site.dock_ingest(&rec_a).output().unwrap(),
    );
    let before = site.keep_checkpoint("before-outage");

    site.kill_ledger();
    let rec_b = site.recorder("DSJM0005", "131415", 2, 2);
    let mut dock = spawn_dock(&site, &rec_b);
    // The footage and its manifests reach the store while the ledger is
    // down: 2 objects for recorder A, 4 for B.
    let store = site.garage.object_store().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count = || {
        rt.block_on(async {
            use futures::TryStreamExt as _;
            store
                .list(None)
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .len()
        })
    };
    assert!(
        poll(Duration::from_secs(60), || count() >= 6),
        "recorder B's footage did not reach the store while the ledger was down"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        dock.try_wait().unwrap().is_none(),
        "the dock gave up while the ledger was down"
    );
    assert_eq!(
        Site::files_on(&rec_b).len(),
        2,
        "footage was wiped from the recorder without the ledger's acknowledgement"
    );

    site.start_ledger();
    let status = wait_for(&mut dock, Duration::from_secs(90), "the dock");
    assert!(
        status.success(),
        "the dock did not finish after the ledger came back: {status} (logs in {})",
        site.path("logs").display()
    );
    assert!(Site::files_on(&rec_b).is_empty());
    // Chain and tree intact across the kill, the checkpoint before it a
    // prefix of today's, the dock's events on the record in the order it
    // made them, each segment's steps in order.
    site.check_everything(&[&rec_a, &rec_b], 3, &[before]);
}

/// A recorder whose clock and file numbering were reset makes a clip with
/// the name, size and file time of one already stored and wiped (so the
/// same segment id and object key would follow). The stored object is
/// never replaced: the dock that wiped the first compares the bytes and
/// ingests the new clip as a new segment beside it; a dock without that
/// memory finds the key taken by other bytes and leaves the file.
#[test]
fn a_different_file_on_a_taken_key_never_replaces_the_stored_one() {
    let site = Site::start(SiteOptions::default());
    let rec = site.recorder("DSJN0006", "161718", 2, 2);
    let name = Site::files_on(&rec)[0].clone();
    let path = rec.join("DCIM/100MEDIA").join(&name);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let first = std::fs::read(&path).unwrap();
    ok(
        "custos dock ingest",
        &site.dock_ingest(&rec).output().unwrap(),
    );
    let before = site.keep_checkpoint("before-second-file");

    // Put a clip back at `path` with the first one's name, size and file
    // time but its own bytes, and keep a pristine copy of it for the
    // checkers under `originals/<label>/`.
    let reappear = |flip: usize, label: &str| {
        let mut bytes = first.clone();
        bytes[flip] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let copy = site.path(&format!("originals/{label}/DCIM/100MEDIA"));
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join(&name), &bytes).unwrap();
    };

    // The same dock, whose journal has the first as wiped: new evidence,
    // stored as a new segment beside the first, then wiped per policy.
    reappear(first.len() / 2, "DSJN0006-second");
    let out = site.dock_ingest(&rec).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stderr.contains("ingested as a new segment beside it"),
        "the dock does not say what it did:\n{stderr}"
    );
    assert!(
        Site::files_on(&rec).is_empty(),
        "the new clip was stored, so it is wiped: {out:?}"
    );
    // Three segments; every object in the bucket is one of the originals
    // byte for byte (so the first was not overwritten), each manifest's
    // digest is its object's.
    site.check_everything(&[&rec], 3, std::slice::from_ref(&before));
    let after = site.keep_checkpoint("after-second-file");

    // A dock with a fresh journal (a replaced disk, another station) does
    // not know the first was wiped: its upload finds the key taken by
    // other bytes and refuses, and the file stays on the recorder.
    reappear(first.len() / 3, "DSJN0006-third");
    let out = site
        .dock_ingest(&rec)
        .env("CUSTOS_DOCK_DATA_DIR", site.path("dock-fresh"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the dock did not refuse the second file: {out:?}"
    );
    assert!(
        stderr.contains("key") || stderr.contains("taken") || stderr.contains("other bytes"),
        "the refusal does not say why:\n{stderr}"
    );
    assert_eq!(
        Site::files_on(&rec),
        vec![name],
        "the refused file must stay on the recorder"
    );
    // The bucket still holds the first bytes at that key; the record has
    // one segment.ingested per segment.
    site.check_everything(&[&rec], 3, &[before, after]);
}
