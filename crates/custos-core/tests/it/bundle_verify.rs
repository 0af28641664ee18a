//! Export bundles: an honest bundle passes; each way of tampering with one is
//! caught, with an error naming the file or entry at fault.

use crate::bundle_support::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custos_core::bundle::{
    self, BundleError, BundleWriteError, BundleWriter, Origin, Problem, Report,
};
use custos_core::checkpoint::Checkpoint;
use custos_core::entry::Entry;
use custos_core::keys::{SigningKey, VerifierKey};
use custos_core::merkle::leaf_hash;
use serde_json::Value;

fn verify(tar: &[u8], pinned: Option<&VerifierKey>) -> Result<Report, BundleError> {
    let trusted = pinned.map(std::slice::from_ref).unwrap_or_default();
    bundle::verify(tar, trusted, &mut |_| {})
}

/// Verify with the ledger key pinned and return the error, which must name
/// `location`, and its one-line message.
fn rejected(tar: &[u8], fixture: &Fixture, location: &str) -> (Problem, String) {
    let pinned = fixture.ledger.verifier_key();
    let err = verify(tar, Some(&pinned)).expect_err("tampered bundle accepted");
    let message = err.to_string();
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
    assert!(!err.is_unreadable(), "{message}");
    assert_eq!(err.location(), Some(location), "{message}");
    assert!(message.starts_with(&format!("{location}: ")), "{message}");
    match err {
        BundleError::Invalid { problem, .. } => (problem, message),
        other => panic!("not an invalid-bundle error: {other}"),
    }
}

fn tampered(fixture: &Fixture, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let mut members = unpack(&fixture.bundle());
    edit(&mut members);
    pack(&members)
}

#[test]
fn honest_bundle_passes_with_the_pinned_key() {
    let f = Fixture::new();
    let tar = f.bundle();
    let mut last = 0;
    let report = bundle::verify(&tar[..], &[f.ledger.verifier_key()], &mut |n| {
        assert!(n >= last);
        last = n;
    })
    .unwrap();
    assert_eq!(last, tar.len() as u64, "progress reaches the end");
    assert_eq!(report.entries, 7);
    assert_eq!(report.export_seq, 9);
    assert_eq!(report.checkpoint.size(), 10);
    assert_eq!(report.checkpoint.root(), f.tree.root());
    assert_eq!(report.checkpoint.origin(), ORIGIN);
    assert!(report.is_valid());
    assert_eq!(
        report.origin,
        Origin::Pinned {
            key_id: f.ledger.verifier_key().key_id()
        }
    );
    assert_eq!(report.signing_keys, vec![f.dock.verifier_key().key_id()]);
    assert_eq!(report.footage_bytes, 2_800_000);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let ids: Vec<_> = report
        .segments
        .iter()
        .map(|s| s.segment_id.as_str())
        .collect();
    assert_eq!(ids, [SEG_A, SEG_B]);
    assert_eq!(report.segments[0].footage, FOOTAGE_A);
    assert_eq!(report.segments[1].footage, FOOTAGE_B);
    assert_eq!(report.segments[0].sha256, f.manifest_a.0.digests.sha256);
    assert!(!report.segments[0].sm3_checked);
    assert_eq!(report.segments[1].sm3_checked, cfg!(feature = "sm3"));
}

#[test]
fn without_a_pin_everything_else_is_checked_but_the_bundle_is_not_valid() {
    let f = Fixture::new();
    let report = verify(&f.bundle(), None).unwrap();
    assert!(!report.is_valid());
    assert_eq!(
        report.origin,
        Origin::Unverified {
            signers: vec![f.ledger.verifier_key().key_id()],
            bundle_key: Some(f.ledger.verifier_key().key_id()),
        }
    );
    assert_eq!(report.signing_keys, vec![f.dock.verifier_key().key_id()]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // The other checks still run: tampered footage is still caught.
    let tar = tampered(&f, |m| member(m, FOOTAGE_A)[7] ^= 1);
    let err = verify(&tar, None).unwrap_err();
    assert_eq!(err.location(), Some(FOOTAGE_A), "{err}");
}

#[test]
fn a_forged_bundle_with_its_own_key_pair_is_never_valid() {
    // Anyone can make a bundle consistent with itself: a fresh ledger key
    // pair, its .pub in keys/, a checkpoint signed with it.
    let forger = SigningKey::from_seed("ledger", &[77; 32]).unwrap();
    let mut f = Fixture::new();
    f.checkpoint = Checkpoint::new(ORIGIN, f.tree.size(), f.tree.root())
        .unwrap()
        .sign(&forger);
    f.ledger = forger;
    let tar = f.bundle();
    let report = verify(&tar, None).unwrap();
    assert!(!report.is_valid(), "{:?}", report.origin);
    // Against the real ledger key: refused.
    let real = SigningKey::from_seed("ledger", &[2; 32]).unwrap();
    let err = verify(&tar, Some(&real.verifier_key())).unwrap_err();
    assert!(
        matches!(err.problem(), Some(Problem::CheckpointNotPinned { .. })),
        "{err}"
    );
    // Several trusted keys: one of them must have signed.
    let other = SigningKey::from_seed("other", &[5; 32]).unwrap();
    let trusted = [other.verifier_key(), real.verifier_key()];
    let err = bundle::verify(&tar[..], &trusted, &mut |_| {}).unwrap_err();
    assert_eq!(err.location(), Some("checkpoint"), "{err}");
    let honest = Fixture::new().bundle();
    let report = bundle::verify(&honest[..], &trusted, &mut |_| {}).unwrap();
    assert!(report.is_valid());
}

#[test]
fn the_layout_is_as_documented() {
    let f = Fixture::new();
    let paths: Vec<String> = unpack(&f.bundle()).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "keys/dock-01.pub",
            "keys/ledger.pub",
            "checkpoint",
            "manifests/seg-a.dsse.json",
            "manifests/seg-b.dsse.json",
            "entries.jsonl",
            "proofs/2.json",
            "proofs/3.json",
            "proofs/4.json",
            "proofs/5.json",
            "proofs/7.json",
            "proofs/8.json",
            "proofs/9.json",
            FOOTAGE_A,
            FOOTAGE_B,
            "VERIFY.txt",
            "VERIFY.zh-CN.txt",
        ]
    );
    let mut members = unpack(&f.bundle());
    assert_eq!(*member(&mut members, FOOTAGE_A), f.footage_a);
    assert_eq!(
        String::from_utf8(member(&mut members, "keys/ledger.pub").clone()).unwrap(),
        format!("{}\n", f.ledger.verifier_key())
    );
    assert_eq!(
        *member(&mut members, "manifests/seg-b.dsse.json"),
        f.manifest_b.1.to_json()
    );
    // The /v1/entries line format, field order included.
    let line = entry_lines(&mut members)[0].clone();
    let raw = &f.log[2].raw_bytes().unwrap();
    assert_eq!(
        line,
        format!(
            "{{\"seq\":2,\"raw\":\"{}\",\"entry\":{}}}",
            B64.encode(raw),
            std::str::from_utf8(raw).unwrap()
        )
    );
    let proof: Value = serde_json::from_slice(member(&mut members, "proofs/9.json")).unwrap();
    assert_eq!(proof["index"], 9);
    assert_eq!(proof["size"], 10);
    assert!(proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
}

#[test]
fn headers_are_deterministic() {
    let f = Fixture::new();
    let one = f.bundle();
    assert_eq!(
        one,
        f.bundle(),
        "the same bundle twice gives the same bytes"
    );
    let mut archive = tar::Archive::new(&one[..]);
    for member in archive.entries().unwrap() {
        let member = member.unwrap();
        let h = member.header();
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        assert_eq!(h.mtime().unwrap(), 1_714_600_000);
        assert_eq!(h.username().unwrap(), Some(""));
        assert!(h.entry_type().is_file());
    }
    let mut w = BundleWriter::new(Vec::new());
    w.add_key(&f.dock.verifier_key()).unwrap();
    let tar = w.finish().unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    for member in archive.entries().unwrap() {
        assert_eq!(member.unwrap().header().mtime().unwrap(), 0);
    }
}

// ---------------------------------------------------------------------------
// Tampering

#[test]
fn one_byte_of_footage_changed() {
    let f = Fixture::new();
    for (path, at) in [(FOOTAGE_A, 0), (FOOTAGE_A, 299_999), (FOOTAGE_B, 1_500_000)] {
        let tar = tampered(&f, |m| member(m, path)[at] ^= 0x01);
        let (problem, message) = rejected(&tar, &f, path);
        assert!(
            matches!(problem, Problem::FootageDigest { .. }),
            "{message}"
        );
        assert!(
            message.starts_with(&format!("{path}: SHA-256 does not match manifest")),
            "{message}"
        );
    }
}

#[test]
fn footage_of_another_size() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        member(m, FOOTAGE_A).push(0);
    });
    let (problem, message) = rejected(&tar, &f, FOOTAGE_A);
    assert!(
        matches!(
            problem,
            Problem::FootageSize {
                expected: 300_000,
                found: 300_001
            }
        ),
        "{message}"
    );
}

#[test]
fn one_byte_of_a_manifest_changed() {
    let f = Fixture::new();
    let path = "manifests/seg-a.dsse.json";
    let len = f.manifest_a.1.to_json().len();
    // Every 7th byte: syntax, base64, payload type, keyid and signature.
    for at in (0..len).step_by(7) {
        let tar = tampered(&f, |m| member(m, path)[at] ^= 0x01);
        let (problem, message) = rejected(&tar, &f, path);
        assert!(
            matches!(problem, Problem::Envelope(_) | Problem::Manifest(_)),
            "byte {at}: {message}"
        );
    }
}

#[test]
fn a_manifest_edited_and_signed_again() {
    // A forger edits the manifest and signs it with a key of their own,
    // which they add to keys/: the signature verifies, but it is not the
    // manifest the ledger logged.
    let f = Fixture::new();
    let forger = SigningKey::from_seed("dock-01", &[66; 32]).unwrap();
    let mut edited = f.manifest_a.0.clone();
    edited.officer_id = "officer-43".into();
    let envelope = edited.sign(&forger).unwrap();
    let tar = tampered(&f, |m| {
        *member(m, "manifests/seg-a.dsse.json") = envelope.to_json();
        m.push((
            "keys/dock-01+forged.pub".into(),
            format!("{}\n", forger.verifier_key()).into_bytes(),
        ));
        // The file name must be the key's own; use its name+hash.
        m.last_mut().unwrap().0 = format!("keys/{}.pub", forger.verifier_key().key_id());
    });
    let (problem, message) = rejected(&tar, &f, "manifests/seg-a.dsse.json");
    assert!(
        matches!(problem, Problem::NotIngested { ref seqs } if seqs == &[2]),
        "{message}"
    );
    assert!(message.contains("no segment.ingested entry"), "{message}");
}

#[test]
fn one_byte_of_an_entry_changed() {
    let f = Fixture::new();
    // In the raw base64: the line no longer holds the entry it shows.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        let line = &mut lines[2]; // seq 4
        let at = line.find("\"raw\":\"").unwrap() + 40;
        let mut bytes = std::mem::take(line).into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        *line = String::from_utf8(bytes).unwrap();
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 3 (seq 4)");
    assert!(
        matches!(
            problem,
            Problem::RawEntry(_) | Problem::RawBase64 | Problem::EntryFieldMismatch
        ),
        "{message}"
    );

    // In both raw and entry, consistently: the entry is no longer the one in
    // the log the checkpoint vouches for.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        let raw = String::from_utf8(f.log[7].raw_bytes().unwrap())
            .unwrap()
            .replace("sup-1", "sup-2");
        let entry: Value = serde_json::from_str(&raw).unwrap();
        lines[4] =
            serde_json::json!({"seq": 7, "raw": B64.encode(&raw), "entry": entry}).to_string();
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 5 (seq 7)");
    assert!(matches!(problem, Problem::NotIncluded { .. }), "{message}");
    assert!(message.contains("proofs/7.json"), "{message}");

    // The line's seq changed to match a different proof.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines[4] = lines[4].replacen("{\"seq\":7", "{\"seq\":6", 1);
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 5 (seq 6)");
    assert!(
        matches!(
            problem,
            Problem::SeqMismatch {
                line_seq: 6,
                entry_seq: 7
            }
        ),
        "{message}"
    );

    // The readable `entry` changed, `raw` intact: a reader of `entry` would
    // be misled, so it is refused.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        let mut line: Value = serde_json::from_str(&lines[4]).unwrap();
        line["entry"]["actor"]["id"] = "sup-2".into();
        lines[4] = line.to_string();
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 5 (seq 7)");
    assert!(matches!(problem, Problem::EntryFieldMismatch), "{message}");
}

#[test]
fn an_entry_dropped_while_its_proof_remains() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines.remove(2); // seq 4, segment.verified of seg-a
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "proofs/4.json");
    assert!(
        matches!(problem, Problem::ProofWithoutEntry { seq: 4 }),
        "{message}"
    );
}

#[test]
fn an_entry_dropped_from_the_middle_of_a_run_with_its_proof() {
    // Entries 2..=5 are consecutive; without 4, entries 3 and 5 are no
    // longer adjacent so no prev link is broken. The export entry's list
    // is what catches it.
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines.remove(2);
        set_entry_lines(m, &lines);
        remove(m, "proofs/4.json");
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl");
    assert!(
        matches!(problem, Problem::ListedEntryMissing { seq: 4, export: 9 }),
        "{message}"
    );
    assert_eq!(
        message,
        "entries.jsonl: seq 4, listed by the export entry (seq 9), is missing"
    );
}

#[test]
fn the_last_entry_about_a_segment_dropped() {
    // seq 8 (segment.wiped) is the last entry about seg-a before the export.
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines.remove(5);
        set_entry_lines(m, &lines);
        remove(m, "proofs/8.json");
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl");
    assert!(
        matches!(problem, Problem::ListedEntryMissing { seq: 8, .. }),
        "{message}"
    );
}

#[test]
fn the_export_entry_dropped() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines.pop();
        set_entry_lines(m, &lines);
        remove(m, "proofs/9.json");
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 6 (seq 8)");
    assert!(
        matches!(problem, Problem::LastNotExport { ref action } if action == "segment.wiped"),
        "{message}"
    );
}

#[test]
fn a_checkpoint_beyond_the_export_entry_is_refused() {
    // Genuine, signed by the real ledger key, every proof valid at its
    // size: but it is for 11 entries and the export entry is seq 9, so
    // entry 10 (or a later export entry) could have been dropped.
    let f = Fixture::new();
    let full = Checkpoint::new(ORIGIN, f.full_tree.size(), f.full_tree.root())
        .unwrap()
        .sign(&f.ledger);
    let tar = tampered(&f, |m| {
        *member(m, "checkpoint") = full.into_bytes();
        for seq in BUNDLE_SEQS {
            let proof = bundle::InclusionProof {
                index: seq,
                size: f.full_tree.size(),
                hashes: custos_core::merkle::inclusion_proof(&f.full_tree, seq, 11).unwrap(),
            };
            *member(m, &format!("proofs/{seq}.json")) = serde_json::to_vec(&proof).unwrap();
        }
    });
    let (problem, message) = rejected(&tar, &f, "checkpoint");
    assert!(
        matches!(
            problem,
            Problem::NotAtExport {
                size: 11,
                export: 9
            }
        ),
        "{message}"
    );
    assert!(message.contains("it must be exactly 10"), "{message}");
}

#[test]
fn an_older_export_entry_cannot_stand_for_a_later_one() {
    // The attack: export, place a hold, export again; from the
    // second bundle drop the second export entry and the hold with their
    // proofs. The first export entry is then the last, and all it lists is
    // there; the checkpoint (the second export's) gives it away.
    let f = Fixture::new();
    let (tar, _) = f.second_export();
    let pinned = f.ledger.verifier_key();
    let report = verify(&tar, Some(&pinned)).unwrap();
    assert_eq!(report.export_seq, 12);
    let doctored = {
        let mut m = unpack(&tar);
        let mut lines = entry_lines(&mut m);
        assert!(lines.pop().unwrap().starts_with("{\"seq\":12,"));
        assert!(lines.pop().unwrap().starts_with("{\"seq\":11,"));
        set_entry_lines(&mut m, &lines);
        remove(&mut m, "proofs/11.json");
        remove(&mut m, "proofs/12.json");
        pack(&m)
    };
    let (problem, message) = rejected(&doctored, &f, "checkpoint");
    assert!(
        matches!(
            problem,
            Problem::NotAtExport {
                size: 13,
                export: 9
            }
        ),
        "{message}"
    );
}

#[test]
fn a_listed_entry_missing_under_the_last_export() {
    // Entry 9 (the first export) dropped with its proof: the second export
    // lists it.
    let f = Fixture::new();
    let (tar, _) = f.second_export();
    let tar = {
        let mut m = unpack(&tar);
        let mut lines = entry_lines(&mut m);
        let at = lines
            .iter()
            .position(|l| l.starts_with("{\"seq\":9,"))
            .unwrap();
        lines.remove(at);
        set_entry_lines(&mut m, &lines);
        remove(&mut m, "proofs/9.json");
        pack(&m)
    };
    let (problem, message) = rejected(&tar, &f, "entries.jsonl");
    assert!(
        matches!(problem, Problem::ListedEntryMissing { seq: 9, export: 12 }),
        "{message}"
    );
}

#[test]
fn an_entry_the_export_does_not_list_is_refused() {
    // Entry 10 (case.closed, about another case) added with a valid proof:
    // in the log, but not what the export names.
    let f = Fixture::new();
    let (tar, tree) = f.second_export();
    let tar = {
        let mut m = unpack(&tar);
        let mut lines = entry_lines(&mut m);
        let at = lines
            .iter()
            .position(|l| l.starts_with("{\"seq\":11,"))
            .unwrap();
        let extra = f.log[10].to_json_line();
        lines.insert(at, extra.trim_end().to_owned());
        set_entry_lines(&mut m, &lines);
        let proof = bundle::InclusionProof {
            index: 10,
            size: 13,
            hashes: custos_core::merkle::inclusion_proof(&tree, 10, 13).unwrap(),
        };
        m.push(("proofs/10.json".into(), serde_json::to_vec(&proof).unwrap()));
        pack(&m)
    };
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 8 (seq 10)");
    assert!(
        matches!(problem, Problem::EntryNotListed { export: 12 }),
        "{message}"
    );
}

#[test]
fn two_entries_swapped() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        lines.swap(2, 3); // seq 4 and seq 5
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 4 (seq 4)");
    assert!(
        matches!(problem, Problem::OutOfOrder { previous: 5 }),
        "{message}"
    );

    // Swapping the contents of two lines while keeping the seq labels:
    // each raw now carries the other seq.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        let a: Value = serde_json::from_str(&lines[2]).unwrap();
        let b: Value = serde_json::from_str(&lines[3]).unwrap();
        lines[2] = serde_json::json!({"seq": 4, "raw": b["raw"], "entry": b["entry"]}).to_string();
        lines[3] = serde_json::json!({"seq": 5, "raw": a["raw"], "entry": a["entry"]}).to_string();
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 3 (seq 4)");
    assert!(matches!(problem, Problem::SeqMismatch { .. }), "{message}");

    // A duplicated line.
    let tar = tampered(&f, |m| {
        let mut lines = entry_lines(m);
        let dup = lines[2].clone();
        lines.insert(3, dup);
        set_entry_lines(m, &lines);
    });
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 4 (seq 4)");
    assert!(matches!(problem, Problem::DuplicateSeq), "{message}");
}

#[test]
fn a_footage_file_removed() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| remove(m, FOOTAGE_B));
    let (problem, message) = rejected(&tar, &f, FOOTAGE_B);
    assert!(
        matches!(problem, Problem::FootageMissing { .. }),
        "{message}"
    );
    assert_eq!(
        message,
        "footage/seg-b.bin: missing from the bundle (manifests/seg-b.dsse.json describes it)"
    );

    // With its manifest: the export entry still lists the segment.
    let tar = tampered(&f, |m| {
        remove(m, FOOTAGE_B);
        remove(m, "manifests/seg-b.dsse.json");
    });
    let (problem, message) = rejected(&tar, &f, "manifests/seg-b.dsse.json");
    assert!(
        matches!(problem, Problem::ListedSegmentMissing { .. }),
        "{message}"
    );
}

#[test]
fn footage_without_a_manifest() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        m.push(("footage/seg-c.mp4".into(), b"extra".to_vec()));
    });
    let (problem, _) = rejected(&tar, &f, "footage/seg-c.mp4");
    assert!(matches!(problem, Problem::FootageWithoutManifest));
}

#[test]
fn checkpoint_replaced_by_one_signed_with_another_key() {
    let f = Fixture::new();
    let forger = SigningKey::from_seed("ledger", &[99; 32]).unwrap();
    let forged = Checkpoint::new(ORIGIN, f.tree.size(), f.tree.root())
        .unwrap()
        .sign(&forger);

    // Pinned: refused.
    let tar = tampered(&f, |m| {
        *member(m, "checkpoint") = forged.clone().into_bytes()
    });
    let (problem, message) = rejected(&tar, &f, "checkpoint");
    assert!(
        matches!(problem, Problem::CheckpointNotPinned { .. }),
        "{message}"
    );
    assert!(message.contains("pinned ledger key ledger+"), "{message}");

    // Not pinned, keys/ unchanged: no key in the bundle signed it; not
    // valid either way.
    let report = verify(&tar, None).unwrap();
    assert!(!report.is_valid());
    assert!(
        matches!(
            report.origin,
            Origin::Unverified {
                bundle_key: None,
                ..
            }
        ),
        "{:?}",
        report.origin
    );

    // Not pinned, and the forger also replaced keys/ledger.pub: the bundle
    // is consistent with itself, which is all an unpinned check can show;
    // it is not valid, and pinning the real key refuses it.
    let tar = tampered(&f, |m| {
        *member(m, "checkpoint") = forged.clone().into_bytes();
        *member(m, "keys/ledger.pub") = format!("{}\n", forger.verifier_key()).into_bytes();
    });
    let report = verify(&tar, None).unwrap();
    assert!(!report.is_valid());
    assert!(
        matches!(report.origin, Origin::Unverified { bundle_key: Some(ref k), .. } if *k == forger.verifier_key().key_id()),
        "{:?}",
        report.origin
    );
    let (problem, _) = rejected(&tar, &f, "checkpoint");
    assert!(matches!(problem, Problem::CheckpointNotPinned { .. }));
}

#[test]
fn checkpoint_for_another_tree() {
    // Signed by the real key, but over a tree without the bundle's entries.
    let f = Fixture::new();
    let other = Checkpoint::new(ORIGIN, 10, leaf_hash(b"another tree"))
        .unwrap()
        .sign(&f.ledger);
    let tar = tampered(&f, |m| *member(m, "checkpoint") = other.into_bytes());
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 1 (seq 2)");
    assert!(matches!(problem, Problem::NotIncluded { .. }), "{message}");
}

#[test]
fn proofs_tampered() {
    let f = Fixture::new();
    // A proof for another tree size.
    let tar = tampered(&f, |m| {
        let mut proof = f.proof(5);
        proof.size = 11;
        *member(m, "proofs/5.json") = serde_json::to_vec(&proof).unwrap();
    });
    let (problem, _) = rejected(&tar, &f, "proofs/5.json");
    assert!(matches!(
        problem,
        Problem::ProofSize {
            size: 11,
            checkpoint: 10
        }
    ));
    // Another entry's proof under this entry's name.
    let tar = tampered(&f, |m| {
        *member(m, "proofs/5.json") = serde_json::to_vec(&f.proof(4)).unwrap();
    });
    let (problem, _) = rejected(&tar, &f, "proofs/5.json");
    assert!(matches!(problem, Problem::ProofIndex { index: 4, seq: 5 }));
    // A proof file removed.
    let tar = tampered(&f, |m| remove(m, "proofs/7.json"));
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 5 (seq 7)");
    assert!(matches!(problem, Problem::MissingProof { .. }), "{message}");
    assert!(
        message.ends_with("no inclusion proof (proofs/7.json is missing)"),
        "{message}"
    );
    // A hash in the path changed.
    let tar = tampered(&f, |m| {
        let mut proof = f.proof(3);
        proof.hashes[0] = leaf_hash(b"x");
        *member(m, "proofs/3.json") = serde_json::to_vec(&proof).unwrap();
    });
    let (problem, _) = rejected(&tar, &f, "entries.jsonl line 2 (seq 3)");
    assert!(matches!(problem, Problem::NotIncluded { .. }));
}

#[test]
fn a_ledger_that_broke_the_chain_is_caught() {
    // A ledger (buggy or dishonest) wrote entry 5 with a wrong prev, built
    // its tree over those bytes and signed it: every proof verifies, the
    // chain does not.
    let f = Fixture::build(&|e: &mut Entry| {
        if e.seq == 5 {
            e.prev = Some(leaf_hash(b"not entry 4"));
        }
    });
    let (problem, message) = rejected(&f.bundle(), &f, "entries.jsonl line 4 (seq 5)");
    assert!(
        matches!(problem, Problem::PrevMismatch { previous: 4 }),
        "{message}"
    );
    assert_eq!(
        message,
        "entries.jsonl line 4 (seq 5): prev does not match leaf hash of seq 4"
    );
}

#[test]
fn a_ledger_that_altered_a_signed_event_is_caught() {
    let f = Fixture::build(&|e: &mut Entry| {
        if e.seq == 4 {
            e.details.insert("sha256".into(), "sha256:00".into());
        }
    });
    let (problem, message) = rejected(&f.bundle(), &f, "entries.jsonl line 3 (seq 4)");
    assert!(
        matches!(problem, Problem::EventMismatch { field: "details" }),
        "{message}"
    );
}

#[test]
fn a_missing_dock_key_is_caught() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| remove(m, "keys/dock-01.pub"));
    let (problem, message) = rejected(&tar, &f, "entries.jsonl line 1 (seq 2)");
    assert!(matches!(problem, Problem::Event(_)), "{message}");
}

#[test]
fn keys_tampered() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| member(m, "keys/dock-01.pub")[12] ^= 0x01);
    let (problem, _) = rejected(&tar, &f, "keys/dock-01.pub");
    assert!(matches!(problem, Problem::Key(_)));
    let tar = tampered(&f, |m| {
        let key = member(m, "keys/dock-01.pub").clone();
        remove(m, "keys/dock-01.pub");
        m.push(("keys/dock-02.pub".into(), key));
    });
    let (problem, _) = rejected(&tar, &f, "keys/dock-02.pub");
    assert!(matches!(problem, Problem::KeyFileName { .. }));
}

#[test]
fn a_report_the_export_entry_does_not_name_is_refused() {
    // The fixture's export entry names no documents (as before reports
    // existed): its bundle verifies without REPORT.pdf, and one added
    // afterwards is refused.
    let f = Fixture::new();
    let tar = tampered(&f, |m| {
        m.push(("REPORT.pdf".into(), b"%PDF-1.7 forged".to_vec()))
    });
    let (problem, _) = rejected(&tar, &f, "REPORT.pdf");
    assert!(
        matches!(problem, Problem::DocumentNotListed { .. }),
        "{problem}"
    );
}

#[test]
fn every_covered_byte_matters() {
    // Flip one byte at a spread of positions inside every member but
    // VERIFY.txt and VERIFY.zh-CN.txt (which are only prose): each flip
    // must be refused.
    let f = Fixture::new();
    let honest = f.bundle();
    let pinned = f.ledger.verifier_key();
    let mut archive = tar::Archive::new(&honest[..]);
    let mut spans = Vec::new();
    for member in archive.entries().unwrap() {
        let member = member.unwrap();
        let path = String::from_utf8(member.path_bytes().into_owned()).unwrap();
        if !path.starts_with("VERIFY.") {
            spans.push((path, member.raw_file_position(), member.size()));
        }
    }
    let mut flips = 0;
    for (path, start, size) in spans {
        let step = (size / 23).max(1);
        let mut at = 0;
        while at < size {
            let mut tar = honest.clone();
            tar[(start + at) as usize] ^= 0x20;
            let result = verify(&tar, Some(&pinned));
            assert!(result.is_err(), "{path} byte {at}: flip accepted");
            flips += 1;
            at += step;
        }
    }
    assert!(flips > 300, "{flips}");
}

// ---------------------------------------------------------------------------
// The archive itself

#[test]
fn a_truncated_tar_is_unreadable() {
    let f = Fixture::new();
    let tar = f.bundle();
    let footage_start = {
        let mut archive = tar::Archive::new(&tar[..]);
        let m = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|m| m.path_bytes().as_ref() == FOOTAGE_B.as_bytes())
            .unwrap();
        m.raw_file_position() as usize
    };
    let cuts = [
        1,
        100,
        511,
        512 + 10,
        footage_start + 1_000_000,
        footage_start - 512 + 100,
        tar.len() - 1024,
        tar.len() - 1536,
        tar.len() - 1,
    ];
    for cut in cuts {
        let err = verify(&tar[..cut], None).unwrap_err();
        assert!(err.is_unreadable(), "cut at {cut}: {err}");
        let message = err.to_string();
        assert!(
            message.contains("truncated") || matches!(err, BundleError::NotTar { .. }),
            "cut at {cut}: {message}"
        );
        assert!(!message.contains('\n'));
    }
    // Cut inside the footage: the message names the member.
    let err = verify(&tar[..footage_start + 1_000_000], None).unwrap_err();
    assert!(matches!(err, BundleError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains(FOOTAGE_B), "{err}");
    // Cut at a block boundary after the last member: no end-of-archive marker.
    let err = verify(&tar[..tar.len() - 1024], None).unwrap_err();
    assert!(err.to_string().contains("end-of-archive marker"), "{err}");
}

#[test]
fn not_a_tar_is_unreadable() {
    for bytes in [&b""[..], b"just some text\n", &[0x42; 2048]] {
        let err = verify(bytes, None).unwrap_err();
        assert!(err.is_unreadable(), "{err}");
        assert!(
            matches!(
                err,
                BundleError::NotTar { .. } | BundleError::Truncated { .. }
            ),
            "{err}"
        );
    }
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = bundle::verify(Failing, &[], &mut |_| {}).unwrap_err();
    assert!(matches!(err, BundleError::Io(_)), "{err}");
}

#[test]
fn foreign_members_are_refused() {
    let f = Fixture::new();
    let tar = tampered(&f, |m| m.push(("notes.txt".into(), b"hi".to_vec())));
    let (problem, _) = rejected(&tar, &f, "notes.txt");
    assert!(matches!(problem, Problem::UnknownMember));

    // A second copy of a manifest: tools disagree on which one they extract.
    let tar = tampered(&f, |m| {
        let copy = member(m, "manifests/seg-a.dsse.json").clone();
        m.push(("manifests/seg-a.dsse.json".into(), copy));
    });
    let (problem, _) = rejected(&tar, &f, "manifests/seg-a.dsse.json");
    assert!(matches!(problem, Problem::DuplicateMember));

    // A symlink.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder
        .append_link(&mut header, "footage/seg-a.mp4", "/etc/passwd")
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let (problem, _) = rejected(&tar, &f, "footage/seg-a.mp4");
    assert!(matches!(problem, Problem::NotRegularFile { .. }));

    // Data hidden after the end-of-archive marker.
    let mut tar = f.bundle();
    tar.extend_from_slice(b"hidden");
    let err = verify(&tar, None).unwrap_err();
    assert!(
        matches!(err.problem(), Some(Problem::DataAfterEnd { .. })),
        "{err}"
    );
    // Zero padding after it is fine (tar pads to its record size).
    let mut tar = f.bundle();
    tar.extend_from_slice(&[0; 10240]);
    verify(&tar, None).unwrap();
}

#[test]
fn member_order_and_directories_do_not_matter() {
    // Reversed order (footage before manifests), with directory members
    // and `./` prefixes as `tar -C dir -cf x.tar .` writes them.
    let f = Fixture::new();
    let mut members = unpack(&f.bundle());
    members.reverse();
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["./", "./footage/", "./keys/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        builder.append_data(&mut header, dir, &[][..]).unwrap();
    }
    for (path, data) in &members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, format!("./{path}"), &data[..])
            .unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let report = verify(&tar, Some(&f.ledger.verifier_key())).unwrap();
    assert_eq!(report.segments.len(), 2);
    // seg-b's footage came before its manifest, so SM3 could not be
    // computed as it streamed: said, not hidden.
    if cfg!(feature = "sm3") {
        assert!(!report.segments[1].sm3_checked);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("SM3 not checked")),
            "{:?}",
            report.warnings
        );
    }
}

// ---------------------------------------------------------------------------
// The writer

#[test]
fn writer_refuses_footage_of_the_wrong_size() {
    let f = Fixture::new();
    let mut w = BundleWriter::new(Vec::new());
    let err = w
        .add_footage(&f.manifest_a.0, &f.footage_a[..299_000])
        .unwrap_err();
    assert!(
        matches!(
            err,
            BundleWriteError::FootageSize {
                expected: 300_000,
                got: 299_000,
                more: false,
                ..
            }
        ),
        "{err}"
    );
    let mut w = BundleWriter::new(Vec::new());
    let mut longer = f.footage_a.clone();
    longer.push(1);
    let err = w.add_footage(&f.manifest_a.0, &longer[..]).unwrap_err();
    assert!(
        matches!(err, BundleWriteError::FootageSize { more: true, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("more than 300000"), "{err}");

    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("USB gone"))
        }
    }
    let mut w = BundleWriter::new(Vec::new());
    let err = w.add_footage(&f.manifest_a.0, Failing).unwrap_err();
    assert!(matches!(err, BundleWriteError::FootageRead { .. }), "{err}");
    assert!(err.to_string().contains("USB gone"), "{err}");
}

#[test]
fn writer_refuses_duplicates_and_unsafe_names() {
    let f = Fixture::new();
    let mut w = BundleWriter::new(Vec::new());
    w.add_manifest(&f.manifest_a.1).unwrap();
    assert!(matches!(
        w.add_manifest(&f.manifest_a.1),
        Err(BundleWriteError::Duplicate(p)) if p == "manifests/seg-a.dsse.json"
    ));
    // The same key twice is one member; another key with the same name
    // gets its name+hash.
    let first = w.add_key(&f.dock.verifier_key()).unwrap();
    assert_eq!(first, "keys/dock-01.pub");
    assert_eq!(w.add_key(&f.dock.verifier_key()).unwrap(), first);
    let rotated = SigningKey::from_seed("dock-01", &[5; 32])
        .unwrap()
        .verifier_key();
    assert_eq!(
        w.add_key(&rotated).unwrap(),
        format!("keys/{}.pub", rotated.key_id())
    );
    for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(201)] {
        let mut m = f.manifest_a.0.clone();
        m.segment_id = bad.to_owned();
        let err = w.add_footage(&m, &f.footage_a[..]).unwrap_err();
        assert!(
            matches!(err, BundleWriteError::UnsafeName(_)),
            "{bad:?}: {err}"
        );
    }
    assert!(bundle::check_segment_id(&"x".repeat(200)).is_ok());
}

#[test]
fn footage_extensions() {
    use custos_core::manifest::OriginalName;
    for (name, ext) in [
        (&b"VID_0001.MP4"[..], "mp4"),
        (b"a.b.MOV", "mov"),
        (b"noext", "bin"),
        (b"trailing.", "bin"),
        (b"x.toolongext", "bin"),
        (b"x.m p4", "bin"),
        (b"\xff\xfe.avi", "avi"),
        (b"x.\xff", "bin"),
        ("录像.mp4".as_bytes(), "mp4"),
    ] {
        assert_eq!(
            bundle::footage_extension(&OriginalName::from_os_bytes(name)),
            ext,
            "{name:?}"
        );
    }
}

#[test]
fn entry_lines_must_be_json() {
    let err = bundle::EntryLine::new(3, &b"{\"a\":\n1}"[..]).unwrap_err();
    assert_eq!(err.seq, 3, "{err}");
    assert_eq!(err.to_string(), "entry 3: its bytes hold a line break");
    assert!(bundle::EntryLine::new(3, &b"\xff"[..]).is_err());
    assert!(bundle::EntryLine::new(3, &b"{"[..]).is_err());
    let line = bundle::EntryLine::new(3, &b"{\"a\":1}"[..]).unwrap();
    assert_eq!(
        line.to_json_line(),
        "{\"seq\":3,\"raw\":\"eyJhIjoxfQ==\",\"entry\":{\"a\":1}}\n"
    );
}

// ---------------------------------------------------------------------------
// Hostile archives: bounded memory, escaped names

/// A tar member header for `path` of `size` bytes and type `kind`.
fn raw_header(path: &[u8], size: u64, kind: tar::EntryType) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    let name = &mut header.as_old_mut().name;
    name[..path.len()].copy_from_slice(path);
    header.set_cksum();
    header.as_bytes().to_vec()
}

fn verify_with(tar: &[u8], limits: bundle::Limits) -> Result<Report, BundleError> {
    let mut verifier = bundle::BundleVerifier::with_limits(limits);
    verifier.read_tar(tar, &mut |_| {})?;
    verifier.finish(&[])
}

#[test]
fn the_members_of_a_bundle_are_bounded_in_total() {
    let f = Fixture::new();
    let honest = unpack(&f.bundle());
    // Many members, each small: the count is bounded.
    let mut members = honest.clone();
    for i in 100..200 {
        members.push((format!("proofs/{i}.json"), b"{}".to_vec()));
    }
    let err = verify_with(&pack(&members), bundle::Limits::default().members(50)).unwrap_err();
    assert!(
        matches!(err.problem(), Some(Problem::TooManyMembers { max: 50 })),
        "{err}"
    );
    // Each member under its own limit, together over the bytes held.
    let mut members = honest.clone();
    for i in 100..120 {
        members.push((format!("proofs/{i}.json"), vec![b' '; 60 << 10]));
    }
    let err = verify_with(
        &pack(&members),
        bundle::Limits::default().held_bytes(1 << 20),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.problem(),
            Some(Problem::HeldTooLarge { max: 1_048_576 })
        ),
        "{err}"
    );
    assert!(err.location().unwrap().starts_with("proofs/1"), "{err}");
    // Key files.
    let mut members = honest.clone();
    for i in 0..5 {
        members.push((format!("keys/k{i}.pub"), b"x\n".to_vec()));
    }
    let err = verify_with(&pack(&members), bundle::Limits::default().keys(4)).unwrap_err();
    assert!(
        matches!(err.problem(), Some(Problem::TooManyKeys { max: 4 })),
        "{err}"
    );
    // The honest bundle fits the defaults with room to spare.
    verify_with(&f.bundle(), bundle::Limits::default()).unwrap();
}

#[test]
fn a_huge_entries_file_is_refused_before_it_is_read() {
    // The header says 300 MiB; nothing is allocated or read for it.
    let size = 300u64 << 20;
    let header = raw_header(b"entries.jsonl", size, tar::EntryType::Regular);
    let reader = std::io::Read::chain(
        &header[..],
        std::io::Read::take(std::io::repeat(b'x'), size),
    );
    let err = bundle::verify(reader, &[], &mut |_| {}).unwrap_err();
    assert!(
        matches!(err.problem(), Some(Problem::TooLarge { size: s, max }) if *s == size && *max == bundle::MAX_ENTRIES_BYTES),
        "{err}"
    );
}

#[test]
fn a_huge_long_name_header_is_refused_before_it_is_read() {
    // A GNU long-name header of 64 MiB: the tar crate alone would read it
    // whole into memory (and a bigger one would exhaust it).
    let size = 64u64 << 20;
    let mut tar = raw_header(b"././@LongLink", size, tar::EntryType::GNULongName);
    tar.resize(tar.len() + size as usize, b'a');
    tar.extend(raw_header(b"placeholder", 0, tar::EntryType::Regular));
    tar.extend([0u8; 1024]);
    let err = verify(&tar, None).unwrap_err();
    assert_eq!(err.location(), Some("GNU long-name header"), "{err}");
    assert!(
        matches!(err.problem(), Some(Problem::TooLarge { max, .. }) if *max == bundle::MAX_NAME_HEADER_BYTES),
        "{err}"
    );
}

#[test]
fn long_member_names_from_gnu_and_pax_headers_are_read() {
    // A name of 170 bytes needs a GNU long-name header (as BundleWriter
    // writes them) or a PAX path record (as GNU tar --format=pax and
    // Python's tarfile write them); either way it is the name checked.
    let long = format!("unknown/{}", "u".repeat(162));
    let tar = pack(&[(long.clone(), b"{}".to_vec())]);
    let err = verify(&tar, None).unwrap_err();
    assert_eq!(err.location(), Some(long.as_str()), "{err}");
    assert!(
        matches!(err.problem(), Some(Problem::UnknownMember)),
        "{err}"
    );

    let body = format!(" path={long}\n");
    let record = format!("{}{body}", body.len() + 3);
    let mut tar = raw_header(
        b"PaxHeaders/x",
        record.len() as u64,
        tar::EntryType::XHeader,
    );
    tar.extend(record.as_bytes());
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend(raw_header(b"short-name", 2, tar::EntryType::Regular));
    tar.extend(b"{}");
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    let err = verify(&tar, None).unwrap_err();
    assert_eq!(err.location(), Some(long.as_str()), "{err}");
    assert!(
        matches!(err.problem(), Some(Problem::UnknownMember)),
        "{err}"
    );
}

#[test]
fn control_characters_in_member_names_are_escaped() {
    // A member name that would clear the screen and print a fake verdict.
    let f = Fixture::new();
    let evil = "footage/x\u{1b}[2J\rcustos: export.tar: valid\n\u{202e}gpj.exe";
    let mut members = unpack(&f.bundle());
    members.push((evil.to_owned(), b"hi".to_vec()));
    let err = verify(&pack(&members), Some(&f.ledger.verifier_key())).unwrap_err();
    assert_eq!(
        err.location(),
        Some(evil),
        "the location is the name as it is"
    );
    let shown = err.to_string();
    assert!(
        !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{shown:?}"
    );
    assert!(shown.contains("x\\u{1b}[2J\\u{d}custos"), "{shown}");
    assert_eq!(bundle::escape_control("seg-a 调阅"), "seg-a 调阅");
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn honest() -> &'static (Vec<u8>, VerifierKey) {
        static HONEST: OnceLock<(Vec<u8>, VerifierKey)> = OnceLock::new();
        HONEST.get_or_init(|| {
            let f = Fixture::new();
            (f.bundle(), f.ledger.verifier_key())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn mutated_bundles_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let (tar, key) = honest();
            let mut tar = tar.clone();
            for (at, byte) in edits {
                let i = at.index(tar.len());
                tar[i] = byte;
            }
            if do_cut {
                let len = cut.index(tar.len());
                tar.truncate(len);
            }
            let _ = verify(&tar, Some(key));
        }
    }
}
