//! A site over TLS with client certificates: the ledger serves HTTPS with
//! a certificate of the site's own CA and asks docks for their station
//! certificate (`tls_client_ca`); `custos dock ingest` docks a recorder over
//! mutual TLS into Garage, `custos export` fetches a bundle over HTTPS,
//! and the bundle and the log verify. The same dock configuration without
//! its station certificate appends nothing.

use crate::harness::{ok, Site, SiteOptions};
use crate::ingest::segment_ids;

#[test]
fn a_dock_ingests_over_mutual_tls_and_its_token_alone_is_refused() {
    let site = Site::start(SiteOptions {
        tls: true,
        ..SiteOptions::default()
    });
    assert!(site.ledger_url().starts_with("https://"));
    let ca = site.ca.clone().expect("a site CA");
    let size_before = site.size();

    // With its certificate: docked, verified, wiped.
    let rec = site.recorder("DSJT0001", "070707", 2, 3);
    let out = site.dock_ingest(&rec).output().unwrap();
    let stdout = ok("custos dock ingest over mutual TLS", &out);
    assert!(stdout.contains("0 left on the recorder"), "{stdout}");
    assert!(Site::files_on(&rec).is_empty());
    assert!(site.size() > size_before);

    // The independent checkers read the ledger over HTTPS too (Python's
    // urllib, trusting the site CA).
    site.check_everything(&[&rec], 2, &[]);

    // A bundle over HTTPS ([client] ledger_ca), verified offline.
    let bundle = site.path("tls.tar");
    let mut export = site.custos();
    export
        .args(["export", "--reason", "e2e tls", "--config"])
        .arg(&site.config)
        .arg("--out")
        .arg(&bundle);
    for segment in segment_ids(&site) {
        export.args(["--segment", &segment]);
    }
    let out = export.output().unwrap();
    ok("custos export over https", &out);
    let out = site
        .custos()
        .args(["verify", "bundle"])
        .arg(&bundle)
        .arg("--ledger-key")
        .arg(site.ledger_key())
        .output()
        .unwrap();
    ok("custos verify bundle", &out);

    // The auditor reads the whole log over HTTPS without a certificate.
    let out = site
        .custos()
        .args([
            "verify",
            "log",
            "--ledger",
            &site.ledger_url(),
            "--ledger-key",
        ])
        .arg(site.ledger_key())
        .arg("--ledger-ca")
        .arg(&ca)
        .args(["--token", &site.tokens.auditor])
        .output()
        .unwrap();
    ok("custos verify log over https", &out);
    let size_after = site.size();

    // The dock's token without the station certificate: nothing is
    // appended, and the dock says why in one line of its own.
    let stolen = site.path("stolen.toml");
    let config = std::fs::read_to_string(&site.config).unwrap();
    let without_cert: String = config
        .replace("data_dir = \"./dock\"", "data_dir = \"./dock-stolen\"")
        .lines()
        .filter(|l| {
            !l.starts_with("tls_cert = \"./pki/station")
                && !l.starts_with("tls_key = \"./pki/station")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without_cert, config);
    std::fs::write(&stolen, without_cert).unwrap();
    let rec_x = site.recorder("DSJX0009", "090909", 1, 2);
    let mut cmd = site.custos();
    cmd.args(["dock", "ingest", "--progress", "never", "--max-wait", "5"])
        .arg("--config")
        .arg(&stolen)
        .arg("--source")
        .arg(&rec_x);
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("client_certificate_required"),
        "the refusal is named: {all}"
    );
    assert_eq!(site.size(), size_after, "nothing was appended: {all}");
    assert_eq!(Site::files_on(&rec_x).len(), 1, "nothing was wiped");
}
