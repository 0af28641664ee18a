//! A walk over the top-level boxes of an ISO base media file (MP4, MOV,
//! 3GP): the container most body-worn cameras record.
//!
//! FFmpeg tells us little about *why* an MP4 will not open, and opens some
//! truncated ones without complaint (when the `moov` index sits before the
//! media data, the index promises samples the file no longer holds). The
//! box headers tell both stories exactly, for the price of reading 8 or 16
//! bytes per top-level box: a box that claims to run past the end of the
//! file was cut, and a file without `moov` (or fragments) was never
//! finalised.
//!
//! This module reads box headers only, never box contents, and never more
//! than [`MAX_BOXES`] of them: a hostile file cannot make it read much.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Most top-level boxes walked; real recordings have a handful.
pub const MAX_BOXES: usize = 10_000;

/// Box types that may open an ISO base media file (QuickTime files may
/// start with `wide`, `free` or even `mdat`).
const OPENING_BOXES: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"styp",
];

/// What the box walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxReport {
    /// A `moov` box (the sample index) is present.
    pub has_moov: bool,
    /// A `moof` box (a movie fragment, which carries its own index) is present.
    pub has_moof: bool,
    /// The first problem found in the box structure, if any.
    pub problem: Option<BoxProblem>,
}

/// A structural problem of the box layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxProblem {
    /// A box claims more bytes than the file holds after its start.
    Truncated {
        /// The box type, e.g. `mdat`.
        kind: String,
        /// Byte offset of the box.
        offset: u64,
        /// Bytes the box header declares.
        declared: u64,
        /// Bytes of it present in the file.
        present: u64,
    },
    /// A box header is impossible (a size below the header's own).
    BadHeader {
        /// Byte offset of the box.
        offset: u64,
        /// The size found.
        size: u64,
    },
    /// The file ends inside a box header.
    CutHeader {
        /// Byte offset of the partial header.
        offset: u64,
    },
}

impl std::fmt::Display for BoxProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoxProblem::Truncated {
                kind,
                offset,
                declared,
                present,
            } => write!(
                f,
                "truncated: the '{kind}' box at byte {offset} declares {declared} bytes but only {present} are present"
            ),
            BoxProblem::BadHeader { offset, size } => {
                write!(f, "corrupt: the box at byte {offset} declares an impossible size of {size} bytes")
            }
            BoxProblem::CutHeader { offset } => {
                write!(f, "truncated: the file ends inside the box header at byte {offset}")
            }
        }
    }
}

/// Walk the top-level boxes of `file` (of `len` bytes). `Ok(None)` when the
/// file does not look like an ISO base media file at all.
pub fn scan(file: &mut File, len: u64) -> io::Result<Option<BoxReport>> {
    let mut report = BoxReport {
        has_moov: false,
        has_moof: false,
        problem: None,
    };
    let mut offset = 0u64;
    for n in 0..MAX_BOXES {
        if offset >= len {
            break;
        }
        if len - offset < 8 {
            if n == 0 {
                return Ok(None);
            }
            report.problem = Some(BoxProblem::CutHeader { offset });
            break;
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        if n == 0 && !OPENING_BOXES.contains(&&kind) {
            return Ok(None);
        }
        let (size, header_len) = match size32 {
            0 => (len - offset, 8),
            1 => {
                if len - offset < 16 {
                    report.problem = Some(BoxProblem::CutHeader { offset });
                    break;
                }
                let mut large = [0u8; 8];
                file.read_exact(&mut large)?;
                (u64::from_be_bytes(large), 16)
            }
            s => (u64::from(s), 8),
        };
        if size < header_len {
            report.problem = Some(BoxProblem::BadHeader { offset, size });
            break;
        }
        match &kind {
            b"moov" => report.has_moov = true,
            b"moof" => report.has_moof = true,
            _ => {}
        }
        let present = len - offset;
        if size > present {
            report.problem = Some(BoxProblem::Truncated {
                kind: String::from_utf8_lossy(&kind).into_owned(),
                offset,
                declared: size,
                present,
            });
            break;
        }
        offset += size;
    }
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut v = ((body + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.resize(body + 8, 0);
        v
    }

    fn scan_bytes(bytes: &[u8]) -> Option<BoxReport> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        scan(&mut f, bytes.len() as u64).unwrap()
    }

    #[test]
    fn whole_file() {
        let mut v = boxed(b"ftyp", 16);
        v.extend(boxed(b"moov", 100));
        v.extend(boxed(b"mdat", 1000));
        let r = scan_bytes(&v).unwrap();
        assert!(r.has_moov);
        assert_eq!(r.problem, None);
    }

    #[test]
    fn cut_mdat_and_missing_moov() {
        let mut v = boxed(b"ftyp", 16);
        v.extend(boxed(b"mdat", 1000));
        v.truncate(600);
        let r = scan_bytes(&v).unwrap();
        assert!(!r.has_moov);
        assert!(matches!(
            r.problem,
            Some(BoxProblem::Truncated { ref kind, offset: 24, declared: 1008, present: 576 }) if kind == "mdat"
        ));
    }

    #[test]
    fn not_bmff_and_bad_sizes() {
        assert_eq!(scan_bytes(b"RIFF\0\0\0\0AVI LIST"), None);
        assert_eq!(scan_bytes(b"abc"), None);
        let mut v = boxed(b"ftyp", 16);
        v.extend_from_slice(&4u32.to_be_bytes());
        v.extend_from_slice(b"junk");
        let r = scan_bytes(&v).unwrap();
        assert_eq!(
            r.problem,
            Some(BoxProblem::BadHeader {
                offset: 24,
                size: 4
            })
        );
        let mut v = boxed(b"ftyp", 16);
        v.extend_from_slice(&[0, 0, 1]);
        let r = scan_bytes(&v).unwrap();
        assert_eq!(r.problem, Some(BoxProblem::CutHeader { offset: 24 }));
    }
}
