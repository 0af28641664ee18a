//! Names the dock gives: segment ids and object keys, made from what the
//! recorder reported — outside input that may hold `..`, `/`, NUL, bytes
//! that are not UTF-8, or hundreds of characters.
//!
//! Both are fixed before the first byte of a segment is read (DESIGN.md:
//! "Object keys are known before the first byte is read"), from the
//! recorder id, the file's path on the recorder, its size and its file
//! time, so that a retry after a crash lands on the same key and the same
//! journal record:
//!
//! - segment id: `sg-` and 32 hex digits of SHA-256 over those four values;
//! - object key: `<recorder>/<file date>/<file time>_<size>_<hash8>_<name>`,
//!   where every part is reduced to `A-Z a-z 0-9 . _ -`, no part starts
//!   with a dot, the name keeps at most [`MAX_NAME_CHARS`] characters, and
//!   `hash8` (8 hex digits of the same SHA-256) keeps apart two files whose
//!   names reduce to the same text.
//!
//! A second, different recording with the same name, size and time (a
//! recorder whose clock and file counter were reset) gets a
//! `discriminator`, its content digest, hashed in as well: a new segment
//! id and a new object key, so it never lands on the stored segment's key
//! (invariant 2), and a retry — which hashes the same bytes — lands on the
//! same key again. Without a discriminator, ids and keys are as they always
//! were.
//!
//! The original name is never lost: the manifest keeps it byte for byte.
//! This module never reads a file or a clock: the caller passes what it saw.

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// Longest file-name part of an object key, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest recorder-id part of an object key.
pub const MAX_RECORDER_CHARS: usize = 64;

/// What identifies a file on a recorder, as the dock saw it at discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity<'a> {
    /// The recorder's id.
    pub recorder_id: &'a str,
    /// The file's path relative to the media root, raw bytes.
    pub relative_path: &'a [u8],
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// What tells it from an earlier recording with the same four values
    /// (its content digest), if anything must.
    pub discriminator: Option<&'a str>,
}

impl SourceIdentity<'_> {
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"custos-segment-v1\0");
        h.update((self.recorder_id.len() as u64).to_be_bytes());
        h.update(self.recorder_id.as_bytes());
        h.update((self.relative_path.len() as u64).to_be_bytes());
        h.update(self.relative_path);
        h.update(self.size.to_be_bytes());
        h.update(self.mtime_ns.to_be_bytes());
        if let Some(d) = self.discriminator {
            h.update(b"\0discriminator\0");
            h.update((d.len() as u64).to_be_bytes());
            h.update(d.as_bytes());
        }
        h.finalize().into()
    }

    /// The segment id: `sg-` and 32 lower-case hex digits.
    pub fn segment_id(&self) -> String {
        format!("sg-{}", hex::encode(&self.digest()[..16]))
    }

    /// The object key (see the module documentation).
    pub fn object_key(&self) -> String {
        let digest = self.digest();
        let name = self
            .relative_path
            .rsplit(|b| *b == b'/')
            .next()
            .unwrap_or(self.relative_path);
        let recorder = sanitize(self.recorder_id.as_bytes(), MAX_RECORDER_CHARS);
        let secs = i64::try_from(self.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0);
        let when = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        format!(
            "{recorder}/{:04}-{:02}-{:02}/{:04}{:02}{:02}T{:02}{:02}{:02}Z_{}_{}_{}",
            when.year(),
            u8::from(when.month()),
            when.day(),
            when.year(),
            u8::from(when.month()),
            when.day(),
            when.hour(),
            when.minute(),
            when.second(),
            self.size,
            hex::encode(&digest[..4]),
            sanitize(name, MAX_NAME_CHARS),
        )
    }
}

/// Reduce `raw` to `A-Z a-z 0-9 . _ -`, at most `max` characters, never
/// empty, never starting with a dot. Other bytes (and whole invalid UTF-8
/// sequences, NUL, `/`) become `_`; runs of `_` are kept short.
pub fn sanitize(raw: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.chars().count() >= max {
            break;
        }
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let c = if keep { c } else { '_' };
        if c == '_' && out.ends_with("__") {
            continue;
        }
        if c == '.' && out.is_empty() {
            out.push('_');
            continue;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(path: &'a [u8]) -> SourceIdentity<'a> {
        SourceIdentity {
            recorder_id: "SIM0001",
            relative_path: path,
            size: 1234,
            mtime_ns: 1_714_552_200_000_000_000,
            discriminator: None,
        }
    }

    fn key_chars_ok(key: &str) {
        assert!(key.len() < 1024, "{key}");
        for part in key.split('/') {
            assert!(!part.is_empty() && !part.starts_with('.'), "{key}");
            assert!(
                part.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{key}"
            );
        }
    }

    #[test]
    fn keys_are_safe_for_hostile_names() {
        let long = vec![b'A'; 300];
        let hostile: Vec<&[u8]> = vec![
            b"../../etc/passwd",
            b"/abs/olute.MP4",
            b"NUL\0IN.MP4",
            b"CAM\xff\xfe.MP4",
            b"..",
            b".",
            b"",
            "录像_0001.MP4".as_bytes(),
            &long,
        ];
        let mut keys = std::collections::HashSet::new();
        for name in hostile {
            let k = id(name).object_key();
            key_chars_ok(&k);
            assert!(
                k.starts_with("SIM0001/2024-05-01/20240501T083000Z_1234_"),
                "{k}"
            );
            assert!(keys.insert(k), "distinct names give distinct keys");
        }
        let long_key = id(&long).object_key();
        assert!(long_key.ends_with(&"A".repeat(MAX_NAME_CHARS)));
    }

    #[test]
    fn ids_and_keys_are_stable_and_distinct() {
        let a = id(b"Normal/A.MP4");
        let b = id(b"Event/A.MP4");
        assert_eq!(a.segment_id(), id(b"Normal/A.MP4").segment_id());
        assert_ne!(a.segment_id(), b.segment_id());
        assert_ne!(a.object_key(), b.object_key());
        assert_eq!(a.segment_id().len(), 35);
        let mut c = a.clone();
        c.size += 1;
        assert_ne!(a.segment_id(), c.segment_id());
        // Same name, same folder, other recorder.
        let d = SourceIdentity {
            recorder_id: "../x",
            ..a.clone()
        };
        let k = d.object_key();
        key_chars_ok(&k);
        assert!(k.starts_with("_._x/"), "{k}");
        // A second recording with the same name, size and time.
        let e = SourceIdentity {
            discriminator: Some("sha256:00"),
            ..a.clone()
        };
        assert_ne!(e.segment_id(), a.segment_id());
        assert_ne!(e.object_key(), a.object_key());
        assert_eq!(e.object_key(), SourceIdentity { ..e.clone() }.object_key());
        let f = SourceIdentity {
            discriminator: Some("sha256:01"),
            ..a.clone()
        };
        assert_ne!(e.object_key(), f.object_key());
    }

    #[test]
    fn sanitize_examples() {
        assert_eq!(sanitize(b"A B\0C", 10), "A_B_C");
        assert_eq!(sanitize(b"..", 10), "_.");
        assert_eq!(sanitize(b"", 10), "_");
        assert_eq!(sanitize(b"a////b", 10), "a__b");
        assert_eq!(sanitize("执法".as_bytes(), 10), "__");
        assert_eq!(sanitize(b"abcdef", 3), "abc");
    }
}
