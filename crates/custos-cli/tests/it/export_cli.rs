//! `custos export` on a real ledger directory and object store, in process
//! (service stopped) and through a running `custos ledger serve`; each
//! bundle then passes `custos verify bundle --ledger-key`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use custos_core::digest::{Digest, MultiHasher};
use custos_core::keys::SigningKey;
use custos_ledger::{Ledger, LedgerOptions};
use custos_testsupport::fixtures::{dock_key, ingest_event_with, stored_manifest};
use serde_json::json;

use crate::util::*;

const ORIGIN: &str = "export-cli.test/ledger";

/// Write `size` bytes of a per-segment pattern to `path` in 1 MiB chunks,
/// returning their SHA-256.
fn write_footage(path: &Path, seed: u8, size: u64) -> Digest {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = MultiHasher::sha256();
    let mut chunk: Vec<u8> = (0..1u32 << 20)
        .map(|n| (n.wrapping_mul(31) as u8) ^ seed)
        .collect();
    let mut left = size;
    let mut round = 0u8;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        chunk[0] = round;
        round = round.wrapping_add(1);
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
    hasher.finalize().sha256
}

/// A configuration, a ledger key, and a ledger holding two ingested
/// segments whose footage is in the `file://` store.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_sizes(&[("seg-a", 50_000), ("seg-b", 50_000)])
    }

    fn with_sizes(segments: &[(&str, u64)]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let config = dir.path().join("custos.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\nurl = \"file://{}\"\n\n[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n",
                objects.display()
            ),
        )
        .unwrap();
        ok(&custos()
            .args(["keygen", "--out"])
            .arg(dir.path().join("ledger.key"))
            .output()
            .unwrap());
        let dock = dock_key();
        let dock_pub = dir.path().join("dock.pub");
        std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
        let dock_token = token(&config, "dock", "dock-01", Some(&dock_pub));

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let ledger = Ledger::open(
                LedgerOptions::new(dir.path().join("ledger"), ORIGIN),
                SigningKey::load(&dir.path().join("ledger.key")).unwrap(),
            )
            .unwrap();
            let caller = ledger.authenticate(&dock_token).unwrap();
            for (i, &(segment, size)) in segments.iter().enumerate() {
                let key = format!("rec-7/{segment}.mp4");
                let sha256 = write_footage(&objects.join(&key), i as u8, size);
                let m = stored_manifest(segment, size, sha256);
                let event = ingest_event_with(&dock, &m);
                ledger
                    .append_event(&caller, &event.to_json())
                    .await
                    .unwrap();
            }
            ledger.close().await;
        });
        Setup { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn verify(&self, bundle: &Path) -> Output {
        custos()
            .args(["verify", "bundle"])
            .arg(bundle)
            .arg("--ledger-key")
            .arg(self.path("ledger.key.pub"))
            .output()
            .unwrap()
    }
}

#[test]
fn an_in_process_export_verifies() {
    let s = Setup::new();
    let out = s.path("export.tar");
    let stdout = ok(&custos()
        .args(["export", "--config"])
        .arg(&s.config)
        .args(["--segment", "seg-a", "--segment", "seg-b", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("exported 2 segment(s)"), "{stdout}");
    assert!(!s.path("export.tar.partial").exists());
    let verified = s.verify(&out);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );

    // An unknown segment: a clear failure, no bundle, no partial file.
    let bad = s.path("bad.tar");
    let failed = custos()
        .args(["export", "--config"])
        .arg(&s.config)
        .args(["--segment", "nope", "--out"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(
        text(&failed.stderr).contains("nope"),
        "{}",
        text(&failed.stderr)
    );
    assert!(!bad.exists());
    assert!(!s.path("bad.tar.partial").exists());
}

#[test]
fn an_export_through_the_service_verifies() {
    let s = Setup::new();
    let reviewer = token(&s.config, "reviewer", "rev-1", None);
    let supervisor = token(&s.config, "supervisor", "sup-1", None);
    let mut serve = custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(&s.config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let (mut server, url) = custos_testsupport::serve_ledger(serve).unwrap();
    let out = s.path("remote.tar");
    let export_as = |token: &str| {
        custos()
            .args(["export", "--config"])
            .arg(&s.config)
            .args(["--segment", "seg-b", "--out"])
            .arg(&out)
            .env("CUSTOS_CLIENT_LEDGER_URL", &url)
            .env("CUSTOS_CLIENT_TOKEN", token)
            .output()
            .unwrap()
    };
    // A reviewer without an approval gets no footage through an export.
    let refused = export_as(&reviewer);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("approval_required"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!out.exists() && !s.path("remote.tar.partial").exists());
    let result = export_as(&supervisor);
    let _ = server.kill();
    let _ = server.wait();
    ok(&result);
    let verified = s.verify(&out);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}

/// Peak resident set of a process, in KiB (Linux `VmHWM`), while it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_large_export_streams_in_bounded_memory() {
    const SIZE: u64 = 512 << 20;
    let s = Setup::with_sizes(&[("seg-big", SIZE)]);
    let out = s.path("big.tar");
    let mut child = custos()
        .args(["export", "--config"])
        .arg(&s.config)
        .args(["--segment", "seg-big", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    ok(&child.wait_with_output().unwrap());
    eprintln!("custos export of {SIZE} bytes: peak RSS {peak} KiB");
    assert!(std::fs::metadata(&out).unwrap().len() > SIZE);
    assert!(
        peak < 96 * 1024,
        "exporting {SIZE} bytes of footage peaked at {peak} KiB resident"
    );
    let verified = s.verify(&out);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}

/// `custos export` of seg-a with the service stopped, into `name`.
fn export_seg_a(s: &Setup, name: &str) -> PathBuf {
    let out = s.path(name);
    ok(&custos()
        .args(["export", "--config"])
        .arg(&s.config)
        .args(["--segment", "seg-a", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    out
}

#[test]
fn a_later_export_cannot_be_passed_off_as_an_earlier_one() {
    // The second break, against the real binary and service:
    // export seg-a, place a hold on it, export it again; from the second
    // bundle remove the second export entry and the hold with their proofs.
    let s = Setup::new();
    let supervisor = token(&s.config, "supervisor", "sup-1", None);
    export_seg_a(&s, "first.tar");

    let mut serve = custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(&s.config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let (mut server, url) = custos_testsupport::serve_ledger(serve).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/segments/seg-a/hold"))
            .bearer_auth(&supervisor)
            .json(&json!({ "reason": "court order 17" }))
            .send()
            .await
            .unwrap()
            .status()
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.is_success(), "hold: {status}");

    let second = export_seg_a(&s, "second.tar");
    let verified = s.verify(&second);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );

    let mut members = crate::bundle_support::unpack(&std::fs::read(&second).unwrap());
    let lines = crate::bundle_support::entry_lines(&mut members);
    let seq_of = |line: &str| -> u64 {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i + 1 == lines.len() || line.contains("\"action\":\"hold.placed\"") {
            dropped.push(seq_of(line));
        } else {
            kept.push(line.clone());
        }
    }
    assert_eq!(dropped.len(), 2, "the hold and the second export entry");
    assert!(
        kept.last()
            .unwrap()
            .contains("\"action\":\"export.created\""),
        "the first export entry is now the last"
    );
    crate::bundle_support::set_entry_lines(&mut members, &kept);
    for seq in dropped {
        crate::bundle_support::remove(&mut members, &format!("proofs/{seq}.json"));
    }
    let doctored = s.path("doctored.tar");
    std::fs::write(&doctored, crate::bundle_support::pack(&members)).unwrap();
    let verified = s.verify(&doctored);
    let stderr = text(&verified.stderr);
    assert_eq!(
        verified.status.code(),
        Some(1),
        "{}{stderr}",
        text(&verified.stdout)
    );
    assert!(
        stderr.contains("INVALID: checkpoint: the checkpoint is for tree size"),
        "{stderr}"
    );
}
