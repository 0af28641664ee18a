//! `custos demo` end to end: real ffmpeg clips, the real dock ingest, export
//! and offline verification, as the README's run command does it (with fewer
//! and shorter clips).

use std::process::Command;

#[test]
fn demo_runs_start_to_finish_and_leaves_a_verifiable_bundle() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = Command::new(exe)
        .args(["demo", "--clips", "2", "--seconds", "3", "--workdir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Custos demo done"), "{stdout}");
    assert!(dir.join("custos.toml").is_file());
    let bundle = dir.join("export.tar");
    assert!(bundle.is_file());
    // Every clip was wiped from the recorder after verification.
    let left: Vec<_> = std::fs::read_dir(dir.join("recorder/DCIM/100MEDIA"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "clips left on the recorder: {left:?}");

    let ledger_pub = dir.join("keys/ledger.key.pub");
    let verify = |path: &std::path::Path| {
        Command::new(exe)
            .args(["verify", "bundle"])
            .arg(path)
            .arg("--ledger-key")
            .arg(&ledger_pub)
            .output()
            .unwrap()
    };
    assert_eq!(verify(&bundle).status.code(), Some(0));

    // One byte of footage changed: the same command now says invalid.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("an MP4 payload in the bundle")
        + 64;
    bytes[at] ^= 0x01;
    let tampered = tmp.path().join("tampered.tar");
    std::fs::write(&tampered, bytes).unwrap();
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("footage/"));

    // A second demo in the same directory is refused, changing nothing.
    let again = Command::new(exe)
        .args(["demo", "--workdir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(verify(&bundle).status.code(), Some(0));
}
