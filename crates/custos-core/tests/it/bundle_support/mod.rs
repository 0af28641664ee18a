//! An honest export bundle built from core types, and helpers to take a
//! bundle apart and put it back together (for tampering).
//!
//! The log the fixture builds (seq: action, subject):
//!
//! ```text
//! 0  token.created       dock-01             (registers the dock key; not about the footage)
//! 1  recorder.docked     RC-17               (dock-signed, not about the footage)
//! 2  segment.ingested    seg-a               (dock-signed, carries seg-a's manifest)
//! 3  segment.ingested    seg-b               (dock-signed, carries seg-b's manifest)
//! 4  segment.verified    seg-a               (dock-signed)
//! 5  segment.verified    seg-b               (dock-signed)
//! 6  case.created        case-7              (not about the footage)
//! 7  case.segment_linked case-7, seg-a
//! 8  segment.wiped       seg-a               (dock-signed)
//! 9  export.created      export-1            (segments [seg-a, seg-b], entries [2,3,4,5,7,8])
//! 10 case.closed         case-9              (after the export; not in the bundle)
//! ```
//!
//! The bundle holds entries 2, 3, 4, 5, 7, 8 and 9, their proofs against
//! the checkpoint of size 10 (the export entry's seq + 1, as the ledger
//! signs one for every export; entry 10 came later), both footage files, both manifests and the
//! dock and ledger keys. seg-a is an `.MP4` with SHA-256 only; seg-b has a
//! name that is not UTF-8 (so its footage is `.bin`), is larger than the
//! verifier's 1 MiB read buffer, and carries an SM3 digest.

#![allow(dead_code)]

use std::io::Read as _;

use custos_core::bundle::{BundleWriter, EntryLine, InclusionProof};
use custos_core::checkpoint::Checkpoint;
use custos_core::digest::MultiHasher;
use custos_core::dsse::Envelope;
use custos_core::entry::{Actor, ActorKind, Entry, Event};
use custos_core::keys::SigningKey;
use custos_core::manifest::{
    Dock, Manifest, Media, ObjectRef, OriginalName, Recorded, Recorder, Stream, StreamKind,
    TimeSource, Timestamp,
};
use custos_core::merkle::{inclusion_proof, MemoryTree};
use serde_json::{json, Map, Value};

pub(crate) const ORIGIN: &str = "custos.example.org/ledger";
pub(crate) const SEG_A: &str = "seg-a";
pub(crate) const SEG_B: &str = "seg-b";
pub(crate) const FOOTAGE_A: &str = "footage/seg-a.mp4";
pub(crate) const FOOTAGE_B: &str = "footage/seg-b.bin";
/// The seqs the bundle holds.
pub(crate) const BUNDLE_SEQS: [u64; 7] = [2, 3, 4, 5, 7, 8, 9];

/// Deterministic bytes: a xorshift stream seeded by `seed`.
pub(crate) fn footage_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn manifest(id: &str, name: &[u8], data: &[u8], sm3: bool) -> Manifest {
    let mut h = MultiHasher::new(sm3).unwrap();
    h.update(data);
    Manifest {
        segment_id: id.into(),
        recorder: Recorder {
            id: "RC-17".into(),
            model: "BWC-9".into(),
            profile: "generic-mass-storage".into(),
        },
        officer_id: "officer-42".into(),
        dock: Dock {
            id: "dock-01".into(),
            clock_offset_ms: -1500,
        },
        original_name: OriginalName::from_os_bytes(name),
        size: data.len() as u64,
        digests: h.finalize(),
        recorded: Recorded {
            start: ts("2024-05-01T08:30:00Z"),
            end: ts("2024-05-01T08:45:00Z"),
            source: TimeSource::Media,
        },
        media: Media {
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            duration_ms: Some(900_000),
            streams: vec![Stream {
                index: 0,
                kind: StreamKind::Video,
                codec: "h264".into(),
                width: Some(1920),
                height: Some(1080),
                sample_rate: None,
                channels: None,
            }],
            damaged: None,
        },
        ingested_at: ts("2024-05-01T18:00:00Z"),
        object: ObjectRef {
            url: "file:///var/lib/custos/objects".into(),
            key: format!("RC-17/{id}"),
        },
        late: false,
    }
}

fn details(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("details must be an object"),
    }
}

/// One honest log, and the bundle of its entries about seg-a and seg-b.
pub(crate) struct Fixture {
    pub dock: SigningKey,
    pub ledger: SigningKey,
    pub footage_a: Vec<u8>,
    pub footage_b: Vec<u8>,
    pub manifest_a: (Manifest, Envelope),
    pub manifest_b: (Manifest, Envelope),
    /// Every entry of the log, by seq.
    pub log: Vec<EntryLine>,
    /// The tree at the export: entries 0 to 9.
    pub tree: MemoryTree,
    /// The signed checkpoint of that tree (size 10).
    pub checkpoint: String,
    /// The tree of the whole log (size 11).
    pub full_tree: MemoryTree,
}

/// A log under construction; `hook` may alter each entry before it is
/// written (to play a buggy or dishonest ledger).
struct Log<'h> {
    lines: Vec<EntryLine>,
    hook: &'h dyn Fn(&mut Entry),
}

impl Log<'_> {
    fn prev(&self) -> Option<custos_core::merkle::Hash> {
        self.lines.last().map(leaf_of)
    }

    fn time(&self) -> Timestamp {
        Timestamp::from_unix_seconds(1_714_600_000 + 60 * self.lines.len() as i64).unwrap()
    }

    fn push(&mut self, mut entry: Entry) {
        (self.hook)(&mut entry);
        assert_eq!(entry.seq, self.lines.len() as u64);
        let raw = entry.to_bytes().unwrap();
        self.lines
            .push(EntryLine::new(entry.seq, &raw).expect("a canonical entry is one JSON line"));
    }

    /// An entry appended by the ledger for a person (no envelope).
    fn plain(&mut self, kind: ActorKind, id: &str, action: &str, subject: &str, d: Value) {
        let entry = Entry {
            seq: self.lines.len() as u64,
            time: self.time(),
            prev: self.prev(),
            actor: Actor {
                kind,
                id: id.into(),
            },
            action: action.parse().unwrap(),
            subject: subject.into(),
            details: details(d),
            envelope: None,
        };
        self.push(entry);
    }

    /// An entry for an event the dock signed.
    fn signed(&mut self, dock: &SigningKey, action: &str, subject: &str, d: Value) {
        let time = self.time();
        let event = Event::new(action, subject, details(d), time).unwrap();
        let envelope = event.sign(dock).unwrap();
        let entry = Entry::from_event(
            self.lines.len() as u64,
            self.prev(),
            time,
            Actor {
                kind: ActorKind::Dock,
                id: "dock-01".into(),
            },
            event,
            envelope,
        )
        .unwrap();
        self.push(entry);
    }
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture::build(&|_| {})
    }

    /// The fixture with `hook` applied to every entry as the ledger writes it.
    pub(crate) fn build(hook: &dyn Fn(&mut Entry)) -> Fixture {
        let dock = SigningKey::from_seed("dock-01", &[1; 32]).unwrap();
        let ledger = SigningKey::from_seed("ledger", &[2; 32]).unwrap();
        let footage_a = footage_bytes(300_000, 11);
        let footage_b = footage_bytes(2_500_000, 22);
        let ma = manifest(SEG_A, b"20240501_083000_0001.MP4", &footage_a, false);
        let mb = manifest(SEG_B, b"CAM\xff\xfe_0002", &footage_b, true);
        let ea = ma.sign(&dock).unwrap();
        let eb = mb.sign(&dock).unwrap();

        let mut log = Log {
            lines: Vec::new(),
            hook,
        };
        // How the ledger registers a dock's key: with its token.
        log.plain(
            ActorKind::Admin,
            "admin-1",
            "token.created",
            "dock-01",
            json!({
                "role": "dock",
                "token_id": "0123456789abcdef",
                "key": dock.verifier_key().to_string(),
                "key_id": dock.verifier_key().key_id(),
            }),
        );
        log.signed(&dock, "recorder.docked", "RC-17", json!({ "slot": 3 }));
        log.signed(
            &dock,
            "segment.ingested",
            SEG_A,
            json!({ "manifest": serde_json::to_value(&ea).unwrap() }),
        );
        log.signed(
            &dock,
            "segment.ingested",
            SEG_B,
            json!({ "manifest": serde_json::to_value(&eb).unwrap() }),
        );
        log.signed(
            &dock,
            "segment.verified",
            SEG_A,
            json!({ "sha256": ma.digests.sha256 }),
        );
        log.signed(
            &dock,
            "segment.verified",
            SEG_B,
            json!({ "sha256": mb.digests.sha256 }),
        );
        log.plain(
            ActorKind::Supervisor,
            "sup-1",
            "case.created",
            "case-7",
            json!({}),
        );
        log.plain(
            ActorKind::Supervisor,
            "sup-1",
            "case.segment_linked",
            "case-7",
            json!({ "segment_id": SEG_A }),
        );
        log.signed(&dock, "segment.wiped", SEG_A, json!({}));
        log.plain(
            ActorKind::Reviewer,
            "rev-1",
            "export.created",
            "export-1",
            json!({ "segments": [SEG_A, SEG_B], "entries": [2, 3, 4, 5, 7, 8], "case": "case-7" }),
        );
        log.plain(
            ActorKind::Supervisor,
            "sup-1",
            "case.closed",
            "case-9",
            json!({}),
        );

        let leaves: Vec<_> = log.lines.iter().map(leaf_of).collect();
        let full_tree = MemoryTree::from_leaves(&leaves);
        let tree = MemoryTree::from_leaves(&leaves[..10]);
        let checkpoint = Checkpoint::new(ORIGIN, tree.size(), tree.root())
            .unwrap()
            .sign(&ledger);
        Fixture {
            dock,
            ledger,
            footage_a,
            footage_b,
            manifest_a: (ma, ea),
            manifest_b: (mb, eb),
            log: log.lines,
            tree,
            checkpoint,
            full_tree,
        }
    }

    pub(crate) fn proof(&self, seq: u64) -> InclusionProof {
        InclusionProof {
            index: seq,
            size: self.tree.size(),
            hashes: inclusion_proof(&self.tree, seq, self.tree.size()).unwrap(),
        }
    }

    pub(crate) fn bundle_lines(&self) -> Vec<EntryLine> {
        BUNDLE_SEQS
            .iter()
            .map(|&s| self.log[s as usize].clone())
            .collect()
    }

    /// The honest bundle, written by [`BundleWriter`] in the recommended order.
    pub(crate) fn bundle(&self) -> Vec<u8> {
        let proofs: Vec<_> = BUNDLE_SEQS.iter().map(|&s| self.proof(s)).collect();
        self.write(&self.checkpoint, &self.bundle_lines(), &proofs)
    }

    fn write(&self, checkpoint: &str, lines: &[EntryLine], proofs: &[InclusionProof]) -> Vec<u8> {
        let mut w = BundleWriter::with_mtime(Vec::new(), 1_714_600_000);
        w.add_key(&self.dock.verifier_key()).unwrap();
        w.add_key(&self.ledger.verifier_key()).unwrap();
        w.add_checkpoint(checkpoint).unwrap();
        w.add_manifest(&self.manifest_a.1).unwrap();
        w.add_manifest(&self.manifest_b.1).unwrap();
        w.add_entry_lines(lines).unwrap();
        for proof in proofs {
            w.add_proof(proof).unwrap();
        }
        w.add_footage(&self.manifest_a.0, &self.footage_a[..])
            .unwrap();
        w.add_footage(&self.manifest_b.0, &self.footage_b[..])
            .unwrap();
        w.finish().unwrap()
    }

    /// The honest bundle of a second export of both segments, made after a
    /// hold was placed on seg-a: the log goes on with
    ///
    /// ```text
    /// 11 hold.placed      seg-a
    /// 12 export.created   export-2  (entries [2,3,4,5,7,8,9,11])
    /// ```
    ///
    /// and the bundle holds 2, 3, 4, 5, 7, 8, 9, 11 and 12 with proofs at
    /// the checkpoint of size 13. Returns it and the tree of size 13.
    pub(crate) fn second_export(&self) -> (Vec<u8>, MemoryTree) {
        let mut log = Log {
            lines: self.log.clone(),
            hook: &|_| {},
        };
        log.plain(
            ActorKind::Supervisor,
            "sup-1",
            "hold.placed",
            SEG_A,
            json!({ "reason": "court order" }),
        );
        log.plain(
            ActorKind::Reviewer,
            "rev-1",
            "export.created",
            "export-2",
            json!({ "segments": [SEG_A, SEG_B], "entries": [2, 3, 4, 5, 7, 8, 9, 11] }),
        );
        let leaves: Vec<_> = log.lines.iter().map(leaf_of).collect();
        let tree = MemoryTree::from_leaves(&leaves);
        let checkpoint = Checkpoint::new(ORIGIN, tree.size(), tree.root())
            .unwrap()
            .sign(&self.ledger);
        let seqs = [2u64, 3, 4, 5, 7, 8, 9, 11, 12];
        let lines: Vec<_> = seqs
            .iter()
            .map(|&s| log.lines[s as usize].clone())
            .collect();
        let proofs: Vec<_> = seqs
            .iter()
            .map(|&seq| InclusionProof {
                index: seq,
                size: tree.size(),
                hashes: inclusion_proof(&tree, seq, tree.size()).unwrap(),
            })
            .collect();
        (self.write(&checkpoint, &lines, &proofs), tree)
    }
}

/// The members of a tar, in order: (path, bytes).
pub(crate) fn unpack(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        let path = String::from_utf8(member.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        member.read_to_end(&mut data).unwrap();
        out.push((path, data));
    }
    out
}

/// A tar of these members (regular files, GNU headers), as any tool would
/// write it: no checks, so tampered bundles can be built.
pub(crate) fn pack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// The member at `path`, mutably.
pub(crate) fn member<'a>(members: &'a mut [(String, Vec<u8>)], path: &str) -> &'a mut Vec<u8> {
    &mut members
        .iter_mut()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no member {path}"))
        .1
}

/// Remove the member at `path`.
pub(crate) fn remove(members: &mut Vec<(String, Vec<u8>)>, path: &str) {
    let before = members.len();
    members.retain(|(p, _)| p != path);
    assert_eq!(members.len(), before - 1, "no member {path}");
}

/// entries.jsonl as lines (without newlines).
pub(crate) fn entry_lines(members: &mut [(String, Vec<u8>)]) -> Vec<String> {
    String::from_utf8(member(members, "entries.jsonl").clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Replace entries.jsonl with these lines.
pub(crate) fn set_entry_lines(members: &mut [(String, Vec<u8>)], lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    *member(members, "entries.jsonl") = text.into_bytes();
}

/// `len` deterministic bytes, made a block at a time: a 1 MiB pseudo-random
/// block whose first bytes are overwritten with the block number, so no
/// two blocks are equal and nothing the size of the whole is ever allocated.
pub(crate) struct Generated {
    remaining: u64,
    block: Vec<u8>,
    pos: usize,
    counter: u64,
}

impl Generated {
    pub(crate) fn new(len: u64) -> Generated {
        Generated {
            remaining: len,
            block: footage_bytes(1 << 20, 5),
            pos: 1 << 20,
            counter: 0,
        }
    }
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        if self.pos == self.block.len() {
            self.counter += 1;
            self.block[..8].copy_from_slice(&self.counter.to_le_bytes());
            self.pos = 0;
        }
        let n = buf
            .len()
            .min(self.block.len() - self.pos)
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Stream a bundle of one segment of `len` generated bytes into `out` with
/// [`BundleWriter`]; returns the ledger key that signed its checkpoint.
pub(crate) fn write_big_bundle<W: std::io::Write>(out: W, len: u64) -> SigningKey {
    let dock = SigningKey::from_seed("dock-01", &[1; 32]).unwrap();
    let ledger = SigningKey::from_seed("ledger", &[2; 32]).unwrap();
    let mut hasher = MultiHasher::sha256();
    let mut reader = Generated::new(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let mut m = manifest("big", b"BIG.MP4", &[], false);
    m.size = len;
    m.digests = hasher.finalize();
    let envelope = m.sign(&dock).unwrap();

    let mut log = Log {
        lines: Vec::new(),
        hook: &|_| {},
    };
    log.plain(
        ActorKind::Admin,
        "admin-1",
        "token.created",
        "dock-01",
        json!({ "role": "dock", "key": dock.verifier_key().to_string() }),
    );
    log.signed(
        &dock,
        "segment.ingested",
        "big",
        json!({ "manifest": serde_json::to_value(&envelope).unwrap() }),
    );
    log.plain(
        ActorKind::Reviewer,
        "rev-1",
        "export.created",
        "export-big",
        json!({ "segments": ["big"], "entries": [1] }),
    );
    let leaves: Vec<_> = log.lines.iter().map(leaf_of).collect();
    let tree = MemoryTree::from_leaves(&leaves);
    let checkpoint = Checkpoint::new(ORIGIN, tree.size(), tree.root())
        .unwrap()
        .sign(&ledger);

    let mut w = BundleWriter::new(out);
    w.add_key(&dock.verifier_key()).unwrap();
    w.add_key(&ledger.verifier_key()).unwrap();
    w.add_checkpoint(&checkpoint).unwrap();
    w.add_manifest(&envelope).unwrap();
    w.add_entry_lines(&log.lines[1..]).unwrap();
    for seq in 1..3 {
        w.add_proof(&InclusionProof {
            index: seq,
            size: tree.size(),
            hashes: inclusion_proof(&tree, seq, tree.size()).unwrap(),
        })
        .unwrap();
    }
    w.add_footage(&m, Generated::new(len)).unwrap();
    w.finish().unwrap();
    ledger
}

/// The leaf hash of a line built here (its `raw` is always base64).
fn leaf_of(line: &EntryLine) -> custos_core::merkle::Hash {
    line.leaf_hash().expect("lines built here decode")
}
