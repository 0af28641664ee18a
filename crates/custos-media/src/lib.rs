//! # custos-media: probe recorded footage through FFmpeg
//!
//! Container, streams, duration and creation time of a segment, and whether
//! it is truncated or corrupt. The only crate that links FFmpeg.
//!
//! A body-worn camera that loses power mid-recording leaves a file that is
//! evidence all the same: the dock must store it, and say in the signed
//! manifest that it is damaged and why. So [`probe`] answers for *every*
//! regular file, and the answer carries `damaged: Some(reason)` when:
//!
//! - the file is empty, or FFmpeg cannot read it as media at all (garbage,
//!   an unknown format);
//! - it is an MP4/MOV whose box structure is cut short or has no `moov`
//!   index (the recording was never finalised) — read from the box headers
//!   in [`isobmff`], which FFmpeg does not report;
//! - it has no audio or video streams;
//! - reading the last seconds fails, packets there are flagged corrupt, the
//!   video decoder refuses them, or the stream data ends well before the
//!   duration the container declares.
//!
//! The tail check seeks to the last few seconds and decodes from there, so
//! a 4 GiB recording costs a few megabytes of reading, not a second pass
//! over the file: the dock's read-once pipeline stays the only full read.
//!
//! ```no_run
//! let probe = custos_media::probe(std::path::Path::new("/media/rec/DCIM/100MEDIA/A.MP4"))?;
//! let media = probe.to_media(); // the manifest's `media` object
//! if let Some(reason) = &media.damaged {
//!     eprintln!("damaged: {reason}");
//! }
//! # Ok::<(), custos_media::ProbeError>(())
//! ```
//!
//! ## What this crate must never do
//!
//! Refuse or drop footage: a file FFmpeg cannot read is still a segment, and
//! the probe reports it damaged with the reason. It never writes to the file
//! and never follows a symbolic link.
#![deny(missing_docs)]

pub mod isobmff;
pub mod synth;

use std::fs::OpenOptions;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use custos_core::manifest::{Media, Stream, StreamKind};
use ffmpeg::media::Type as MediaType;
use ffmpeg_next as ffmpeg;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// FFmpeg's value for "no timestamp" (`AV_NOPTS_VALUE`).
const NO_PTS: i64 = i64::MIN;
/// FFmpeg's internal time base: microseconds (`AV_TIME_BASE`).
const AV_TIME_BASE: i64 = 1_000_000;

/// Why a file could not be probed at all. Damage is *not* an error: a
/// damaged recording gives an `Ok(Probe)` with [`Probe::damaged`] set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The file could not be opened or examined.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, a symbolic link, a device).
    #[error("{path} is not a regular file; only regular files are probed")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// FFmpeg's libraries could not be initialised.
    #[error("FFmpeg could not be initialised: {0}")]
    Init(String),
}

/// Tuning of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// How much of the end of the recording is read and decoded.
    pub tail: Duration,
    /// The whole probe's time budget; FFmpeg is interrupted past it and the
    /// result says the integrity check did not finish.
    pub time_limit: Duration,
    /// Most packets read in the tail check (a bound on work for hostile files).
    pub max_tail_packets: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            tail: Duration::from_secs(3),
            time_limit: Duration::from_secs(30),
            max_tail_packets: 20_000,
        }
    }
}

/// The creation time a container declares (`creation_time` metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationTime {
    /// The text as FFmpeg reported it.
    pub raw: String,
    /// The wall-clock reading.
    pub local: PrimitiveDateTime,
    /// The offset the text gave (`Z` or `+08:00`); `None` when it gave none.
    pub offset: Option<UtcOffset>,
}

impl CreationTime {
    /// The instant, taking `default` as the offset when the text gave none.
    pub fn instant(&self, default: UtcOffset) -> OffsetDateTime {
        self.local.assume_offset(self.offset.unwrap_or(default))
    }

    fn parse(raw: &str) -> Option<CreationTime> {
        let raw_trim = raw.trim();
        if let Ok(t) = OffsetDateTime::parse(raw_trim, &Rfc3339) {
            return Some(CreationTime {
                raw: raw.to_owned(),
                local: PrimitiveDateTime::new(t.date(), t.time()),
                offset: Some(t.offset()),
            });
        }
        // "2024-05-01 08:30:00" and "2024-05-01T08:30:00": no zone given.
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(raw_trim, &fmt)
            .ok()
            .map(|local| CreationTime {
                raw: raw.to_owned(),
                local,
                offset: None,
            })
    }
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// FFmpeg's short name of the container (`mov,mp4,m4a,3gp,3g2,mj2`,
    /// `mpegts`, `avi`); `unknown` when FFmpeg could not read it, `empty`
    /// for a zero-byte file.
    pub container: String,
    /// Duration in milliseconds, when the container says.
    pub duration_ms: Option<u64>,
    /// The streams, in container order.
    pub streams: Vec<Stream>,
    /// The container's declared creation time.
    pub creation_time: Option<CreationTime>,
    /// `None` for an intact file, else why it is truncated or corrupt.
    pub damaged: Option<String>,
}

impl Probe {
    /// The manifest's `media` summary.
    pub fn to_media(&self) -> Media {
        Media {
            container: self.container.clone(),
            duration_ms: self.duration_ms,
            streams: self.streams.clone(),
            damaged: self.damaged.clone(),
        }
    }

    fn unreadable(container: &str, damaged: String) -> Probe {
        Probe {
            container: container.to_owned(),
            duration_ms: None,
            streams: Vec::new(),
            creation_time: None,
            damaged: Some(damaged),
        }
    }
}

static INIT: Once = Once::new();

fn init() -> Result<(), ProbeError> {
    let mut result = Ok(());
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            result = Err(ProbeError::Init(e.to_string()));
        }
        // FFmpeg would otherwise print to the dock's standard error for
        // every damaged file; the probe reports what matters itself.
        if std::env::var_os("CUSTOS_FFMPEG_LOG").is_none() {
            ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        }
    });
    result
}

/// Probe `path` with the default [`ProbeOptions`].
pub fn probe(path: &Path) -> Result<Probe, ProbeError> {
    probe_with(path, &ProbeOptions::default())
}

/// Probe `path` (a regular file; symbolic links are refused, not followed).
/// Blocking: run it on a blocking thread in async code.
pub fn probe_with(path: &Path, opts: &ProbeOptions) -> Result<Probe, ProbeError> {
    let io = |source| ProbeError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ProbeError::NotAFile {
            path: path.to_owned(),
        });
    }
    // Open it ourselves, without following a link, and let FFmpeg read
    // this very file through /proc/self/fd: the name on the recorder may
    // not be UTF-8 (FFmpeg's Rust bindings need UTF-8 paths), and the file
    // cannot be swapped between the check and the read.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => ProbeError::NotAFile {
                path: path.to_owned(),
            },
            _ => io(source),
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ProbeError::NotAFile {
            path: path.to_owned(),
        });
    }
    let len = meta.len();
    if len == 0 {
        return Ok(Probe::unreadable("empty", "empty file (0 bytes)".into()));
    }
    init()?;

    let boxes = isobmff::scan(&mut file, len).map_err(io)?;
    let box_problem = boxes.as_ref().and_then(|b| {
        if let Some(p) = &b.problem {
            Some(p.to_string())
        } else if !b.has_moov && !b.has_moof {
            Some("unfinalised: the MP4/MOV has no 'moov' index (the recording was cut before the recorder closed the file)".to_owned())
        } else {
            None
        }
    });

    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let ffmpeg_path: PathBuf = if fd_path.exists() {
        fd_path
    } else if path.to_str().is_some() && !path.as_os_str().as_encoded_bytes().contains(&0) {
        path.to_owned()
    } else {
        return Ok(Probe::unreadable(
            "unknown",
            "not probed: the file name is not UTF-8 and /proc is not mounted".into(),
        ));
    };
    let started = Instant::now();
    let limit = opts.time_limit;
    let opened =
        ffmpeg::format::input_with_interrupt(&ffmpeg_path, move || started.elapsed() > limit);
    let mut input = match opened {
        Ok(input) => input,
        Err(e) => {
            let reason = match (box_problem, boxes.is_some()) {
                (Some(p), _) => p,
                (None, true) => format!("FFmpeg cannot read the MP4/MOV: {e}"),
                (None, false) => format!("not a media file FFmpeg can read: {e}"),
            };
            return Ok(Probe::unreadable("unknown", reason));
        }
    };

    let container = input.format().name().to_owned();
    let duration_us = input.duration();
    let duration_ms =
        (duration_us > 0 && duration_us != NO_PTS).then_some((duration_us / 1000) as u64);
    let streams: Vec<Stream> = input.streams().map(|s| describe(&s)).collect();
    let creation_time = input
        .metadata()
        .get("creation_time")
        .map(str::to_owned)
        .or_else(|| {
            input
                .streams()
                .find_map(|s| s.metadata().get("creation_time").map(str::to_owned))
        })
        .and_then(|raw| CreationTime::parse(&raw));

    let damaged = if let Some(p) = box_problem {
        Some(p)
    } else if !streams
        .iter()
        .any(|s| matches!(s.kind, StreamKind::Video | StreamKind::Audio))
    {
        Some("no audio or video streams".to_owned())
    } else {
        tail_check(&mut input, duration_us, opts, started)
    };

    Ok(Probe {
        container,
        duration_ms,
        streams,
        creation_time,
        damaged,
    })
}

fn describe(s: &ffmpeg::format::stream::Stream<'_>) -> Stream {
    let params = s.parameters();
    let kind = match params.medium() {
        MediaType::Video => StreamKind::Video,
        MediaType::Audio => StreamKind::Audio,
        MediaType::Subtitle => StreamKind::Subtitle,
        MediaType::Data => StreamKind::Data,
        MediaType::Attachment => StreamKind::Attachment,
        MediaType::Unknown => StreamKind::Other,
    };
    let mut stream = Stream {
        index: s.index() as u32,
        kind,
        codec: params.id().name().to_owned(),
        width: None,
        height: None,
        sample_rate: None,
        channels: None,
    };
    let context = ffmpeg::codec::context::Context::from_parameters(params);
    match (kind, context) {
        (StreamKind::Video, Ok(ctx)) => {
            if let Ok(v) = ctx.decoder().video() {
                stream.width = Some(v.width()).filter(|w| *w > 0);
                stream.height = Some(v.height()).filter(|h| *h > 0);
            }
        }
        (StreamKind::Audio, Ok(ctx)) => {
            if let Ok(a) = ctx.decoder().audio() {
                stream.sample_rate = Some(a.rate()).filter(|r| *r > 0);
                stream.channels = Some(u32::from(a.channels())).filter(|c| *c > 0);
            }
        }
        _ => {}
    }
    stream
}

/// Read (and decode the video of) the last `opts.tail` of the recording.
fn tail_check(
    input: &mut ffmpeg::format::context::Input,
    duration_us: i64,
    opts: &ProbeOptions,
    started: Instant,
) -> Option<String> {
    let declared = (duration_us > 0 && duration_us != NO_PTS).then_some(duration_us);
    let tail_us = i64::try_from(opts.tail.as_micros()).unwrap_or(i64::MAX);
    if let Some(d) = declared {
        if d > tail_us {
            let target = d - tail_us;
            // A failed seek (a format that cannot seek) reads from the start.
            let _ = input.seek(target, ..target);
        }
    }

    let video = input.streams().best(MediaType::Video).map(|s| s.index());
    let mut decoder = video.and_then(|i| {
        let s = input.stream(i)?;
        let ctx = ffmpeg::codec::context::Context::from_parameters(s.parameters()).ok()?;
        let mut dec = ctx.decoder();
        dec.check(ffmpeg::codec::decoder::Check::EXPLODE);
        dec.video().ok()
    });
    // Per stream: time base and start, to measure how far the data reaches.
    let bases: Vec<(f64, i64)> = input
        .streams()
        .map(|s| {
            let tb = s.time_base();
            let base = if tb.denominator() != 0 {
                f64::from(tb.numerator()) / f64::from(tb.denominator())
            } else {
                0.0
            };
            let start = if s.start_time() == NO_PTS {
                0
            } else {
                s.start_time()
            };
            (base, start)
        })
        .collect();

    let mut reached_us: i64 = 0;
    let mut packets = 0usize;
    let mut corrupt = 0usize;
    let mut decode_errors = 0usize;
    let mut last_decode_error = None;
    let mut read_error = None;
    let mut interrupted = false;
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        if packets >= opts.max_tail_packets {
            break;
        }
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::Exit) => {
                interrupted = true;
                break;
            }
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
        packets += 1;
        if packet.is_corrupt() {
            corrupt += 1;
        }
        if let (Some(pts), Some((base, start))) = (packet.pts(), bases.get(packet.stream())) {
            let end = pts
                .saturating_add(packet.duration().max(0))
                .saturating_sub(*start);
            let us = (end as f64 * base * AV_TIME_BASE as f64) as i64;
            reached_us = reached_us.max(us);
        }
        if Some(packet.stream()) == video {
            if let Some(dec) = decoder.as_mut() {
                if let Err(e) = dec.send_packet(&packet) {
                    decode_errors += 1;
                    last_decode_error = Some(e);
                }
                while dec.receive_frame(&mut frame).is_ok() {}
            }
        }
        if started.elapsed() > opts.time_limit {
            interrupted = true;
            break;
        }
    }
    if let Some(dec) = decoder.as_mut() {
        if dec.send_eof().is_ok() {
            loop {
                match dec.receive_frame(&mut frame) {
                    Ok(()) => {}
                    Err(ffmpeg::Error::Eof) => break,
                    Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => break,
                    Err(e) => {
                        decode_errors += 1;
                        last_decode_error = Some(e);
                        break;
                    }
                }
            }
        }
    }

    if let Some(e) = read_error {
        return Some(format!("read error near the end of the recording: {e}"));
    }
    if interrupted {
        return Some(format!(
            "the integrity check did not finish within {} s; the file may be damaged",
            opts.time_limit.as_secs()
        ));
    }
    if corrupt > 0 {
        return Some(format!(
            "{corrupt} corrupt packets near the end of the recording"
        ));
    }
    if decode_errors > 0 {
        let last = last_decode_error.map(|e| e.to_string()).unwrap_or_default();
        return Some(format!(
            "the video does not decode near the end ({decode_errors} errors; last: {last})"
        ));
    }
    if let Some(d) = declared {
        if packets == 0 {
            return Some("no media data could be read near the end of the recording".to_owned());
        }
        // Audio priming and the last frame's duration make the figures
        // differ a little in intact files.
        let tolerance = (AV_TIME_BASE).max(d / 50);
        if reached_us + tolerance < d {
            return Some(format!(
                "truncated: the media data ends at {:.1} s of the {:.1} s the container declares",
                reached_us as f64 / AV_TIME_BASE as f64,
                d as f64 / AV_TIME_BASE as f64
            ));
        }
    }
    None
}
