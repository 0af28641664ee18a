//! Hostile recorder contents: names that are not UTF-8, very long, full of
//! dots and odd characters; symbolic links out of the recorder (to files and
//! to folders); a link inside it; a named pipe; an empty file. Every real
//! file is ingested under a safe key with its name kept byte for byte;
//! nothing outside the media root is read or removed; nothing that is not a
//! regular file is touched.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::time::{Duration, Instant};

use custos_core::manifest::OriginalName;
use custos_dock::DirectoryTransport;
use tokio_util::sync::CancellationToken;

use crate::util::{self, Site};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_links_pipes_and_empty_files() {
    let site = Site::new();
    site.write_config("file://./data/objects", "127.0.0.1:0", None, "");
    let root = site.path("rec");
    let media = root.join("DCIM/100MEDIA");
    std::fs::create_dir_all(&media).unwrap();
    let outside = site.path("outside");
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("secret.MP4"), b"not the recorder's").unwrap();
    std::fs::write(outside.join("dir/also.MP4"), b"not the recorder's either").unwrap();

    let long = format!("{}.MP4", "录".repeat(80)); // 244 bytes, 84 characters
    let longer = format!("{}.MP4", "A".repeat(240));
    let real: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"CAM\xff\xfe\x80.MP4".to_vec(), util::noise(3000, 1)),
        (b"..MP4".to_vec(), util::noise(10, 2)),
        (b"...hidden.MP4".to_vec(), util::noise(11, 3)),
        (b"a..b..c.MP4".to_vec(), util::noise(12, 4)),
        (b"\\abs\\path.MP4".to_vec(), util::noise(13, 5)),
        (b"tab\tnew\nline.MP4".to_vec(), util::noise(14, 6)),
        (long.as_bytes().to_vec(), util::noise(15, 7)),
        (longer.as_bytes().to_vec(), util::noise(16, 8)),
        (b"empty.MP4".to_vec(), Vec::new()),
    ];
    for (name, bytes) in &real {
        std::fs::write(media.join(OsStr::from_bytes(name)), bytes).unwrap();
    }
    // Links out of the recorder, to a file and to a folder, and one inside.
    std::os::unix::fs::symlink(outside.join("secret.MP4"), media.join("link-out.MP4")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", media.join("passwd.MP4")).unwrap();
    std::os::unix::fs::symlink(outside.join("dir"), media.join("linked-dir")).unwrap();
    std::os::unix::fs::symlink(media.join("empty.MP4"), media.join("link-in.MP4")).unwrap();
    // A named pipe: opening it would block a careless reader forever.
    let fifo = media.join("pipe.MP4");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());
    let transport = DirectoryTransport::new(
        &root,
        dock.profiles().clone(),
        Some("simulated".into()),
        Some("HOSTILE-1".into()),
        None,
    );
    let started = Instant::now();
    let (_t, report) = dock
        .ingest(
            "slot-h",
            Box::new(transport),
            CancellationToken::new(),
            Some(Instant::now() + Duration::from_secs(120)),
        )
        .await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.segments, real.len());
    dock.undock("slot-h", &report).await;
    assert!(
        dock.drain(Some(Instant::now() + Duration::from_secs(30)), &stop)
            .await
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    stop.cancel();
    pump.await.unwrap();
    let ledger = assembled.local_ledger.unwrap();

    // Every real file was ingested once, wiped, and named byte for byte.
    let lines = ledger.entries(0, None).unwrap();
    let entries: Vec<_> = lines.iter().map(util::parse_line).collect();
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), real.len());
    let objects = site.path("data/objects");
    for (name, bytes) in &real {
        let m = manifests
            .values()
            .find(|m| m.original_name.as_bytes().ends_with(name) && m.size == bytes.len() as u64)
            .unwrap_or_else(|| panic!("no manifest for {:?}", String::from_utf8_lossy(name)));
        let mut want = b"DCIM/100MEDIA/".to_vec();
        want.extend_from_slice(name);
        assert_eq!(m.original_name.as_bytes(), &want[..]);
        match &m.original_name {
            OriginalName::Bytes(_) => assert!(std::str::from_utf8(name).is_err()),
            OriginalName::Utf8(_) => assert!(std::str::from_utf8(name).is_ok()),
        }
        let key = &m.object.key;
        assert!(key.len() < 400, "{key}");
        for part in key.split('/') {
            assert!(!part.is_empty() && !part.starts_with('.'), "{key}");
            assert!(
                part.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{key}"
            );
        }
        let stored = std::fs::read(objects.join(key)).unwrap();
        assert_eq!(&stored, bytes, "{key}");
        assert!(objects.join(format!("{key}.manifest.json")).is_file());
        if bytes.is_empty() {
            assert_eq!(m.media.damaged.as_deref(), Some("empty file (0 bytes)"));
        }
        assert!(!media.join(OsStr::from_bytes(name)).exists(), "wiped");
    }
    // The non-UTF-8 name travels as base64 in the JSON.
    let odd = manifests
        .values()
        .find(|m| matches!(m.original_name, OriginalName::Bytes(_)))
        .unwrap();
    let json = serde_json::to_value(&odd.original_name).unwrap();
    assert!(json.get("base64").is_some(), "{json}");

    // Nothing outside was read or removed; links and the pipe stay.
    assert_eq!(
        std::fs::read(outside.join("secret.MP4")).unwrap(),
        b"not the recorder's"
    );
    assert_eq!(
        std::fs::read(outside.join("dir/also.MP4")).unwrap(),
        b"not the recorder's either"
    );
    for l in [
        "link-out.MP4",
        "passwd.MP4",
        "linked-dir",
        "link-in.MP4",
        "pipe.MP4",
    ] {
        assert!(
            std::fs::symlink_metadata(media.join(l)).is_ok(),
            "{l} must stay"
        );
    }
    assert!(!manifests
        .values()
        .any(|m| m.size == b"not the recorder's".len() as u64));
    let keys: Vec<_> = walk(&objects);
    assert_eq!(keys.len(), real.len() * 2, "{keys:?}");
    ledger.close().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
