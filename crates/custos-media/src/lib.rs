//! # custos-media: probe recorded footage through FFmpeg
//!
//! Container, streams, duration and creation time of a segment, and whether
//! it is truncated or corrupt. The only crate that links FFmpeg.
//!
//! ## What this crate must never do
//!
//! Refuse or drop footage: a file FFmpeg cannot read is still a segment, and
//! the probe reports it damaged with the reason.
#![deny(missing_docs)]
