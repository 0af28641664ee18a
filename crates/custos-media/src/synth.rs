//! Synthetic footage: real H.264/AAC recordings made by the `ffmpeg`
//! command from its built-in test pattern and a sine tone, for `custos
//! demo` and for the tests that need real media files.
//!
//! A [`SyntheticClip`] says what the recording looks like (pattern, size,
//! frame rate, length, tone, a video filter such as a burned-in clock, the
//! `creation_time` a recorder would write); [`SyntheticClip::write`] runs
//! `ffmpeg` once and reports its own error line when it fails.
//!
//! ## What this module must never do
//!
//! Touch a recorder's footage: it only ever writes the one output file it
//! is given, and it is never on the ingest path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why `ffmpeg` made no clip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// The `ffmpeg` command could not be started.
    #[error("cannot run ffmpeg to make {out} (is FFmpeg installed?): {source}")]
    Spawn {
        /// The clip it was to make.
        out: PathBuf,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// `ffmpeg` ran and failed.
    #[error("ffmpeg failed making {out}: {stderr}")]
    Failed {
        /// The clip it was to make.
        out: PathBuf,
        /// The last of what it printed.
        stderr: String,
    },
}

/// FFmpeg's test sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `testsrc`: colour bars with a frame counter.
    Testsrc,
    /// `testsrc2`: a busier pattern with moving parts.
    Testsrc2,
}

/// A recording to make: H.264 video (yuv420p) from a test pattern, and AAC
/// audio from a sine tone unless [`SyntheticClip::silent`].
#[derive(Debug, Clone)]
pub struct SyntheticClip {
    pattern: Pattern,
    width: u32,
    height: u32,
    rate: u32,
    seconds: u32,
    tone: Option<(u32, Option<u32>)>,
    video_filter: Option<String>,
    preset: &'static str,
    encoder_options: Vec<String>,
    creation_time: Option<String>,
    output_options: Vec<String>,
}

impl SyntheticClip {
    /// `seconds` of `testsrc2` at 640x360, 25 frames a second, with a
    /// 1 kHz tone, encoded with x264's `ultrafast` preset.
    pub fn new(seconds: u32) -> SyntheticClip {
        SyntheticClip {
            pattern: Pattern::Testsrc2,
            width: 640,
            height: 360,
            rate: 25,
            seconds,
            tone: Some((1000, None)),
            video_filter: None,
            preset: "ultrafast",
            encoder_options: Vec::new(),
            creation_time: None,
            output_options: Vec::new(),
        }
    }

    /// The test pattern.
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = pattern;
        self
    }

    /// Frame size and rate.
    pub fn video(mut self, width: u32, height: u32, rate: u32) -> Self {
        self.width = width;
        self.height = height;
        self.rate = rate;
        self
    }

    /// A sine tone of `hz`; `sample_rate` when given, else FFmpeg's default.
    pub fn tone(mut self, hz: u32, sample_rate: Option<u32>) -> Self {
        self.tone = Some((hz, sample_rate));
        self
    }

    /// No audio stream.
    pub fn silent(mut self) -> Self {
        self.tone = None;
        self
    }

    /// An FFmpeg video filter (`-vf`), e.g. a `drawtext` clock or `noise`.
    pub fn video_filter(mut self, filter: impl Into<String>) -> Self {
        self.video_filter = Some(filter.into());
        self
    }

    /// x264's preset (`ultrafast`, `veryfast`, …).
    pub fn preset(mut self, preset: &'static str) -> Self {
        self.preset = preset;
        self
    }

    /// More encoder options, e.g. `["-crf", "20"]`, `["-b:a", "64k"]`.
    pub fn encoder_options<S: AsRef<str>>(mut self, options: &[S]) -> Self {
        self.encoder_options
            .extend(options.iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The container's `creation_time` tag, as a recorder writes it.
    pub fn creation_time(mut self, text: impl Into<String>) -> Self {
        self.creation_time = Some(text.into());
        self
    }

    /// Options placed just before the output file, e.g.
    /// `["-movflags", "+faststart"]` or `["-f", "mpegts"]`.
    pub fn output_options<S: AsRef<str>>(mut self, options: &[S]) -> Self {
        self.output_options
            .extend(options.iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The `ffmpeg` command line that makes the clip at `out`.
    pub fn command(&self, out: &Path) -> Command {
        let source = match self.pattern {
            Pattern::Testsrc => "testsrc",
            Pattern::Testsrc2 => "testsrc2",
        };
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .arg("-i")
            .arg(format!(
                "{source}=size={}x{}:rate={}:duration={}",
                self.width, self.height, self.rate, self.seconds
            ));
        if let Some((hz, sample_rate)) = self.tone {
            let rate = sample_rate.map(|r| format!(":sample_rate={r}"));
            cmd.args(["-f", "lavfi", "-i"]).arg(format!(
                "sine=frequency={hz}{}:duration={}",
                rate.unwrap_or_default(),
                self.seconds
            ));
        }
        if let Some(f) = &self.video_filter {
            cmd.arg("-vf").arg(f);
        }
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            self.preset,
            "-pix_fmt",
            "yuv420p",
        ]);
        if self.tone.is_some() {
            cmd.args(["-c:a", "aac"]);
        }
        cmd.args(&self.encoder_options);
        if let Some(c) = &self.creation_time {
            cmd.arg("-metadata").arg(format!("creation_time={c}"));
        }
        cmd.args(&self.output_options)
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Make the clip at `out` (replacing any file there).
    pub fn write(&self, out: &Path) -> Result<(), SynthError> {
        let done = self
            .command(out)
            .output()
            .map_err(|source| SynthError::Spawn {
                out: out.to_owned(),
                source,
            })?;
        if done.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&done.stderr);
        let last = text.trim().lines().last().unwrap_or("").to_owned();
        Err(SynthError::Failed {
            out: out.to_owned(),
            stderr: if last.is_empty() {
                done.status.to_string()
            } else {
                last
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &SyntheticClip) -> Vec<String> {
        c.command(Path::new("o.mp4"))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_command_line_says_what_the_clip_is() {
        let c = SyntheticClip::new(3)
            .pattern(Pattern::Testsrc)
            .video(160, 120, 15)
            .tone(440, Some(44100))
            .video_filter("noise=alls=30")
            .encoder_options(&["-crf", "20"])
            .creation_time("2024-05-01T08:30:00Z")
            .output_options(&["-f", "mpegts"]);
        let a = args(&c).join(" ");
        assert!(
            a.contains("-i testsrc=size=160x120:rate=15:duration=3"),
            "{a}"
        );
        assert!(
            a.contains("-i sine=frequency=440:sample_rate=44100:duration=3"),
            "{a}"
        );
        assert!(a.contains("-vf noise=alls=30"), "{a}");
        assert!(
            a.contains("-crf 20 -metadata creation_time=2024-05-01T08:30:00Z -f mpegts o.mp4"),
            "{a}"
        );
        assert!(a.ends_with("o.mp4"));
    }

    #[test]
    fn a_silent_clip_has_no_audio_input_or_codec() {
        let a = args(&SyntheticClip::new(1).silent()).join(" ");
        assert!(!a.contains("sine="), "{a}");
        assert!(!a.contains("aac"), "{a}");
    }

    #[test]
    fn an_ffmpeg_failure_is_one_error_naming_the_file() {
        let dir = std::env::temp_dir().join("custos-synth-no-such-dir/x/y");
        let out = dir.join("c.mp4");
        let e = SyntheticClip::new(1).write(&out).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("c.mp4"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}
