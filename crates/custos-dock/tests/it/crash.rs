//! `kill -9` of `custos dock ingest` at random instants during a
//! multi-segment ingest into a real Garage node with a real ledger process,
//! restarting it each time. After every kill: nothing that left the
//! recorder lacks its `segment.verified` entry and its stored bytes. At the
//! end: every segment in storage exactly once, exactly one
//! `segment.ingested` (and verified, and wiped) entry per segment, in order.
//!
//! `CUSTOS_CRASH_INSTANTS` sets the number of kills (default 6, at least 5;
//! the full run is 20) and `CUSTOS_CRASH_SEED` the random seed
//! (printed, to replay a failure).
//!
//! Every run names the recorder (`--recorder-id`), as an operator resuming
//! it would: once a run has wiped the last file, no footage name is left
//! to tell which recorder the folder is.

use std::time::{Duration, Instant};

use custos_testsupport::Garage;

use crate::util;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_at_random_instants_then_resume() {
    let garage = Garage::start().unwrap();
    let (site, config, ledger, audit) = util::remote_site(&garage, "");
    let instants: usize = std::env::var("CUSTOS_CRASH_INSTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .max(5);
    // About two segments of work per kill, so that the kills land while
    // there is work to interrupt; several above the 5 MiB part size, so
    // that kills also land inside multipart uploads.
    let sizes = [
        300_000, 6_500_000, 1_200_000, 11_000_000, 40_000, 7_000_000, 2_500_000, 12_000_000,
        900_000, 5_300_000,
    ];
    let blobs: Vec<usize> = sizes.iter().copied().cycle().take(2 * instants).collect();
    let files = util::recorder(&site.path("rec"), "SIM0001", "100234", 2, &blobs, 11);
    let seed: u64 = std::env::var("CUSTOS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {instants} kills, CUSTOS_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut finished_early = 0;
    // A run may open a new docking only if it starts with the last one
    // closed (`recorder.undocked` in the journal): count those runs.
    let mut may_dock = 0;
    for i in 0..instants {
        may_dock += usize::from(docking_closed(&site.path("data/dock/journal")));
        // Process start-up takes ~0.2 s; kill somewhere in the next second
        // or so, so that kills land in every step over the runs.
        let delay = Duration::from_millis(150 + rng.next() % 1100);
        let mut child = util::dock_ingest(&config, &files.root, &garage)
            .args(["--recorder-id", "SIM0001"])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if let Ok(Some(status)) = child.try_wait() {
            finished_early += 1;
            eprintln!("kill {i}: the run had already ended ({status})");
        } else {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let entries = util::entries(&ledger.url, &audit);
        let stored = util::bucket(&garage);
        util::check_nothing_lost(&files, &entries, &stored);
        eprintln!(
            "kill {i} after {delay:?}: {} left on the recorder, {} entries, {} objects",
            util::remaining(&files.root).len(),
            entries.len(),
            stored.len()
        );
    }
    assert!(
        finished_early < instants,
        "every run finished before its kill: the test killed nothing"
    );

    may_dock += usize::from(docking_closed(&site.path("data/dock/journal")));
    let out = util::dock_ingest(&config, &files.root, &garage)
        .args(["--recorder-id", "SIM0001"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the last run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("crash test took {:?}", started.elapsed());

    assert!(util::remaining(&files.root).is_empty());
    let entries = util::entries(&ledger.url, &audit);
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), files.files.len());
    let stored = util::bucket(&garage);
    assert_eq!(
        stored.len(),
        2 * files.files.len(),
        "segments and manifests only: {stored:?}"
    );
    for (name, sha) in &files.files {
        let copies = stored.values().filter(|s| *s == sha).count();
        assert_eq!(copies, 1, "{name} is in storage {copies} times");
        let m = manifests
            .values()
            .find(|m| util::name_text(&m.original_name).ends_with(name.as_str()))
            .unwrap();
        assert_eq!(&stored[&m.object.key], sha);
        assert!(stored.contains_key(&format!("{}.manifest.json", m.object.key)));
    }
    // One docking however many restarts: another only where a run started
    // after the last docking was closed (a run that emptied the recorder
    // and recorded the undocking, whether it ended before its kill or not).
    let docked = entries
        .iter()
        .filter(|e| e.action == "recorder.docked")
        .count();
    let undocked = entries
        .iter()
        .filter(|e| e.action == "recorder.undocked")
        .count();
    assert_eq!(docked, undocked);
    assert!(
        docked <= may_dock,
        "{docked} dockings, {may_dock} runs started with no open docking"
    );
    drop(ledger);
}

/// Whether the dock's journal in `data_dir` has no open docking (none yet,
/// or the last one's undocking recorded). Read between runs, while no dock
/// process holds the journal.
fn docking_closed(data_dir: &std::path::Path) -> bool {
    if !data_dir.exists() {
        return true;
    }
    let journal = custos_dock::journal::Journal::open(data_dir).unwrap();
    journal.all_sessions().unwrap().iter().all(|s| !s.is_open())
}
