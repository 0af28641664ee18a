//! The shared fixture of the tests that need a ledger whose footage is in a
//! real Garage bucket (`audit_scrub`, `retention_sweep`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use custos_core::digest::MultiHasher;
use custos_core::entry::Event;
use custos_core::keys::SigningKey;
use custos_core::manifest::{Manifest, Timestamp};
use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::object_store::{ObjectStore, ObjectStoreExt};
use custos_ledger::{Ledger, LedgerOptions};
use custos_testsupport::Garage;
use serde_json::{json, Map, Value};

pub(crate) const ORIGIN: &str = "garage-fixture.test/ledger";

pub(crate) use crate::util::text;

pub(crate) struct Setup {
    pub garage: Garage,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub objects: Arc<dyn ObjectStore>,
    pub rt: tokio::runtime::Runtime,
}

impl Setup {
    pub(crate) fn custos(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
        for var in ["CUSTOS_CLIENT_LEDGER_URL", "CUSTOS_CLIENT_TOKEN"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.garage.env());
        cmd
    }

    pub(crate) fn ok(&self, cmd: &mut Command) -> String {
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

    pub(crate) fn ledger(&self) -> Ledger {
        Ledger::open(
            LedgerOptions::new(self.dir.path().join("ledger"), ORIGIN),
            SigningKey::load(&self.dir.path().join("ledger.key")).unwrap(),
        )
        .unwrap()
    }

    /// Every entry of the log, decoded.
    pub(crate) fn entries(&self) -> Vec<Value> {
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
pub(crate) fn footage(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(131) >> 3) as u8) ^ seed)
        .collect()
}

/// Start Garage; write a configuration, a ledger key and a dock token; put
/// one object per `(segment, recording end)` in the bucket and ingest its
/// signed manifest.
/// The ledger's clock while the fixture docks: the time it is set to.
#[derive(Debug)]
struct DockingClock(Mutex<Timestamp>);

impl custos_ledger::clock::Clock for DockingClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

const ORIGIN_TIME: &str = "2026-01-01T00:00:00Z";

pub(crate) fn setup(segments: &[(&str, &str)]) -> Setup {
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
    // Each segment is docked when its recording ends: the ledger's time of
    // its `segment.ingested` is `end` too (retention counts from the later
    // of the two), so a backdated segment is as old as it says.
    let docked_at = Arc::new(DockingClock(Mutex::new(
        Timestamp::parse(ORIGIN_TIME).unwrap(),
    )));
    let mut options = LedgerOptions::new(s.dir.path().join("ledger"), ORIGIN);
    options.clock = docked_at.clone();
    let ledger = Ledger::open(
        options,
        SigningKey::load(&s.dir.path().join("ledger.key")).unwrap(),
    )
    .unwrap();
    s.rt.block_on(async {
        let caller = ledger.authenticate(&dock_token).unwrap();
        for (i, &(segment, end)) in segments.iter().enumerate() {
            *docked_at.0.lock().unwrap() = Timestamp::parse(end).unwrap();
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
                "recorded": {"start": end, "end": end, "source": "media"},
                "media": {"container": "mp4", "duration_ms": 60000, "streams": [], "damaged": null},
                "ingested_at": end,
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
                Timestamp::parse(end).unwrap(),
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
