//! A recorder is never guessed, and a file is wiped only when its removal
//! is known:
//!
//! - the directory transport takes the recorder id from the caller or from
//!   footage names that all name one device, never from the path;
//! - a different volume at the same path does not resume another volume's
//!   journal records (and the first volume, docked again, finishes them);
//! - a file that was not removed (not listed: behind a link) never gets
//!   `segment.wiped`;
//! - a file listed again with the name, size and time of a wiped segment is
//!   compared by content: other bytes (a recorder whose clock was reset
//!   made a new clip) are a new segment beside the stored one, the same
//!   bytes (a removal that never reached the medium) are removed again and
//!   recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use custos_core::entry::Entry;
use custos_dock::journal::Step;
use custos_dock::usb::simulated::SimulatedRecorder;
use custos_dock::{DirectoryTransport, Dock, SessionReport, UsbTransport};
use custos_ledger::Ledger;
use tokio_util::sync::CancellationToken;

use crate::util::{self, Site};

struct InProcess {
    site: Site,
    dock: Arc<Dock>,
    ledger: Ledger,
    stop: CancellationToken,
    pump: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    async fn new(extra_dock: &str) -> InProcess {
        let site = Site::new();
        site.write_config("file://./data/objects", "127.0.0.1:0", None, extra_dock);
        let assembled = custos_cli::in_process::assemble(&site.config())
            .await
            .unwrap();
        InProcess {
            site,
            dock: assembled.dock.clone(),
            ledger: assembled.local_ledger.unwrap(),
            stop: CancellationToken::new(),
            pump: None,
        }
    }

    fn start_pump(&mut self) {
        self.pump = Some(self.dock.start(self.stop.clone()));
    }

    async fn dock_dir(
        &self,
        root: &Path,
        profile: Option<&str>,
        recorder_id: Option<&str>,
    ) -> SessionReport {
        let transport = DirectoryTransport::new(
            root,
            self.dock.profiles().clone(),
            profile.map(str::to_owned),
            recorder_id.map(str::to_owned),
            None,
        );
        let (_t, report) = self
            .dock
            .ingest(
                "slot-i",
                Box::new(transport),
                CancellationToken::new(),
                Some(Instant::now() + Duration::from_secs(120)),
            )
            .await;
        if report.recorder_id.is_some() {
            self.dock.undock("slot-i", &report).await;
        }
        report
    }

    async fn entries(&self) -> Vec<Entry> {
        assert!(
            self.dock
                .drain(Some(Instant::now() + Duration::from_secs(30)), &self.stop)
                .await,
            "events still pending"
        );
        self.ledger
            .entries(0, None)
            .unwrap()
            .iter()
            .map(util::parse_line)
            .filter(|e| e.actor.kind == custos_core::entry::ActorKind::Dock)
            .collect()
    }

    fn steps(&self, recorder: &str) -> Vec<Step> {
        self.dock
            .journal()
            .segments_of(recorder)
            .unwrap()
            .iter()
            .map(|r| r.step)
            .collect()
    }

    async fn close(mut self) {
        self.stop.cancel();
        if let Some(p) = self.pump.take() {
            p.await.unwrap();
        }
        self.ledger.close().await;
    }
}

fn count(entries: &[Entry], action: &str) -> usize {
    entries.iter().filter(|e| e.action == action).count()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Write `bytes` at `path` with modification time `mtime`.
fn write_with_time(path: &Path, bytes: &[u8], mtime: SystemTime) {
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_id_is_never_taken_from_the_path() {
    let mut t = InProcess::new("").await;
    t.start_pump();
    // Plain names that name no device, in a folder named like a recorder.
    let root = t.site.path("REC-FROM-PATH");
    let media = root.join("DCIM/100MEDIA");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("VID_0001.MP4"), util::noise(5_000, 1)).unwrap();
    std::fs::write(media.join("VID_0002.MP4"), util::noise(6_000, 2)).unwrap();

    let report = t.dock_dir(&root, None, None).await;
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("--recorder-id"), "{report:?}");
    assert_eq!(report.recorder_id, None, "{report:?}");
    assert_eq!(util::remaining(&root).len(), 2);

    // Names of two devices in one volume: refused, not a majority vote.
    let mixed = t.site.path("mixed");
    util::recorder(&mixed, "SIM0401", "100401", 0, &[3_000, 3_100], 401);
    util::recorder(&mixed, "SIM0402", "100402", 0, &[3_200], 402);
    let report = t.dock_dir(&mixed, Some("simulated"), None).await;
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains("2 devices") && error.contains("--recorder-id"),
        "{report:?}"
    );
    assert!(t.entries().await.is_empty());

    // With the id given, the same folder docks under that id.
    let report = t.dock_dir(&root, None, Some("REC-7")).await;
    assert!(report.is_complete(), "{report:?}");
    let entries = t.entries().await;
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), 2);
    assert!(manifests.values().all(|m| m.recorder.id == "REC-7"));
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_volume_at_the_same_path_does_not_resume_the_first_ones_records() {
    let mut t = InProcess::new("").await;
    const ID: &str = "SIM0500";
    let path = t.site.path("slot");
    let a = util::recorder(&path, ID, "100500", 0, &[10_000, 20_000], 500);

    // Volume A: stored and verified, the ledger's answers held back (no
    // pump yet), then the docking ends before the wipe.
    let session = CancellationToken::new();
    let first = {
        let dock = t.dock.clone();
        let transport = DirectoryTransport::new(
            &path,
            dock.profiles().clone(),
            Some("simulated".into()),
            None,
            None,
        );
        let session = session.clone();
        tokio::spawn(async move {
            let deadline = Some(Instant::now() + Duration::from_secs(120));
            dock.ingest("slot-i", Box::new(transport), session, deadline)
                .await
                .1
        })
    };
    wait_for(
        "volume A's segments at Verified",
        Duration::from_secs(60),
        || {
            let s = t.steps(ID);
            s.len() == 2 && s.iter().all(|s| *s == Step::Verified)
        },
    )
    .await;
    session.cancel();
    let report = first.await.unwrap();
    assert!(report.cancelled, "{report:?}");
    t.dock.undock("slot-i", &report).await;
    t.start_pump();
    t.entries().await;

    // Volume B at the same path, a recorder with the same device id.
    let a_away = t.site.path("slot-A");
    std::fs::rename(&path, &a_away).unwrap();
    let b = util::recorder(&path, ID, "100501", 0, &[15_000], 501);
    let report = t.dock_dir(&path, Some("simulated"), None).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.segments, b.files.len(), "{report:?}");
    let steps = t.steps(ID);
    assert_eq!(
        steps.iter().filter(|s| **s == Step::Verified).count(),
        2,
        "volume A's records were resumed on volume B: {steps:?}"
    );
    assert_eq!(count(&t.entries().await, "segment.wiped"), 1);

    // Volume A comes back: its records finish, its files are wiped.
    std::fs::rename(&path, t.site.path("slot-B")).unwrap();
    std::fs::rename(&a_away, &path).unwrap();
    let report = t.dock_dir(&path, Some("simulated"), None).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(util::remaining(&path).is_empty());
    let entries = t.entries().await;
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), a.files.len() + b.files.len());
    t.close().await;
}

fn usb(dock: &Dock, rec: &SimulatedRecorder) -> Box<UsbTransport> {
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

async fn dock_usb(dock: &Arc<Dock>, rec: &SimulatedRecorder) -> SessionReport {
    let (_t, report) = dock
        .ingest(
            "usb-1-9",
            usb(dock, rec),
            CancellationToken::new(),
            Some(Instant::now() + Duration::from_secs(120)),
        )
        .await;
    dock.undock("usb-1-9", &report).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_was_not_listed_is_never_counted_wiped() {
    const ID: &str = "SIM0061";
    let mut t = InProcess::new("unlock_password = \"s3cret\"\n").await;
    let vol = t.site.path("vol");
    let files = util::recorder(&vol, ID, "100261", 0, &[30_000, 40_000], 61);
    let rec = SimulatedRecorder::new(ID, "100261", b"s3cret", vol.clone(), 0);

    // Every segment verified and at Wiping, none removed: the recorder
    // left before the wipe (as in wipe_unplug.rs).
    let first = {
        let dock = t.dock.clone();
        let rec = rec.clone();
        tokio::spawn(async move { dock_usb(&dock, &rec).await })
    };
    wait_for("every segment at Verified", Duration::from_secs(60), || {
        let s = t.steps(ID);
        s.len() == files.files.len() && s.iter().all(|s| *s == Step::Verified)
    })
    .await;
    rec.set_plugged(false);
    t.start_pump();
    let report = first.await.unwrap();
    assert!(report.cancelled, "{report:?}");
    assert!(t.steps(ID).iter().all(|s| *s == Step::Wiping));

    // Back, but its folder is now a link to the same files elsewhere on
    // the volume: the listing does not follow it, so nothing is listed.
    let media = vol.join("DCIM/100MEDIA");
    let moved: PathBuf = vol.join("ELSEWHERE");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::rename(&media, moved.join("100MEDIA")).unwrap();
    std::os::unix::fs::symlink("../ELSEWHERE/100MEDIA", &media).unwrap();
    rec.set_plugged(true);
    let report = dock_usb(&t.dock, &rec).await;
    assert!(!report.is_complete(), "{report:?}");
    assert_eq!(report.failed.len(), files.files.len(), "{report:?}");
    assert!(
        report
            .failed
            .iter()
            .all(|(_, why)| why.contains("not counted as wiped")),
        "{report:?}"
    );
    assert_eq!(
        count(&t.entries().await, "segment.wiped"),
        0,
        "segment.wiped for files that were never removed"
    );
    assert_eq!(
        std::fs::read_dir(moved.join("100MEDIA")).unwrap().count(),
        files.files.len()
    );

    // The folder put back: listed, removed, recorded.
    std::fs::remove_file(&media).unwrap();
    std::fs::rename(moved.join("100MEDIA"), &media).unwrap();
    let report = dock_usb(&t.dock, &rec).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(util::remaining(&vol).is_empty());
    let entries = t.entries().await;
    assert_eq!(
        util::check_segment_entries(&entries, true).len(),
        files.files.len()
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_with_a_wiped_segments_name_size_and_time_is_compared_by_content() {
    const ID: &str = "SIM0600";
    let mut t = InProcess::new("").await;
    t.start_pump();
    let root = t.site.path("rec");
    let files = util::recorder(&root, ID, "100600", 0, &[40_000], 600);
    let name = files.files.keys().next().unwrap().clone();
    let path = root.join("DCIM/100MEDIA").join(&name);
    let first = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();

    let report = t.dock_dir(&root, Some("simulated"), None).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(!path.exists());

    // A recorder whose clock and counter were reset records a new clip
    // with the same name, size and time: new evidence.
    let second = util::noise(first.len(), 6001);
    assert_ne!(second, first);
    write_with_time(&path, &second, mtime);
    let report = t.dock_dir(&root, Some("simulated"), None).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(!path.exists(), "the new clip was left on the recorder");
    let entries = t.entries().await;
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let objects = t.site.path("data/objects");
    let mut stored: Vec<Vec<u8>> = manifests
        .values()
        .map(|m| std::fs::read(objects.join(&m.object.key)).unwrap())
        .collect();
    stored.sort();
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(stored, want, "each segment's object holds its own bytes");
    let keys: std::collections::BTreeSet<_> = manifests.values().map(|m| &m.object.key).collect();
    assert_eq!(keys.len(), 2);
    for m in manifests.values() {
        assert!(m.original_name.to_string_lossy().ends_with(&name));
    }

    // The first clip's very bytes turn up again (a removal that never
    // reached the medium): removed again, and on the record.
    write_with_time(&path, &first, mtime);
    let report = t.dock_dir(&root, Some("simulated"), None).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(!path.exists());
    let entries = t.entries().await;
    assert_eq!(count(&entries, "segment.ingested"), 2);
    let first_segment = manifests
        .iter()
        .find(|(_, m)| {
            m.digests.sha256.to_string() == format!("sha256:{}", util::sha256_hex(&first))
        })
        .map(|(id, _)| id.clone())
        .unwrap();
    let wiped: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.action == "segment.wiped" && e.subject == first_segment)
        .collect();
    assert_eq!(wiped.len(), 2, "{wiped:?}");
    assert_eq!(wiped[1].details["again"], true);
    t.close().await;
}
