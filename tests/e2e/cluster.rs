//! The S3 cluster as the scale-out store: a three-node Garage that keeps
//! three replicas of every object (writes and reads need two). A storage
//! node is killed (SIGKILL) while a dock is ingesting: the ingest completes,
//! a second recorder docks with the node still down, and nothing is lost —
//! every independent check passes, `custos audit scrub` reads every object
//! back, an export of everything verifies. The node returns, Garage's repair
//! is asked for, and the cluster is whole again: with another node down, the
//! returned node's vote makes the quorum and every check still passes.

use std::time::Duration;

use crate::harness::{lose_node_mid_ingest, ok, wait_for, Site, SiteOptions};
use crate::ingest::segment_ids;
use crate::invariants::spawn_dock;

/// The node that is lost (not node 0, whose S3 port the clients use, as a
/// site's clients use the address of its load balancer).
const LOST: usize = 2;

#[test]
fn a_storage_node_lost_mid_ingest_loses_nothing_and_the_cluster_heals() {
    let mut site = Site::start(SiteOptions {
        storage_nodes: 3,
        ..SiteOptions::default()
    });
    let rec_a = site.recorder("DSJC0001", "070809", 3, 4);
    let rec_b = site.recorder("DSJD0002", "101112", 2, 3);

    // Kill a node once the dock has put something on the record, while it
    // still has segments to go.
    let base = site.size();
    let mut dock = spawn_dock(&site, &rec_a);
    lose_node_mid_ingest(&mut site, &mut dock, base, LOST);
    let status = wait_for(&mut dock, Duration::from_secs(180), "the dock's ingest");
    assert!(
        status.success(),
        "the ingest failed with a storage node down: {status:?} (log: {})",
        site.path("logs/dock.err").display()
    );
    // Another recorder, docked while the node is still down.
    let out = site.dock_ingest(&rec_b).output().unwrap();
    let stdout = ok("custos dock ingest with a node down", &out);
    assert!(stdout.contains("0 left on the recorder"), "{stdout}");
    for rec in [&rec_a, &rec_b] {
        assert!(Site::files_on(rec).is_empty(), "{:?}", Site::files_on(rec));
    }

    // Nothing lost, read through the two nodes left.
    site.check_everything(&[&rec_a, &rec_b], 5, &[]);
    let segments = segment_ids(&site);
    assert_eq!(segments.len(), 5, "{segments:?}");
    let bundle = site.path("cluster.tar");
    let mut export = site.custos();
    export
        .args(["export", "--reason", "cluster e2e", "--config"])
        .arg(&site.config)
        .arg("--out")
        .arg(&bundle);
    for s in &segments {
        export.args(["--segment", s]);
    }
    ok("custos export with a node down", &export.output().unwrap());
    ok(
        "custos verify bundle",
        &site
            .custos()
            .args(["verify", "bundle"])
            .arg(&bundle)
            .arg("--ledger-key")
            .arg(site.ledger_key())
            .output()
            .unwrap(),
    );
    // The scrub opens the ledger's store itself: with the service stopped.
    site.kill_ledger();
    let out = site
        .custos()
        .args(["audit", "scrub", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let scrub = ok("custos audit scrub with a node down", &out);
    eprint!("{scrub}");
    site.start_ledger();

    // The node returns: it missed the writes made while it was down, and
    // Garage's repair (asked for here, as an operator would) queues them
    // for it; block copies then follow on Garage's own schedule.
    site.garage.start_node(LOST).unwrap();
    site.garage.wait_connected(LOST).unwrap();
    let expected = site.garage.blocks_on(0).unwrap();
    assert!(!expected.is_empty(), "node 0 holds no blocks");
    let missing = expected
        .difference(&site.garage.blocks_on(LOST).unwrap())
        .count();
    assert!(
        missing > 0,
        "the lost node missed nothing: it was not lost mid-ingest"
    );
    site.garage.repair_node(LOST).unwrap();
    eprintln!(
        "the returned node lacked {missing} of {} blocks; repair queued",
        expected.len()
    );
    // The cluster is whole again: with another node down, reads need the
    // returned node's vote (two of three), and every check passes.
    site.garage.stop_node(1);
    site.check_everything(&[&rec_a, &rec_b], 5, &[]);
    site.garage.start_node(1).unwrap();
}
