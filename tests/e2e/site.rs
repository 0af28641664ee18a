//! A whole site, as an agency runs one: a ledger served over TLS by the
//! site's own CA, two docking stations that each present their station
//! certificate beside their token, a three-node Garage cluster, an auditor
//! reading over HTTPS. In one run the site rotates the ledger's key (added,
//! then the old one retired), loses a storage node while the second dock is
//! ingesting, backs its ledger up, loses the ledger's data_dir and restores
//! it, and keeps working: every bundle exported along the way still
//! verifies with the key that signed it, the log is consistent with every
//! checkpoint an auditor kept, and the independent checkers pass.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{lose_node_mid_ingest, ok, wait_for, Site, SiteOptions};
use crate::ingest::segment_ids;

/// The storage node that is lost (not node 0, whose S3 port the clients
/// use).
const LOST: usize = 1;

#[test]
fn a_site_rotates_its_key_loses_a_node_restores_its_ledger_and_every_bundle_verifies() {
    let mut site = Site::start(SiteOptions {
        tls: true,
        storage_nodes: 3,
        docks: 2,
        ..SiteOptions::default()
    });
    assert!(site.ledger_url().starts_with("https://"));
    let old_key = site.ledger_key();
    let new_key = site.path("keys/ledger-2.key.pub");

    // 1. Dock 1 docks a recorder; an export is made under the first key.
    let rec_a = site.recorder("DSJS0001", "310001", 2, 3);
    let out = site.dock_ingest_at(0, &rec_a).output().unwrap();
    assert!(ok("dock 1 ingest", &out).contains("0 left on the recorder"));
    let kept_before_rotation = site.keep_checkpoint("kept-1");
    let bundle_1 = export(&site, "site-1.tar", &segment_ids(&site));
    verify_bundle(&site, &bundle_1, &[&old_key]);

    // 2. The ledger's key is rotated: a new key signs beside the old one.
    ok(
        "custos keygen (the new ledger key)",
        &site
            .custos()
            .args(["keygen", "--name", "ledger", "--out"])
            .arg(site.path("keys/ledger-2.key"))
            .output()
            .unwrap(),
    );
    site.kill_ledger();
    site.set_ledger_key_files(&["./keys/ledger-2.key", "./keys/ledger.key"]);
    site.start_ledger();
    site.ledger_keys.push(new_key.clone());

    // 3. Dock 2 docks a recorder, and a storage node is lost mid-ingest.
    let rec_b = site.recorder("DSJS0002", "310002", 3, 4);
    let base = site.size();
    let mut dock_2 = site
        .dock_ingest_at(1, &rec_b)
        .stdout(Stdio::null())
        .stderr(log_file(&site, "dock-2.err"))
        .spawn()
        .unwrap();
    lose_node_mid_ingest(&mut site, &mut dock_2, base, LOST);
    let status = wait_for(&mut dock_2, Duration::from_secs(180), "dock 2's ingest");
    assert!(
        status.success(),
        "dock 2's ingest failed with a storage node down: {status:?} (log: {})",
        site.path("logs/dock-2.err").display()
    );
    assert!(
        Site::files_on(&rec_b).is_empty(),
        "{:?}",
        Site::files_on(&rec_b)
    );
    // A bundle made during the rotation verifies with either key alone.
    let bundle_2 = export(&site, "site-2.tar", &segment_ids(&site));
    verify_bundle(&site, &bundle_2, &[&old_key]);
    verify_bundle(&site, &bundle_2, &[&new_key]);

    // 4. The old key is retired; its last checkpoints stay the auditor's.
    site.kill_ledger();
    site.set_ledger_key_files(&["./keys/ledger-2.key"]);
    site.start_ledger();
    let kept_after_rotation = site.keep_checkpoint("kept-2");

    // 5. An online backup through the API (an admin's token), then the
    // ledger's data_dir is lost.
    let backup = site.path("site.backup");
    let out = site
        .custos()
        .env("CUSTOS_CLIENT_TOKEN", &site.tokens.admin)
        .args(["ledger", "backup", "--config"])
        .arg(&site.config)
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    ok("custos ledger backup over https", &out);
    let size_at_backup = site.size();
    site.kill_ledger();
    std::fs::remove_dir_all(site.path("ledger")).unwrap();

    // 6. Restore. A checkpoint kept before the rotation is signed only by
    // the retired key: without that key it cannot be opened, and nothing is
    // restored; with it, the restored log is checked against both.
    let restore = |retired: bool| {
        let mut cmd = site.custos();
        cmd.args(["ledger", "restore", "--config"])
            .arg(&site.config)
            .arg(&backup)
            .arg("--checkpoint")
            .arg(&kept_before_rotation)
            .arg("--checkpoint")
            .arg(&kept_after_rotation);
        if retired {
            cmd.arg("--retired-key").arg(&old_key);
        }
        cmd.output().unwrap()
    };
    let refused = restore(false);
    assert!(
        !refused.status.success(),
        "a restore without the retired key"
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("kept-1.checkpoint"),
        "names the checkpoint: {why}"
    );
    assert!(
        !is_filled(&site.path("ledger")),
        "a refused restore left files"
    );
    let restored = restore(true);
    ok("custos ledger restore", &restored);
    site.start_ledger();
    assert_eq!(site.size(), size_at_backup);

    // 7. The node returns; the site keeps working: dock 1 (its token and
    // key restored with the ledger, its station certificate checked) docks
    // another recorder.
    site.garage.start_node(LOST).unwrap();
    site.garage.wait_connected(LOST).unwrap();
    let rec_c = site.recorder("DSJS0003", "310003", 1, 3);
    let out = site.dock_ingest_at(0, &rec_c).output().unwrap();
    assert!(ok("dock 1 ingest after the restore", &out).contains("0 left on the recorder"));
    let segments = segment_ids(&site);
    assert_eq!(segments.len(), 6, "{segments:?}");
    let bundle_3 = export(&site, "site-3.tar", &segments);

    // 8. Every bundle verifies with the key that signed its checkpoint; the
    // retired key alone does not vouch for one signed after it left.
    verify_bundle(&site, &bundle_1, &[&old_key]);
    verify_bundle(&site, &bundle_2, &[&old_key]);
    verify_bundle(&site, &bundle_2, &[&new_key]);
    verify_bundle(&site, &bundle_3, &[&new_key]);
    let out = verify_bundle_output(&site, &bundle_3, &[&old_key]);
    assert!(
        !out.status.success(),
        "a bundle signed after the rotation verified with the retired key alone"
    );

    // 9. The auditor, over HTTPS: the whole log, consistent with both kept
    // checkpoints; and the published tiles, read without the API.
    let ca = site.ca.clone().expect("a site CA");
    let mut log = site.custos();
    log.args(["verify", "log", "--ledger", &site.ledger_url()])
        .arg("--ledger-ca")
        .arg(&ca)
        .args(["--token", &site.tokens.auditor]);
    for key in [&new_key, &old_key] {
        log.arg("--ledger-key").arg(key);
    }
    for kept in [&kept_before_rotation, &kept_after_rotation] {
        log.arg("--checkpoint").arg(kept);
    }
    eprint!(
        "{}",
        ok("custos verify log over https", &log.output().unwrap())
    );
    let tiles = site
        .custos()
        .args(["verify", "log", "--tiles"])
        .arg(site.path("ledger-tiles"))
        .arg("--ledger-key")
        .arg(&new_key)
        .output()
        .unwrap();
    eprint!("{}", ok("custos verify log --tiles", &tiles));
    site.check_everything(
        &[&rec_a, &rec_b, &rec_c],
        6,
        &[kept_before_rotation, kept_after_rotation],
    );
}

fn log_file(site: &Site, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(site.path(&format!("logs/{name}")))
        .unwrap()
}

/// `custos export` of `segments` over HTTPS (the supervisor's token);
/// the bundle's path.
fn export(site: &Site, name: &str, segments: &[String]) -> PathBuf {
    let bundle = site.path(name);
    let mut cmd = site.custos();
    cmd.args(["export", "--reason", "site e2e", "--config"])
        .arg(&site.config)
        .arg("--out")
        .arg(&bundle);
    for s in segments {
        cmd.args(["--segment", s]);
    }
    ok(&format!("custos export {name}"), &cmd.output().unwrap());
    bundle
}

fn verify_bundle_output(site: &Site, bundle: &Path, keys: &[&Path]) -> std::process::Output {
    let mut cmd = site.custos();
    cmd.args(["verify", "bundle"]).arg(bundle);
    for key in keys {
        cmd.arg("--ledger-key").arg(key);
    }
    cmd.output().unwrap()
}

fn verify_bundle(site: &Site, bundle: &Path, keys: &[&Path]) {
    let out = verify_bundle_output(site, bundle, keys);
    ok(
        &format!("custos verify bundle {} with {keys:?}", bundle.display()),
        &out,
    );
}

/// Whether `dir` exists and holds anything.
fn is_filled(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}
