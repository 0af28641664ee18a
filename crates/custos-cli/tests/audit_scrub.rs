//! `custos audit scrub` against a real Garage node: an honest store passes;
//! a byte flipped in one object and another object deleted (both through
//! object_store, behind Custos's back) are named, the exit code is 1, and
//! the findings and the summary are `audit.scrubbed` entries in the ledger.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use custos_core::digest::MultiHasher;
use custos_core::entry::Event;
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, Timestamp};
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::object_store::ObjectStore;
use custos_ledger::{Ledger, LedgerOptions};
use custos_testsupport::Garage;
use serde_json::{json, Map, Value};

const ORIGIN: &str = "audit-scrub.test/ledger";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Setup {
    garage: Garage,
    dir: tempfile::TempDir,
    config: PathBuf,
    objects: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn custos(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
        for var in ["CUSTOS_CLIENT_LEDGER_URL", "CUSTOS_CLIENT_TOKEN"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.garage.env());
        cmd
    }

    fn ok(&self, cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "exit {:?}\nstderr: {}\nstdout: {}\ngarage log: {}",
            out.status.code(),
            text(&out.stderr),
            text(&out.stdout),
            self.garage.log_path().display()
        );
        text(&out.stdout)
    }

    fn scrub(&self) -> Output {
        self.custos()
            .args(["audit", "scrub", "--config"])
            .arg(&self.config)
            .args(["--jobs", "2"])
            .output()
            .unwrap()
    }

    fn ledger(&self) -> Ledger {
        Ledger::open(
            LedgerOptions::new(self.dir.path().join("ledger"), ORIGIN),
            SigningKey::load(&self.dir.path().join("ledger.key")).unwrap(),
        )
        .unwrap()
    }

    /// Every entry of the log, decoded.
    fn entries(&self) -> Vec<Value> {
        let ledger = self.ledger();
        let lines = ledger.entries(0, None).unwrap();
        let out = lines
            .iter()
            .map(|l| serde_json::from_str(l.entry.get()).unwrap())
            .collect();
        self.rt.block_on(ledger.close());
        out
    }
}

/// Bytes that differ per segment and per offset.
fn footage(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(131) >> 3) as u8) ^ seed)
        .collect()
}

fn setup(segments: &[&str]) -> Setup {
    let garage = Garage::start().expect("Garage must be installed (scripts/install-deps)");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custos.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"{}\"\n\n[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n",
            garage.storage_url()
        ),
    )
    .unwrap();
    let objects = garage.object_store().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Setup {
        garage,
        dir,
        config,
        objects,
        rt,
    };
    s.ok(s
        .custos()
        .args(["keygen", "--out"])
        .arg(s.dir.path().join("ledger.key")));
    let dock = SigningKey::from_seed("dock-01", &[2; 32]).unwrap();
    let dock_pub = s.dir.path().join("dock.pub");
    std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
    let dock_token = s
        .ok(s
            .custos()
            .args(["token", "create", "--config"])
            .arg(&s.config)
            .args(["--role", "dock", "--name", "dock-01", "--key"])
            .arg(&dock_pub))
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let ledger = s.ledger();
    s.rt.block_on(async {
        let caller = ledger.authenticate(&dock_token).unwrap();
        for (i, &segment) in segments.iter().enumerate() {
            let key = format!("rec-7/{segment}.mp4");
            let bytes = footage(i as u8, 300_000 + i * 1000);
            let mut h = MultiHasher::sha256();
            h.update(&bytes);
            let sha256 = h.finalize().sha256;
            s.objects
                .put(&ObjectPath::from(key.as_str()), bytes.clone().into())
                .await
                .unwrap();
            let mut m: Manifest = serde_json::from_value(json!({
                "segment_id": segment,
                "recorder": {"id": "rec-7", "model": "BWC-9", "profile": "generic"},
                "officer_id": "officer-42",
                "dock": {"id": "dock-01", "clock_offset_ms": 0},
                "original_name": format!("{segment}.MP4"),
                "size": bytes.len(),
                "digests": {"sha256": format!("sha256:{}", "ab".repeat(32))},
                "recorded": {"start": "2026-03-01T07:00:00Z", "end": "2026-03-01T07:01:00Z", "source": "media"},
                "media": {"container": "mp4", "duration_ms": 60000, "streams": [], "damaged": null},
                "ingested_at": "2026-03-01T08:00:00Z",
                "object": {"url": s.garage.storage_url(), "key": key},
                "late": false
            }))
            .unwrap();
            m.digests.sha256 = sha256;
            let mut details = Map::new();
            details.insert(
                "manifest".into(),
                serde_json::to_value(m.sign(&dock).unwrap()).unwrap(),
            );
            let event = Event::new(
                "segment.ingested",
                segment,
                details,
                Timestamp::parse("2026-03-01T08:00:00Z").unwrap(),
            )
            .unwrap()
            .sign(&dock)
            .unwrap();
            ledger
                .append_event(&caller, &event.to_json())
                .await
                .unwrap();
        }
        ledger.close().await;
    });
    drop(ledger);
    s
}

fn scrub_entries(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["action"] == "audit.scrubbed")
        .collect()
}

fn key(segment: &str) -> ObjectPath {
    ObjectPath::from(format!("rec-7/{segment}.mp4").as_str())
}

#[test]
fn a_scrub_names_altered_and_missing_objects_and_records_them() {
    let s = setup(&["seg-a", "seg-b", "seg-c"]);

    // An honest store: every object matches, exit 0, one summary entry.
    let out = s.scrub();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("scrubbed 3 object(s): 3 ok, 0 missing, 0 altered"),
        "{stdout}"
    );
    let entries = s.entries();
    let first = scrub_entries(&entries);
    assert_eq!(first.len(), 1, "{first:?}");
    let summary = first[0];
    assert_eq!(summary["details"]["result"], "summary");
    assert_eq!(summary["details"]["checked"], 3);
    assert_eq!(summary["details"]["ok"], 3);
    assert_eq!(summary["details"]["findings"], json!([]));
    assert_eq!(summary["actor"]["kind"], "system");
    assert!(summary["subject"].as_str().unwrap().starts_with("scrub-"));

    // Behind Custos's back: one byte of seg-b flipped in place, seg-c deleted.
    s.rt.block_on(async {
        let mut bytes = s
            .objects
            .get(&key("seg-b"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[123_456] ^= 0x01;
        s.objects.put(&key("seg-b"), bytes.into()).await.unwrap();
        s.objects.delete(&key("seg-c")).await.unwrap();
    });

    let out = s.scrub();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let altered: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("ALTERED"))
        .collect();
    let missing: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("MISSING"))
        .collect();
    assert_eq!(altered.len(), 1, "{stdout}");
    assert!(
        altered[0].contains("segment seg-b (object rec-7/seg-b.mp4)"),
        "{stdout}"
    );
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(
        missing[0].contains("segment seg-c (object rec-7/seg-c.mp4)"),
        "{stdout}"
    );
    assert!(!stdout.contains("seg-a"), "{stdout}");
    assert!(
        stdout.contains("scrubbed 3 object(s): 1 ok, 1 missing, 1 altered"),
        "{stdout}"
    );

    let entries = s.entries();
    let all = scrub_entries(&entries);
    assert_eq!(all.len(), 4, "{all:?}");
    let (b, c, summary) = (all[1], all[2], all[3]);
    assert_eq!(b["subject"], "seg-b");
    assert_eq!(b["details"]["result"], "altered");
    assert_eq!(b["details"]["object_key"], "rec-7/seg-b.mp4");
    assert_ne!(
        b["details"]["actual_sha256"],
        b["details"]["expected_sha256"]
    );
    assert_eq!(c["subject"], "seg-c");
    assert_eq!(c["details"]["result"], "missing");
    assert_eq!(summary["details"]["result"], "summary");
    assert_eq!(summary["details"]["checked"], 3);
    assert_eq!(summary["details"]["ok"], 1);
    assert_eq!(summary["details"]["missing"], 1);
    assert_eq!(summary["details"]["altered"], 1);
    assert_eq!(summary["details"]["findings"], json!([b["seq"], c["seq"]]));
    assert_eq!(b["details"]["scrub_id"], summary["subject"]);

    // The finding joins the segment's custody record.
    let ledger = s.ledger();
    let custody = ledger.custody("seg-b").unwrap().unwrap();
    s.rt.block_on(ledger.close());
    assert!(
        custody
            .entries
            .iter()
            .any(|e| e.seq == b["seq"].as_u64().unwrap()),
        "the scrub's finding is not in seg-b's custody"
    );
}

#[test]
fn a_scrub_without_its_configuration_fails_on_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["audit", "scrub", "--config"])
        .arg(Path::new("/nonexistent/custos.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/custos.toml"), "{stderr}");
}
