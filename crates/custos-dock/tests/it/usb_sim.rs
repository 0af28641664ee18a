//! The USB path above the wire, over the in-process simulated recorder:
//! identify, unlock with the dock's password, read the clock (off by three
//! hours), set it, wait for the volume, ingest, wipe — and a wrong password
//! that leaves everything untouched. The same code runs over rusb in
//! `custos dock run`; tests/usb/ runs it against a USB gadget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_dock::usb::simulated::SimulatedRecorder;
use custos_dock::UsbTransport;
use tokio_util::sync::CancellationToken;

use crate::util::{self, Site};

const SKEW: i64 = 3 * 3600;

fn transport(
    dock: &custos_dock::Dock,
    rec: &SimulatedRecorder,
    password: Option<&[u8]>,
) -> UsbTransport {
    let profile = Arc::new(dock.profiles().get("simulated").unwrap().clone());
    UsbTransport::new(
        Box::new(rec.channel()),
        Box::new(rec.locator()),
        profile,
        None,
        password.map(<[u8]>::to_vec),
        "simulated",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_recorder_over_the_usb_path() {
    let site = Site::new();
    site.write_config(
        "file://./data/objects",
        "127.0.0.1:0",
        None,
        "unlock_password = \"s3cret\"\n",
    );
    let files = util::recorder(
        &site.path("vol"),
        "SIM0042",
        "100234",
        1,
        &[40_000, 7_000_000],
        7,
    );
    let rec = SimulatedRecorder::new("SIM0042", "100234", b"s3cret", site.path("vol"), SKEW);

    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());

    // A wrong password: a clear error, nothing read, nothing recorded.
    let wrong = transport(
        &dock,
        &SimulatedRecorder::new("SIM0042", "100234", b"other", site.path("vol"), SKEW),
        Some(b"s3cret"),
    );
    let (_t, report) = dock
        .ingest("usb-1-1", Box::new(wrong), CancellationToken::new(), None)
        .await;
    let err = report.error.clone().unwrap();
    assert!(err.contains("wrong unlock password"), "{err}");
    assert_eq!(report.segments, 0);
    assert_eq!(
        dock.status().slot("usb-1-1").state,
        custos_dock::status::SlotState::Error
    );
    assert_eq!(util::remaining(&site.path("vol")).len(), files.files.len());

    // The right one.
    let deadline = Some(Instant::now() + Duration::from_secs(120));
    let (_t, report) = dock
        .ingest(
            "usb-1-2",
            Box::new(transport(&dock, &rec, Some(b"s3cret"))),
            CancellationToken::new(),
            deadline,
        )
        .await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.recorder_id.as_deref(), Some("SIM0042"));
    assert!(dock.status().slot("usb-1-2").safe_to_undock);
    assert!(
        rec.clock_skew().abs() <= 2,
        "the clock was set: skew now {}",
        rec.clock_skew()
    );
    dock.undock("usb-1-2", &report).await;
    assert!(
        dock.drain(Some(Instant::now() + Duration::from_secs(30)), &stop)
            .await
    );
    assert!(dock.recorder_done("SIM0042").unwrap());
    assert!(util::remaining(&site.path("vol")).is_empty());
    stop.cancel();
    pump.await.unwrap();

    let ledger = assembled.local_ledger.unwrap();
    let all: Vec<_> = ledger
        .entries(0, None)
        .unwrap()
        .iter()
        .map(util::parse_line)
        .collect();
    // The in-process dock registered its key with its ledger first.
    assert_eq!(all[0].action.as_str(), "token.created");
    assert_eq!(all[0].details["role"], "dock");
    // The ledger judges the recorder's coverage once its docking ended
    // (in the background, so none, some or all of its findings may be on
    // the record yet): files named 2024-05-01 are late ingests, and the
    // clip's container time and the blobs' name times disagree (a clock
    // jump). This test is about the USB path: it checks only that those
    // findings are the ledger's own, after the undocking.
    let (coverage, entries): (Vec<_>, Vec<_>) = all[1..]
        .iter()
        .cloned()
        .partition(|e| e.action.as_str() == "coverage.gap");
    let undocked_seq = entries.last().unwrap().seq;
    for gap in &coverage {
        assert!(gap.seq > undocked_seq, "{gap:?}");
        assert_eq!(gap.actor.id, "coverage", "{gap:?}");
        assert_eq!(gap.subject, "SIM0042");
    }
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.first(), Some(&"recorder.docked"));
    assert_eq!(actions.get(1), Some(&"recorder.clock_set"));
    assert_eq!(actions.last(), Some(&"recorder.undocked"));
    let docked = &entries[0];
    let offset = docked.details["clock_offset_ms"].as_i64().unwrap();
    assert!((offset - SKEW * 1000).abs() < 2000, "{offset}");
    assert_eq!(docked.details["transport"], "simulated");
    assert_eq!(docked.details["officer_id"], "100234");
    let set = &entries[1];
    assert_eq!(set.details["method"], "usb");
    assert!((set.details["offset_ms_before"].as_i64().unwrap() - SKEW * 1000).abs() < 2000);

    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), files.files.len());
    for m in manifests.values() {
        assert_eq!(m.recorder.id, "SIM0042");
        assert_eq!(m.recorder.profile, "simulated");
        assert_eq!(m.officer_id, "100234");
        assert!((m.dock.clock_offset_ms - SKEW * 1000).abs() < 2000);
        let name = util::name_text(&m.original_name);
        let want = &files.files[name.trim_start_matches("DCIM/100MEDIA/")];
        assert_eq!(m.digests.sha256.hex(), *want);
        if m.media.damaged.is_none() {
            // The clip's creation time (08:30:00Z on the recorder's clock)
            // corrected by the three hours it runs ahead.
            assert_eq!(m.recorded.source, custos_core::manifest::TimeSource::Media);
            // (The recorder's clock reads whole seconds: the offset is
            // known to a second.)
            let want: custos_core::manifest::Timestamp = "2024-05-01T05:30:00Z".parse().unwrap();
            let off = m
                .recorded
                .start
                .duration_since(want)
                .whole_milliseconds()
                .abs();
            assert!(off < 1500, "{}", m.recorded.start);
        } else {
            // Noise: the file name's time, 08:3x in +08:00, minus 3 h.
            assert_eq!(
                m.recorded.source,
                custos_core::manifest::TimeSource::FileName
            );
            assert!(
                m.recorded.start.to_string().starts_with("2024-04-30T21:"),
                "{}",
                m.recorded.start
            );
        }
    }
    ledger.close().await;
}
