//! A recorder whose clock was reset: a clip whose media carries no
//! creation time and whose file time is 2000-01-01, docked today through
//! the directory transport. The manifest keeps the time the recorder gave,
//! flagged `file_time+implausible`, so that nothing trusts it.

use std::time::{Duration, Instant, SystemTime};

use custos_core::manifest::TimeSource;
use custos_dock::DirectoryTransport;
use custos_media::synth::{Pattern, SyntheticClip};
use tokio_util::sync::CancellationToken;

use crate::util::{self, Site};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_clocks_file_time_is_flagged_implausible() {
    let site = Site::new();
    site.write_config("file://./data/objects", "127.0.0.1:0", None, "");
    let root = site.path("rec");
    let media = root.join("DCIM/100MEDIA");
    std::fs::create_dir_all(&media).unwrap();
    let clip = media.join("VID_0001.MP4");
    SyntheticClip::new(1)
        .pattern(Pattern::Testsrc)
        .video(160, 120, 15)
        .silent()
        .write(&clip)
        .unwrap();
    let y2k = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
    std::fs::File::options()
        .write(true)
        .open(&clip)
        .unwrap()
        .set_modified(y2k)
        .unwrap();
    // A plausible one beside it, for contrast.
    let recent = media.join("VID_0002.MP4");
    std::fs::copy(&clip, &recent).unwrap();

    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());
    let transport = DirectoryTransport::new(
        &root,
        dock.profiles().clone(),
        Some("generic-mass-storage".into()),
        Some("REC-RESET".into()),
        None,
    );
    let (_t, report) = dock
        .ingest(
            "slot-c",
            Box::new(transport),
            CancellationToken::new(),
            Some(Instant::now() + Duration::from_secs(120)),
        )
        .await;
    assert!(report.is_complete(), "{report:?}");
    dock.undock("slot-c", &report).await;
    assert!(
        dock.drain(Some(Instant::now() + Duration::from_secs(30)), &stop)
            .await
    );
    stop.cancel();
    pump.await.unwrap();
    let ledger = assembled.local_ledger.unwrap();
    let entries: Vec<_> = ledger
        .entries(0, None)
        .unwrap()
        .iter()
        .map(util::parse_line)
        .collect();
    let manifests = util::check_segment_entries(&entries, true);
    let reset = manifests
        .values()
        .find(|m| m.original_name.to_string_lossy().ends_with("VID_0001.MP4"))
        .unwrap();
    assert_eq!(reset.recorded.source, TimeSource::FileTimeImplausible);
    assert_eq!(reset.recorded.end.to_string(), "2000-01-01T00:00:00Z");
    let ingested = entries
        .iter()
        .find(|e| e.action == "segment.ingested" && e.subject == reset.segment_id)
        .unwrap();
    let env: custos_core::dsse::Envelope =
        serde_json::from_value(ingested.details["manifest"].clone()).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&env.payload).unwrap();
    assert_eq!(raw["recorded"]["source"], "file_time+implausible");
    let recent = manifests
        .values()
        .find(|m| m.original_name.to_string_lossy().ends_with("VID_0002.MP4"))
        .unwrap();
    assert_eq!(recent.recorded.source, TimeSource::FileTime);
    ledger.close().await;
}
