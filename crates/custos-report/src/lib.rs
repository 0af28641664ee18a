//! The chain-of-custody report: the PDF a court reads beside an export
//! bundle (its `REPORT.pdf`), and what `custos report` writes.
//!
//! A report is bilingual (Chinese first, then English), A4, and holds:
//!
//! 1. a cover: the case or segments, who made it and when, the export and
//!    the approvals it rests on (request, requester, reason, approving
//!    supervisor, valid until), the ledger key's id and fingerprint, the
//!    checkpoint (with a QR code of its body) and how to verify;
//! 2. the 电子数据提取固定清单, the list of electronic data: one row per
//!    file with its bundle path, original name, recorder, officer,
//!    recording times and their source, duration, format, size, SHA-256
//!    (and SM3) and its damaged / late flags;
//! 3. per segment, a QR code of its SHA-256 and ingest seq, its custody
//!    timeline (every entry about it with seq, time, actor, action, short
//!    details and leaf hash) and its views and downloads with the approval
//!    each used.
//!
//! Every page's footer says "page N of M" and names the checkpoint (origin,
//! size, root) the report was made from.
//!
//! # Shape
//!
//! Three pure stages and one that draws: [`model`] turns the facts the
//! ledger gathered ([`ReportInput`]) into rows and lines ([`model::Contents`]);
//! [`layout`] breaks them into positioned items on A4 pages, measuring text
//! through a [`layout::Measure`]; [`pdf`] draws the pages with krilla, which
//! embeds the font as a subset. [`build`] runs all of them.
//!
//! ```no_run
//! fn report(input: &custos_report::ReportInput) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
//!     let font = custos_report::ReportFont::new(std::fs::read(custos_report::DEFAULT_FONT)?)?;
//!     Ok(custos_report::build(input, &font)?)
//! }
//! ```
//!
//! # What this crate must never do
//!
//! It never reads a file, a clock or the network (the font's bytes and the
//! time are handed in), never decides what a bundle holds (the ledger
//! does), and never draws PDF operators by hand: krilla writes the PDF.

#![deny(missing_docs)]

pub mod layout;
pub mod model;
pub mod pdf;
pub mod text;

pub use model::{Approval, EntryFacts, ExportFacts, ReportInput, SegmentFacts};
pub use pdf::ReportFont;

/// Where Debian's fonts-wqy-microhei package puts its font (Apache-2.0 or
/// GPL-3+ with the font exception): CJK and Latin, proportional and mono.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The font bytes are not a font this crate can use.
    #[error("the report font is not a TrueType/OpenType font or collection")]
    Font,
    /// A QR payload does not fit a QR code (a bug: payloads are short).
    #[error("a QR code's payload is too long")]
    QrTooLong,
    /// The PDF writer failed.
    #[error("writing the PDF: {0}")]
    Pdf(String),
}

/// Make the report of `input` as PDF bytes. `input.export` is `None` for a
/// report made outside an export.
pub fn build(input: &ReportInput, font: &ReportFont) -> Result<Vec<u8>, ReportError> {
    let contents = model::contents(input);
    let pages = layout::layout(font, &contents, input.export.is_none());
    let title = match &input.case {
        Some(case) => format!("{} — {case}", text::TITLE),
        None => text::TITLE.to_owned(),
    };
    pdf::render(&pages, font, &title)
}
