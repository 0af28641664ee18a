//! The probe against real recordings made by the `ffmpeg` command: intact
//! H.264/AAC clips in MP4 (index at the end, and "faststart" with the index
//! first), MPEG-TS, and the same clips truncated, cut inside the header,
//! overwritten with garbage, empty.

use std::path::{Path, PathBuf};

use custos_core::manifest::StreamKind;
use custos_media::synth::{Pattern, SyntheticClip};
use custos_media::{probe, Probe, ProbeError};

/// Make a clip of `seconds` with the `ffmpeg` command; `extra` are output options.
fn clip(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    SyntheticClip::new(seconds)
        .pattern(Pattern::Testsrc)
        .video(320, 240, 25)
        .tone(440, Some(44100))
        .encoder_options(&["-g", "10", "-ac", "2"])
        .creation_time("2024-05-01T08:30:00Z")
        .output_options(extra)
        .write(&out)
        .unwrap();
    out
}

fn truncate_to(path: &Path, name: &str, keep: impl Fn(u64) -> u64) -> PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let n = keep(bytes.len() as u64) as usize;
    let out = path.with_file_name(name);
    std::fs::write(&out, &bytes[..n]).unwrap();
    out
}

fn check_intact(p: &Probe, container_has: &str) {
    assert_eq!(p.damaged, None, "{p:?}");
    assert!(p.container.contains(container_has), "{}", p.container);
    let ms = p.duration_ms.expect("duration");
    assert!((1900..=2200).contains(&ms), "{ms}");
    let video = p
        .streams
        .iter()
        .find(|s| s.kind == StreamKind::Video)
        .unwrap();
    assert_eq!(video.codec, "h264");
    assert_eq!((video.width, video.height), (Some(320), Some(240)));
    let audio = p
        .streams
        .iter()
        .find(|s| s.kind == StreamKind::Audio)
        .unwrap();
    assert_eq!(audio.codec, "aac");
    assert_eq!((audio.sample_rate, audio.channels), (Some(44100), Some(2)));
}

#[test]
fn intact_mp4_and_faststart_mp4_and_ts() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = clip(dir.path(), "a.mp4", 2, &[]);
    let p = probe(&mp4).unwrap();
    check_intact(&p, "mp4");
    let ct = p.creation_time.as_ref().expect("creation time");
    assert_eq!(
        ct.instant(time::UtcOffset::UTC),
        time::macros::datetime!(2024-05-01 08:30:00 UTC)
    );
    assert_eq!(ct.offset, Some(time::UtcOffset::UTC));
    let media = p.to_media();
    assert_eq!(media.damaged, None);
    assert_eq!(media.streams.len(), 2);

    let fast = clip(dir.path(), "fast.mp4", 2, &["-movflags", "+faststart"]);
    check_intact(&probe(&fast).unwrap(), "mp4");

    let ts = clip(dir.path(), "a.ts", 2, &["-f", "mpegts"]);
    let p = probe(&ts).unwrap();
    assert_eq!(p.damaged, None, "{p:?}");
    assert_eq!(p.container, "mpegts");
}

#[test]
fn truncated_recordings_are_reported_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Index at the end: cutting the file in half loses the index.
    let mp4 = clip(dir.path(), "a.mp4", 2, &[]);
    let half = truncate_to(&mp4, "half.mp4", |n| n / 2);
    let p = probe(&half).unwrap();
    let why = p.damaged.expect("a half file is damaged");
    assert!(why.contains("truncated") && why.contains("mdat"), "{why}");

    // Index first: the index promises samples the file no longer holds.
    let fast = clip(dir.path(), "fast.mp4", 2, &["-movflags", "+faststart"]);
    let half = truncate_to(&fast, "fast-half.mp4", |n| n / 2);
    let p = probe(&half).unwrap();
    let why = p.damaged.expect("a half faststart file is damaged");
    assert!(why.contains("truncated"), "{why}");
    // FFmpeg still reads the index: the streams are known.
    assert_eq!(p.streams.len(), 2);

    // Cut inside the first box header.
    let tiny = truncate_to(&mp4, "tiny.mp4", |_| 12);
    let p = probe(&tiny).unwrap();
    assert!(p.damaged.is_some(), "{p:?}");

    // The recorder lost power before writing the index at all: ftyp + mdat.
    let bytes = std::fs::read(&mp4).unwrap();
    let ftyp_len = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let mut unfinalised = bytes[..ftyp_len].to_vec();
    unfinalised.extend_from_slice(&0u32.to_be_bytes()); // size 0: "to the end"
    unfinalised.extend_from_slice(b"mdat");
    unfinalised.extend_from_slice(&bytes[ftyp_len..bytes.len() / 2]);
    let path = dir.path().join("unfinalised.mp4");
    std::fs::write(&path, unfinalised).unwrap();
    let why = probe(&path).unwrap().damaged.expect("damaged");
    assert!(why.contains("moov"), "{why}");
}

#[test]
fn garbage_and_empty_files_are_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mp4");
    let mut state = 0x1234_5678u32;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    std::fs::write(&garbage, bytes).unwrap();
    let p = probe(&garbage).unwrap();
    assert_eq!(p.container, "unknown");
    assert!(
        p.damaged.as_deref().unwrap().contains("not a media file"),
        "{p:?}"
    );
    assert!(p.streams.is_empty());

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let p = probe(&empty).unwrap();
    assert_eq!(p.container, "empty");
    assert_eq!(p.damaged.as_deref(), Some("empty file (0 bytes)"));

    // A clip whose second half is overwritten with noise, index intact.
    let fast = clip(dir.path(), "fast.mp4", 2, &["-movflags", "+faststart"]);
    let mut b = std::fs::read(&fast).unwrap();
    let n = b.len();
    for (i, x) in b[n / 2..].iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    let noisy = dir.path().join("noisy.mp4");
    std::fs::write(&noisy, b).unwrap();
    let p = probe(&noisy).unwrap();
    assert!(p.damaged.is_some(), "noise in the tail is damage: {p:?}");
}

#[test]
fn names_that_are_not_utf8_are_probed() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mp4 = clip(dir.path(), "a.mp4", 1, &[]);
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"CAM\xff\xfe 1.MP4"));
    std::fs::rename(&mp4, &odd).unwrap();
    let p = probe(&odd).unwrap();
    assert_eq!(p.damaged, None, "{p:?}");
    assert_eq!(p.streams.len(), 2);
}

#[test]
fn what_is_not_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        probe(dir.path()),
        Err(ProbeError::NotAFile { .. })
    ));
    assert!(matches!(
        probe(&dir.path().join("missing")),
        Err(ProbeError::Io { .. })
    ));
    let target = clip(dir.path(), "a.mp4", 1, &[]);
    let link = dir.path().join("link.mp4");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(probe(&link), Err(ProbeError::NotAFile { .. })));
}
