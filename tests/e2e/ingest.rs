//! A shift's end: two recorders docked one after the other through
//! `custos dock ingest` against the ledger service and Garage; every
//! independent check passes; a bundle exported through the service verifies.
//! Then someone with the store's keys flips a byte of a stored object with
//! boto3: the independent store check and `custos verify bundle` on a new
//! export both name it. The signature and log checkers are shown to fail
//! too (a wrong key, a forged earlier checkpoint).

use std::ffi::OsString;

use crate::harness::{ok, Site, SiteOptions, DOCK_ID};

#[test]
fn docked_footage_passes_every_independent_check_and_tampering_is_caught() {
    let site = Site::start(SiteOptions::default());
    let rec_a = site.recorder("DSJA0001", "010203", 2, 3);
    let rec_b = site.recorder("DSJB0002", "040506", 1, 3);

    for rec in [&rec_a, &rec_b] {
        let out = site.dock_ingest(rec).output().unwrap();
        let stdout = ok("custos dock ingest", &out);
        assert!(stdout.contains("0 left on the recorder"), "{stdout}");
        assert!(
            Site::files_on(rec).is_empty(),
            "files left on {}: {:?}",
            rec.display(),
            Site::files_on(rec)
        );
    }
    let before_export = site.keep_checkpoint("before-export");
    site.check_everything(&[&rec_a, &rec_b], 3, &[]);

    // A bundle for court, built by the service, verifies offline.
    let bundle = site.path("all.tar");
    let segments = segment_ids(&site);
    assert_eq!(segments.len(), 3, "{segments:?}");
    let export = |out: &std::path::Path| {
        let mut cmd = site.custos();
        cmd.args(["export", "--reason", "e2e", "--config"])
            .arg(&site.config)
            .arg("--out")
            .arg(out);
        for s in &segments {
            cmd.args(["--segment", s]);
        }
        cmd.output().unwrap()
    };
    ok("custos export", &export(&bundle));
    let verify = |bundle: &std::path::Path| {
        site.custos()
            .args(["verify", "bundle"])
            .arg(bundle)
            .arg("--ledger-key")
            .arg(site.ledger_key())
            .output()
            .unwrap()
    };
    ok("custos verify bundle", &verify(&bundle));
    // The export is an entry, and the log is still one consistent tree.
    site.check(
        "check_log.py",
        &[
            "--ledger-key".into(),
            site.ledger_key().into(),
            "--earlier".into(),
            before_export.clone().into(),
        ],
    );

    // The checkers can fail: manifests checked against another key of the
    // dock's name, entries of a dock whose key was not given, and a kept
    // checkpoint (validly signed) that today's log does not extend.
    let impostor = site.path("keys/impostor.key");
    ok(
        "custos keygen (an impostor's key)",
        &site
            .custos()
            .args(["keygen", "--name", DOCK_ID, "--out"])
            .arg(&impostor)
            .output()
            .unwrap(),
    );
    let out = site.checker(
        "check_signatures.py",
        &[
            "--ledger-key".into(),
            site.ledger_key().into(),
            "--dock-key".into(),
            site.path("keys/impostor.key.pub").into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("no valid signature by {DOCK_ID}+")),
        "{out:?}"
    );
    let out = site.checker(
        "check_signatures.py",
        &[
            "--ledger-key".into(),
            site.ledger_key().into(),
            "--dock-key".into(),
            site.ledger_key().into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("whose key this check was not given"),
        "{out:?}"
    );
    let forged = site.path("forged.checkpoint");
    ok(
        "forge_checkpoint.py",
        &site.checker(
            "forge_checkpoint.py",
            &[
                "--key".into(),
                site.path("keys/ledger.key").into(),
                "--name".into(),
                "ledger".into(),
                "--from".into(),
                before_export.clone().into(),
                "--out".into(),
                forged.clone().into(),
            ],
        ),
    );
    let out = site.checker(
        "check_log.py",
        &[
            "--ledger-key".into(),
            site.ledger_key().into(),
            "--earlier".into(),
            forged.into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the log was rewritten"),
        "{out:?}"
    );

    // Tampering behind Custos's back, with boto3.
    let key = object_key_of(&site, &segments[0]);
    ok(
        "s3_flip_byte.py",
        &site.checker(
            "s3_flip_byte.py",
            &[
                "--bucket".into(),
                site.garage.bucket().into(),
                "--key".into(),
                key.clone().into(),
            ],
        ),
    );
    let mut args = site.store_args(&[&rec_a, &rec_b]);
    args.extend(["--segments".into(), OsString::from("3")]);
    let out = site.checker("check_store.py", &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&key) && stderr.contains("SHA-256"),
        "the store check does not name the tampered object:\n{stderr}"
    );

    let tampered = site.path("tampered.tar");
    ok("custos export", &export(&tampered));
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&segments[0]) || stderr.contains("footage/"),
        "custos verify bundle does not name the tampered footage:\n{stderr}"
    );
}

/// The segment ids in the ledger's catalogue, through the API with the
/// auditor's token (as the checkers read it).
pub(crate) fn segment_ids(site: &Site) -> Vec<String> {
    let out = site.checker("list_segments.py", &[]);
    let stdout = ok("list_segments.py", &out);
    stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect()
}

fn object_key_of(site: &Site, segment: &str) -> String {
    let out = site.checker("list_segments.py", &[]);
    let stdout = ok("list_segments.py", &out);
    stdout
        .lines()
        .find_map(|l| {
            let mut f = l.split('\t');
            (f.next() == Some(segment)).then(|| f.nth(1).unwrap().to_owned())
        })
        .unwrap()
}
