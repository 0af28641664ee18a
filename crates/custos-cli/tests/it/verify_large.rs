//! Bundles far larger than memory budgets: the writer streams a 1 GiB
//! segment into a file, and `custos verify bundle` checks it, each with a
//! small peak RSS (Linux `VmHWM`, sampled from /proc for the child).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

const GIB: u64 = 1 << 30;

/// Peak resident set of a process, in KiB (Linux `VmHWM`), if it still runs.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_one_gib_bundle_streams_through_writer_and_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.tar");
    let before = peak_rss_kib("self").unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let ledger = crate::bundle_support::write_big_bundle(file, GIB);
    let grown = peak_rss_kib("self").unwrap().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "writing a 1 GiB bundle raised peak RSS by {grown} KiB"
    );
    assert!(std::fs::metadata(&path).unwrap().len() > GIB);

    let key = dir.path().join("ledger.pub");
    std::fs::write(&key, format!("{}\n", ledger.verifier_key())).unwrap();
    let (out, peak) = verify_sampled(&path, &key);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("big  footage/big.mp4  {GIB} bytes")),
        "{stdout}"
    );

    // The same command on a 16 MiB bundle: what the binary itself needs
    // (a debug build maps FFmpeg and friends), to compare with.
    let small = dir.path().join("small.tar");
    let file = std::io::BufWriter::new(std::fs::File::create(&small).unwrap());
    crate::bundle_support::write_big_bundle(file, 16 << 20);
    let (out, baseline) = verify_sampled(&small, &key);
    assert!(out.status.success());
    assert!(
        peak > 0 && baseline > 0,
        "the verifier was sampled while it ran"
    );
    assert!(
        peak < baseline + 16 * 1024,
        "verifying 1 GiB took a peak RSS of {peak} KiB, 16 MiB took {baseline} KiB"
    );
    eprintln!(
        "peak RSS: writer +{grown} KiB; verifier {peak} KiB for 1 GiB, {baseline} KiB for 16 MiB"
    );
}

/// Run `custos verify bundle` and sample its peak RSS until it exits.
fn verify_sampled(path: &std::path::Path, key: &std::path::Path) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["verify", "bundle"])
        .arg(path)
        .arg("--ledger-key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(&pid) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (child.wait_with_output().unwrap(), peak)
}
