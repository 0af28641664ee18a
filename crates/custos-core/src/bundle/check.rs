//! Steps 2 to 12 of the verification: [`BundleVerifier::finish`] checks the
//! members step 1 collected, one function per step of the module
//! documentation (each opens with the step's number and name), and builds
//! the [`Report`].
//!
//! It never calls a bundle valid when a check failed or the caller trusted
//! no ledger key, never trusts a key from the bundle for the checkpoint, and
//! reports the first failure in the same order whatever the bundle holds:
//! steps in order, segments in segment id order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::read::FootageSeen;
use super::{
    footage_path, invalid, manifest_path, proof_path, BundleError, BundleVerifier, EntryLine,
    InclusionProof, Problem, CHECKPOINT_PATH, ENTRIES_PATH, KEYS_DIR, KEY_SUFFIX, MANIFESTS_DIR,
    MANIFEST_SUFFIX, VERIFY_PATH,
};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::digest::{Algorithm, Digest};
use crate::dsse::Envelope;
use crate::entry::details::SegmentIngested;
use crate::entry::{actions, Details, Entry, Event};
use crate::keys::{KeyError, VerifierKey};
use crate::manifest::{Manifest, SignedManifest};
use crate::merkle::{leaf_hash, verify_inclusion, Hash};
use crate::note::{SignedNote, VerifyError};

/// What a valid bundle holds, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The segments, by id.
    pub segments: Vec<SegmentSummary>,
    /// Total footage bytes hashed.
    pub footage_bytes: u64,
    /// How many custody entries.
    pub entries: usize,
    /// The export entry's seq.
    pub export_seq: u64,
    /// The checkpoint every proof is against.
    pub checkpoint: Checkpoint,
    /// Who vouches for the checkpoint: a key the caller trusts, or nobody.
    pub origin: Origin,
    /// The dock keys (`name+hash`) that verified manifests or events.
    pub signing_keys: Vec<String>,
    /// The suites of the pinned ledger keys whose checkpoint signature
    /// verified (empty when no key was pinned).
    pub checkpoint_suites: Vec<crate::keys::Algorithm>,
    /// The suites with a verified dock signature on *every* manifest and
    /// signed event of the bundle.
    pub envelope_suites: Vec<crate::keys::Algorithm>,
    /// The documents checked against the export entry (`REPORT.pdf`),
    /// with their SHA-256; empty for a bundle from before documents.
    pub documents: Vec<(String, Digest)>,
    /// What the witnesses vouch for (step 13), when the bundle carries
    /// tlog-proofs.
    pub witnessed: Option<Witnessed>,
    /// Things the auditor should know that do not make the bundle invalid.
    pub warnings: Vec<String>,
}

/// Step 13's result: the entries' tlog-proofs and who cosigned their
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Witnessed {
    /// How many entries carry a tlog-proof (all of them with a policy).
    pub proofs: usize,
    /// The largest checkpoint size they are proven under.
    pub size: u64,
    /// The witnesses whose cosignature verified on every proof's checkpoint
    /// (with a policy; empty without).
    pub witnesses: Vec<String>,
    /// The policy's quorum (`None`: no policy was given).
    pub quorum: Option<usize>,
}

impl Report {
    /// Whether the bundle is valid: every check passed and the checkpoint
    /// verified under a key the caller trusts ([`Origin::Pinned`]). Without
    /// one, the other checks show only that the bundle is consistent with
    /// itself, which anyone with a key pair of their own can make.
    pub fn is_valid(&self) -> bool {
        matches!(self.origin, Origin::Pinned { .. })
    }
}

/// Who vouches for a bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// It carries a valid signature by this key, one the caller trusts.
    Pinned {
        /// The key (`name+hash`).
        key_id: String,
    },
    /// The caller trusted no key, so no signature was checked against one.
    /// Every other check passed; this is not a valid bundle.
    Unverified {
        /// The `name+hash` of every signature on the checkpoint (claims only).
        signers: Vec<String>,
        /// A key in the bundle's own `keys/` whose signature verifies, if
        /// any; it proves nothing, since whoever made the bundle chose it.
        bundle_key: Option<String>,
    },
}

/// One verified segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentSummary {
    /// The segment id.
    pub segment_id: String,
    /// The footage member.
    pub footage: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (equal to the manifest's).
    pub sha256: Digest,
    /// Whether its SM3 was checked too.
    pub sm3_checked: bool,
}

impl BundleVerifier {
    /// Run every check of the module documentation, in order, and report.
    ///
    /// `trusted` are the ledger keys the caller obtained out of band: the
    /// checkpoint must carry a valid signature by one of them. With none,
    /// every other check still runs and the report's origin is
    /// [`Origin::Unverified`]: [`Report::is_valid`] is then false.
    ///
    /// Steps 2 to 9 run one after the other over the whole bundle; steps 10
    /// and 11 run segment by segment in segment id order (a manifest, then
    /// its footage), and last every footage file must have had a manifest.
    /// Each stops at the first failure, which is returned.
    pub fn finish(self, trusted: &[VerifierKey]) -> Result<Report, BundleError> {
        self.finish_with_policy(trusted, None)
    }

    /// [`BundleVerifier::finish`], and step 13 against the auditor's
    /// `policy`: every entry proven under a checkpoint cosigned by the
    /// policy's quorum of witnesses.
    pub fn finish_with_policy(
        self,
        trusted: &[VerifierKey],
        policy: Option<&crate::policy::Policy>,
    ) -> Result<Report, BundleError> {
        let mut warnings = Vec::new();
        if !self.verify_txt {
            warnings.push(format!(
                "{VERIFY_PATH} is missing (it only explains verification)"
            ));
        }
        let keys = check_keys(&self.keys)?;
        let vouched = check_checkpoint(self.checkpoint.as_deref(), trusted, &keys, &mut warnings)?;
        // The ledger's keys are not dock keys: the pinned ones, and the
        // bundle's keys that signed the checkpoint (the ledger's SM2 key
        // beside its Ed25519 key, say).
        let note = self
            .checkpoint
            .as_deref()
            .and_then(|c| SignedNote::parse(c).ok());
        let signs_checkpoint = |k: &VerifierKey| {
            note.as_ref()
                .is_some_and(|n| n.verify(std::slice::from_ref(k)).is_ok())
        };
        let mut not_docks: Vec<&VerifierKey> = trusted.iter().collect();
        not_docks.extend(vouched.ledger_key.as_ref());
        not_docks.extend(keys.iter().map(|(_, k)| k).filter(|k| signs_checkpoint(k)));
        let dock_keys = dock_keys(&keys, &not_docks);
        let lines = check_entries(self.entries.as_deref())?;
        let seqs: BTreeSet<u64> = lines.iter().map(|l| l.seq).collect();
        let export = check_checkpoint_is_export(&lines, &vouched.checkpoint)?;
        check_in_log(&self.proofs, &lines, &seqs, &vouched.checkpoint)?;
        check_chain(&lines)?;
        let (mut signing_keys, mut envelope_suites) = check_events(&lines, &dock_keys)?;
        check_nothing_left_out(export, &lines, &seqs, &self.manifests)?;
        check_documents(export, &self.documents)?;

        let ingested = ingested_by_segment(&lines);
        let mut segments = Vec::new();
        for (id, bytes) in &self.manifests {
            let signed = check_manifest(id, bytes, &dock_keys, &ingested)?;
            signing_keys.extend(signed.signers.iter().cloned());
            let suites = suites_of(&signed.signers, &dock_keys);
            envelope_suites.retain(|a| suites.contains(a));
            segments.push(check_footage(
                id,
                &signed.manifest,
                &self.footage,
                &mut warnings,
            )?);
        }
        check_footage_has_manifest(&self.footage, &segments)?;
        let witnessed = check_witnessed(
            &self.tlog_proofs,
            self.policy.as_deref(),
            &lines,
            &seqs,
            trusted,
            policy,
        )?;

        for (path, key) in &keys {
            let ledger = Some(key) == vouched.ledger_key.as_ref()
                || vouched.checkpoint_keys.contains(&key.key_id())
                || not_docks.contains(&key);
            if !ledger && !signing_keys.contains(&key.key_id()) {
                warnings.push(format!("{path} was not needed: it verified nothing"));
            }
        }
        Ok(Report {
            footage_bytes: segments.iter().map(|s| s.size).sum(),
            segments,
            entries: lines.len(),
            export_seq: export.seq,
            checkpoint: vouched.checkpoint,
            origin: vouched.origin,
            signing_keys: signing_keys.into_iter().collect(),
            checkpoint_suites: vouched.checkpoint_suites,
            envelope_suites,
            witnessed,
            documents: self
                .documents
                .iter()
                .map(|(path, seen)| (path.clone(), seen.digests.sha256))
                .collect(),
            warnings,
        })
    }
}

/// Step 2, keys: each `keys/*.pub` parses as a verifier key in canonical
/// form, and its file name is its name (or `name+hash`). Returns them with
/// their paths.
fn check_keys(
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, VerifierKey)>, BundleError> {
    let mut keys: Vec<(String, VerifierKey)> = Vec::new();
    for (path, bytes) in files {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            invalid(
                path.as_str(),
                Problem::Key(KeyError::BadVerifierKey("the file is not UTF-8".into())),
            )
        })?;
        // An SM2 key file is the verifier key line and its PEM public key
        // (for OpenSSL), exactly as `custos keygen --algo sm2` writes it.
        let key = VerifierKey::from_public_file_text(text, None)
            .map_err(|e| invalid(path.as_str(), Problem::Key(e)))?;
        let line = text.strip_suffix('\n').unwrap_or(text);
        let canonical = key.public_file_text();
        if canonical != text && canonical.strip_suffix('\n') != Some(line) {
            return Err(invalid(
                path.as_str(),
                Problem::Key(KeyError::BadVerifierKey(
                    "not in canonical form (lower-case hex key hash, padded standard base64)"
                        .into(),
                )),
            ));
        }
        let stem = path
            .strip_prefix(&format!("{KEYS_DIR}/"))
            .and_then(|s| s.strip_suffix(KEY_SUFFIX))
            .unwrap_or_default();
        if stem != key.name() && stem != key.key_id() {
            return Err(invalid(
                path.as_str(),
                Problem::KeyFileName {
                    key_id: key.key_id(),
                },
            ));
        }
        keys.push((path.clone(), key));
    }
    Ok(keys)
}

/// What step 3 found: the checkpoint, who vouches for it, and the ledger
/// key when it is known (the pinned key that verified it, or, trusting
/// none, a key of the bundle's own that signed it).
struct Vouched {
    checkpoint: Checkpoint,
    origin: Origin,
    ledger_key: Option<VerifierKey>,
    /// The suites of the pinned keys whose signature verified.
    checkpoint_suites: Vec<crate::keys::Algorithm>,
    /// Their key ids.
    checkpoint_keys: Vec<String>,
}

/// Step 3, the ledger vouches for a tree: `checkpoint` is a signed note
/// carrying a valid signature by a key the caller trusts ([`open_checkpoint`]).
/// A bundle key named like the pinned key but another key is a warning.
fn check_checkpoint(
    signed: Option<&[u8]>,
    trusted: &[VerifierKey],
    keys: &[(String, VerifierKey)],
    warnings: &mut Vec<String>,
) -> Result<Vouched, BundleError> {
    let signed = signed.ok_or_else(|| invalid(CHECKPOINT_PATH, Problem::Missing))?;
    let (checkpoint, origin, ledger_key, verified) = open_checkpoint(signed, trusted, keys)?;
    if let (Origin::Pinned { .. }, Some(pinned)) = (&origin, &ledger_key) {
        for (path, key) in keys {
            let other_suite_signer = key.algorithm() != pinned.algorithm()
                && SignedNote::parse(signed)
                    .is_ok_and(|n| n.verify(std::slice::from_ref(key)).is_ok());
            if key.name() == pinned.name() && key != pinned && !other_suite_signer {
                warnings.push(format!(
                    "{path} is a key named like the pinned ledger key but is another key; it was not trusted for the checkpoint"
                ));
            }
        }
    }
    let mut checkpoint_suites: Vec<crate::keys::Algorithm> =
        verified.iter().map(VerifierKey::algorithm).collect();
    checkpoint_suites.sort();
    checkpoint_suites.dedup();
    Ok(Vouched {
        checkpoint,
        origin,
        ledger_key,
        checkpoint_suites,
        checkpoint_keys: verified.iter().map(VerifierKey::key_id).collect(),
    })
}

/// The dock keys by `name+hash`: the bundle's keys but the ledger key, so
/// that each envelope (steps 8 and 10) is checked against the keys its
/// signatures name only (linear time however many keys the bundle holds).
fn dock_keys(
    keys: &[(String, VerifierKey)],
    ledger_keys: &[&VerifierKey],
) -> BTreeMap<String, VerifierKey> {
    keys.iter()
        .filter(|(_, k)| !ledger_keys.contains(&k))
        .map(|(_, k)| (k.key_id(), k.clone()))
        .collect()
}

/// Step 4, entries are well-formed: `entries.jsonl` is there, and each
/// line is checked on its own and after the one before ([`parse_entries`]).
fn check_entries(bytes: Option<&[u8]>) -> Result<Vec<ParsedLine>, BundleError> {
    let bytes = bytes.ok_or_else(|| invalid(ENTRIES_PATH, Problem::Missing))?;
    parse_entries(bytes)
}

/// Step 5, the checkpoint is the export's: the last entry is an
/// `export.created` entry and the checkpoint's size is its `seq + 1`.
/// Returns the export entry.
fn check_checkpoint_is_export<'a>(
    lines: &'a [ParsedLine],
    checkpoint: &Checkpoint,
) -> Result<&'a ParsedLine, BundleError> {
    let export = lines
        .last()
        .ok_or_else(|| invalid(ENTRIES_PATH, Problem::NoExportEntry))?;
    if export.entry.action != actions::EXPORT_CREATED {
        return Err(invalid(
            export.location(),
            Problem::LastNotExport {
                action: export.entry.action.to_string(),
            },
        ));
    }
    if export.seq.checked_add(1) != Some(checkpoint.size()) {
        return Err(invalid(
            CHECKPOINT_PATH,
            Problem::NotAtExport {
                size: checkpoint.size(),
                export: export.seq,
            },
        ));
    }
    Ok(export)
}

/// Step 6, every entry is in the log: every proof file belongs to an entry
/// (`seqs`), and each entry's proof leads from its leaf hash at index `seq`
/// in the tree of the checkpoint's size to the checkpoint's root.
fn check_in_log(
    proofs: &BTreeMap<u64, Vec<u8>>,
    lines: &[ParsedLine],
    seqs: &BTreeSet<u64>,
    checkpoint: &Checkpoint,
) -> Result<(), BundleError> {
    for seq in proofs.keys() {
        if !seqs.contains(seq) {
            return Err(invalid(
                proof_path(*seq),
                Problem::ProofWithoutEntry { seq: *seq },
            ));
        }
    }
    for line in lines {
        let path = proof_path(line.seq);
        let bytes = proofs.get(&line.seq).ok_or_else(|| {
            invalid(
                line.location(),
                Problem::MissingProof { path: path.clone() },
            )
        })?;
        let proof: InclusionProof = serde_json::from_slice(bytes)
            .map_err(|e| invalid(path.as_str(), Problem::ProofSyntax(e.to_string())))?;
        if proof.index != line.seq {
            return Err(invalid(
                path,
                Problem::ProofIndex {
                    index: proof.index,
                    seq: line.seq,
                },
            ));
        }
        if proof.size != checkpoint.size() {
            return Err(invalid(
                path,
                Problem::ProofSize {
                    size: proof.size,
                    checkpoint: checkpoint.size(),
                },
            ));
        }
        verify_inclusion(
            &line.leaf,
            proof.index,
            proof.size,
            &proof.hashes,
            &checkpoint.root(),
        )
        .map_err(|source| {
            invalid(
                line.location(),
                Problem::NotIncluded {
                    proof: path,
                    source,
                },
            )
        })?;
    }
    Ok(())
}

/// Step 13, witnesses saw the same log: every tlog-proof belongs to an
/// entry and proves it; with a policy every entry has one and its
/// checkpoint meets the policy (ledger key and witness quorum); without
/// one, a proof's checkpoint must be signed by a pinned key (when any).
fn check_witnessed(
    tlog_proofs: &BTreeMap<u64, Vec<u8>>,
    bundle_policy: Option<&[u8]>,
    lines: &[ParsedLine],
    seqs: &BTreeSet<u64>,
    trusted: &[VerifierKey],
    policy: Option<&crate::policy::Policy>,
) -> Result<Option<Witnessed>, BundleError> {
    use crate::policy::Policy;
    use crate::tlog_proof::{ProofError, TlogProof};
    if let Some(bytes) = bundle_policy {
        Policy::parse(bytes).map_err(|e| invalid(super::POLICY_PATH, Problem::Policy(e)))?;
    }
    for seq in tlog_proofs.keys() {
        if !seqs.contains(seq) {
            return Err(invalid(
                super::tlog_proof_path(*seq),
                Problem::TlogProofWithoutEntry { seq: *seq },
            ));
        }
    }
    if tlog_proofs.is_empty() && policy.is_none() {
        return Ok(None);
    }
    // Without a policy: the pinned keys, no witness required.
    let pinned = if trusted.is_empty() {
        None
    } else {
        Some(
            Policy::new(trusted.to_vec(), vec![], 0)
                .map_err(|e| invalid(super::POLICY_PATH, Problem::Policy(e)))?,
        )
    };
    let mut size = 0;
    let mut names: Option<Vec<String>> = None;
    let mut proofs = 0;
    for line in lines {
        let path = super::tlog_proof_path(line.seq);
        let Some(bytes) = tlog_proofs.get(&line.seq) else {
            if policy.is_some() {
                return Err(invalid(line.location(), Problem::MissingTlogProof { path }));
            }
            continue;
        };
        let proof =
            TlogProof::parse(bytes).map_err(|e| invalid(path.as_str(), Problem::TlogProof(e)))?;
        let raw = line.raw.as_slice();
        let verified = match policy.or(pinned.as_ref()) {
            Some(p) => proof.verify(raw, line.seq, p),
            None => {
                // No key to check the checkpoint with: the inclusion only.
                let cp = Checkpoint::parse(proof.checkpoint.text())
                    .map_err(|e| invalid(path.as_str(), Problem::Checkpoint(e)))?;
                if proof.index != line.seq {
                    Err(ProofError::WrongIndex {
                        expected: line.seq,
                        found: proof.index,
                    })
                } else {
                    verify_inclusion(&line.leaf, proof.index, cp.size(), &proof.proof, &cp.root())
                        .map(|()| crate::policy::Verified {
                            checkpoint: cp,
                            witnesses: vec![],
                        })
                        .map_err(ProofError::Inclusion)
                }
            }
        }
        .map_err(|e| invalid(path.as_str(), Problem::TlogProof(e)))?;
        size = size.max(verified.checkpoint.size());
        names = Some(match names {
            None => verified.witnesses,
            Some(n) => n
                .into_iter()
                .filter(|w| verified.witnesses.contains(w))
                .collect(),
        });
        proofs += 1;
    }
    Ok(Some(Witnessed {
        proofs,
        size,
        witnesses: if policy.is_some() {
            names.unwrap_or_default()
        } else {
            Vec::new()
        },
        quorum: policy.map(Policy::quorum),
    }))
}

/// Step 7, the hash chain holds between every two entries adjacent in
/// `seq`: entry `n`'s `prev` is the leaf hash of entry `n - 1`.
fn check_chain(lines: &[ParsedLine]) -> Result<(), BundleError> {
    for pair in lines.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.seq == a.seq + 1 && b.entry.verify_prev(Some(&a.raw)).is_err() {
            return Err(invalid(
                b.location(),
                Problem::PrevMismatch { previous: a.seq },
            ));
        }
    }
    Ok(())
}

/// Step 8, signed events are genuine: an entry's envelope verifies under a
/// dock key, and the entry's `action`, `subject` and `details` are the
/// signed event's. Returns the keys (`name+hash`) that verified one.
fn check_events(
    lines: &[ParsedLine],
    dock_keys: &BTreeMap<String, VerifierKey>,
) -> Result<(BTreeSet<String>, Vec<crate::keys::Algorithm>), BundleError> {
    let mut signing_keys = BTreeSet::new();
    let mut suites = crate::keys::Algorithm::ALL.to_vec();
    for line in lines {
        let Some(envelope) = &line.entry.envelope else {
            continue;
        };
        let signed = Event::open(envelope, &named_keys(envelope, dock_keys))
            .map_err(|e| invalid(line.location(), Problem::Event(e)))?;
        let these = suites_of(&signed.signers, dock_keys);
        suites.retain(|a| these.contains(a));
        signing_keys.extend(signed.signers);
        let event = signed.event;
        let field = if event.action != line.entry.action {
            Some("action")
        } else if event.subject != line.entry.subject {
            Some("subject")
        } else if event.details != line.entry.details {
            Some("details")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(invalid(line.location(), Problem::EventMismatch { field }));
        }
    }
    Ok((signing_keys, suites))
}

/// The suites of the keys `signers` (key ids) among `keys`.
fn suites_of(
    signers: &[String],
    keys: &BTreeMap<String, VerifierKey>,
) -> Vec<crate::keys::Algorithm> {
    signers
        .iter()
        .filter_map(|id| keys.get(id).map(VerifierKey::algorithm))
        .collect()
}

/// Step 9, nothing was left out, nothing added: every entry the export
/// entry lists is in `entries.jsonl` (`seqs`), every other entry there is
/// listed, and the listed segments are exactly the bundle's manifests.
fn check_nothing_left_out(
    export: &ParsedLine,
    lines: &[ParsedLine],
    seqs: &BTreeSet<u64>,
    manifests: &BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let (listed_segments, listed_entries) = export_lists(export, lines)
        .map_err(|why| invalid(export.location(), Problem::ExportDetails(why)))?;
    for seq in &listed_entries {
        if !seqs.contains(seq) {
            return Err(invalid(
                ENTRIES_PATH,
                Problem::ListedEntryMissing {
                    seq: *seq,
                    export: export.seq,
                },
            ));
        }
    }
    for line in lines {
        if line.seq != export.seq && !listed_entries.contains(&line.seq) {
            return Err(invalid(
                line.location(),
                Problem::EntryNotListed { export: export.seq },
            ));
        }
    }
    for segment in &listed_segments {
        if !manifests.contains_key(segment) {
            let location =
                manifest_path(segment).unwrap_or_else(|_| format!("segment {segment:?}"));
            return Err(invalid(
                location,
                Problem::ListedSegmentMissing {
                    segment: segment.clone(),
                    export: export.seq,
                },
            ));
        }
    }
    for id in manifests.keys() {
        if !listed_segments.contains(id) {
            return Err(invalid(
                manifest_location(id),
                Problem::SegmentNotListed { export: export.seq },
            ));
        }
    }
    Ok(())
}

/// Step 11, documents are the exported ones: every document the export
/// entry names is in the bundle with that SHA-256, and every document in
/// the bundle is named (an export entry without `documents` names none).
fn check_documents(
    export: &ParsedLine,
    documents: &BTreeMap<String, FootageSeen>,
) -> Result<(), BundleError> {
    let named = match export.entry.parsed_details() {
        Ok(Details::ExportCreated(e)) => e.documents.unwrap_or_default(),
        // Step 9 parsed these details already.
        _ => BTreeMap::new(),
    };
    for (path, expected) in &named {
        let Some(seen) = documents.get(path) else {
            return Err(invalid(
                path.as_str(),
                Problem::DocumentMissing { export: export.seq },
            ));
        };
        let found = seen.digests.sha256;
        if found != *expected {
            return Err(invalid(
                path.as_str(),
                Problem::DocumentDigest {
                    expected: *expected,
                    found,
                },
            ));
        }
    }
    for path in documents.keys() {
        if !named.contains_key(path) {
            return Err(invalid(
                path.as_str(),
                Problem::DocumentNotListed { export: export.seq },
            ));
        }
    }
    Ok(())
}

/// The `segment.ingested` entries by subject, built once for step 10 (not
/// searched per manifest).
fn ingested_by_segment(lines: &[ParsedLine]) -> BTreeMap<&str, Vec<&ParsedLine>> {
    let mut ingested: BTreeMap<&str, Vec<&ParsedLine>> = BTreeMap::new();
    for line in lines {
        if line.entry.action == actions::SEGMENT_INGESTED {
            ingested
                .entry(line.entry.subject.as_str())
                .or_default()
                .push(line);
        }
    }
    ingested
}

/// Step 10, the manifest is the ingested one: the manifest file of segment
/// `id` verifies under a dock key, is a valid manifest for that segment, and
/// is, envelope for envelope, the `details.manifest` of a `segment.ingested`
/// entry about it. Returns it opened.
fn check_manifest(
    id: &str,
    bytes: &[u8],
    dock_keys: &BTreeMap<String, VerifierKey>,
    ingested: &BTreeMap<&str, Vec<&ParsedLine>>,
) -> Result<SignedManifest, BundleError> {
    let location = manifest_location(id);
    let envelope =
        Envelope::parse(bytes).map_err(|e| invalid(location.as_str(), Problem::Envelope(e)))?;
    let trusted_docks = named_keys(&envelope, dock_keys);
    let signed = SignedManifest::open(envelope, &trusted_docks)
        .map_err(|e| invalid(location.as_str(), Problem::Manifest(e)))?;
    let manifest = &signed.manifest;
    if manifest.segment_id != id {
        return Err(invalid(
            location,
            Problem::SegmentIdMismatch {
                found: manifest.segment_id.clone(),
            },
        ));
    }
    let ingested = ingested.get(id).map(Vec::as_slice).unwrap_or_default();
    let carried = ingested.iter().any(|l| {
        matches!(
            l.entry.parsed_details(),
            Ok(Details::SegmentIngested(SegmentIngested { manifest, .. })) if manifest == signed.envelope
        )
    });
    if !carried {
        return Err(invalid(
            location,
            Problem::NotIngested {
                seqs: ingested.iter().map(|l| l.seq).collect(),
            },
        ));
    }
    Ok(signed)
}

/// Step 11, footage is the recorded bytes: the footage file of segment
/// `id`'s manifest was in the archive with the manifest's size and SHA-256,
/// and its SM3 when the manifest has one (a warning when it could not be
/// checked).
fn check_footage(
    id: &str,
    manifest: &Manifest,
    streamed: &BTreeMap<String, FootageSeen>,
    warnings: &mut Vec<String>,
) -> Result<SegmentSummary, BundleError> {
    let location = manifest_location(id);
    let footage =
        footage_path(manifest).map_err(|e| invalid(location.as_str(), Problem::UnsafeName(e)))?;
    let Some(seen) = streamed.get(&footage) else {
        return Err(invalid(
            footage,
            Problem::FootageMissing { manifest: location },
        ));
    };
    if seen.size != manifest.size {
        return Err(invalid(
            footage,
            Problem::FootageSize {
                expected: manifest.size,
                found: seen.size,
            },
        ));
    }
    if seen.digests.sha256 != manifest.digests.sha256 {
        return Err(invalid(
            footage,
            Problem::FootageDigest {
                expected: manifest.digests.sha256,
                found: seen.digests.sha256,
            },
        ));
    }
    let mut sm3_checked = false;
    if let Some(expected) = manifest.digests.sm3 {
        match seen.digests.sm3 {
            Some(found) if found != expected => {
                return Err(invalid(footage, Problem::FootageDigest { expected, found }))
            }
            Some(_) => sm3_checked = true,
            None if !Algorithm::Sm3.is_available() => warnings.push(format!(
                "{footage}: SM3 not checked: this build has no SM3 (SHA-256 was checked)"
            )),
            None => warnings.push(format!(
                "{footage}: SM3 not checked: the footage came before its manifest in the archive (SHA-256 was checked)"
            )),
        }
    }
    Ok(SegmentSummary {
        segment_id: id.to_owned(),
        footage,
        size: seen.size,
        sha256: seen.digests.sha256,
        sm3_checked,
    })
}

/// Step 11, every footage file has a manifest: none is left over once each
/// segment has found its own.
fn check_footage_has_manifest(
    streamed: &BTreeMap<String, FootageSeen>,
    segments: &[SegmentSummary],
) -> Result<(), BundleError> {
    let matched: BTreeSet<&str> = segments.iter().map(|s| s.footage.as_str()).collect();
    if let Some(orphan) = streamed.keys().find(|p| !matched.contains(p.as_str())) {
        return Err(invalid(orphan.as_str(), Problem::FootageWithoutManifest));
    }
    Ok(())
}

fn manifest_location(id: &str) -> String {
    format!("{MANIFESTS_DIR}/{id}{MANIFEST_SUFFIX}")
}

/// The keys among `keys` (by `name+hash`) that `envelope`'s signatures
/// name: all an envelope can verify under, found in O(signatures × log
/// keys) rather than tried one by one. A signature without a key id names
/// none (Custos always writes one).
fn named_keys(envelope: &Envelope, keys: &BTreeMap<String, VerifierKey>) -> Vec<VerifierKey> {
    let mut out: Vec<VerifierKey> = Vec::new();
    for signature in &envelope.signatures {
        if let Some(key) = keys.get(&signature.keyid) {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
    }
    out
}

/// Open the checkpoint: with a key the caller trusts, or, when the caller
/// trusts none, unverified (its body parsed; a key of the bundle's own that
/// signed it is noted, for the report and to tell the ledger key from dock
/// keys). Returns the checkpoint, its origin and the ledger key, if known.
fn open_checkpoint(
    signed: &[u8],
    trusted: &[VerifierKey],
    keys: &[(String, VerifierKey)],
) -> Result<(Checkpoint, Origin, Option<VerifierKey>, Vec<VerifierKey>), BundleError> {
    let note = SignedNote::parse(signed).map_err(|e| {
        invalid(
            CHECKPOINT_PATH,
            Problem::Checkpoint(CheckpointError::Note(e)),
        )
    })?;
    if !trusted.is_empty() {
        // Every trusted key is tried: a signature that names one of them
        // but does not verify rejects the checkpoint even when another
        // trusted key's signature verifies (as a signed note's rules say).
        let mut opened = None;
        let mut unsigned = None;
        let mut verified = Vec::new();
        for key in trusted {
            match Checkpoint::open(signed, key, None) {
                Ok(checkpoint) => {
                    verified.push(key.clone());
                    opened.get_or_insert((checkpoint, key));
                }
                Err(e @ CheckpointError::Signature(VerifyError::NoTrustedSignature { .. })) => {
                    unsigned = Some(e)
                }
                Err(e @ CheckpointError::Signature(_)) => {
                    return Err(invalid(
                        CHECKPOINT_PATH,
                        Problem::CheckpointNotPinned {
                            pinned: vec![key.key_id()],
                            source: e,
                        },
                    ))
                }
                Err(other) => return Err(invalid(CHECKPOINT_PATH, Problem::Checkpoint(other))),
            }
        }
        if let Some((checkpoint, key)) = opened {
            let origin = Origin::Pinned {
                key_id: key.key_id(),
            };
            return Ok((checkpoint, origin, Some(key.clone()), verified));
        }
        // INVARIANT: `trusted` is not empty and no key opened it, so the
        // last one set `unsigned`.
        let source = unsigned.unwrap_or(CheckpointError::Signature(
            VerifyError::NoTrustedSignature {
                signers: note.signatures().iter().map(|s| s.key_id()).collect(),
            },
        ));
        return Err(invalid(
            CHECKPOINT_PATH,
            Problem::CheckpointNotPinned {
                pinned: trusted.iter().map(VerifierKey::key_id).collect(),
                source,
            },
        ));
    }
    let checkpoint = Checkpoint::parse(note.text())
        .map_err(|e| invalid(CHECKPOINT_PATH, Problem::Checkpoint(e)))?;
    let signers: Vec<String> = note.signatures().iter().map(|s| s.key_id()).collect();
    let bundle_key = keys
        .iter()
        .map(|(_, k)| k)
        .find(|k| signers.contains(&k.key_id()) && note.verify(std::slice::from_ref(*k)).is_ok())
        .cloned();
    let origin = Origin::Unverified {
        signers,
        bundle_key: bundle_key.as_ref().map(VerifierKey::key_id),
    };
    Ok((checkpoint, origin, bundle_key, Vec::new()))
}

/// The export's listing: the export entry's `details.segments` and
/// `details.entries`, read through its typed details (the one parse of an
/// `export.created`); for an export in parts, the union of its
/// `export.listed` parts' lists, with the parts' own seqs among the
/// entries. Each part must be in the bundle (`lines`), before the export
/// entry, an `export.listed` by the same actor about the same export.
fn export_lists(
    export: &ParsedLine,
    lines: &[ParsedLine],
) -> Result<(BTreeSet<String>, BTreeSet<u64>), String> {
    let created = match export.entry.parsed_details().map_err(|e| e.to_string())? {
        Details::ExportCreated(created) => created,
        other => return Err(format!("the entry is a {}, not an export", other.action())),
    };
    let mut segments: BTreeSet<String> = created.segments.into_iter().collect();
    let mut entries: BTreeSet<u64> = created.entries.into_iter().collect();
    let Some(parts) = created.parts else {
        return Ok((segments, entries));
    };
    if !segments.is_empty() || !entries.is_empty() || created.requests.is_some() {
        return Err(
            "an export in parts lists its segments, entries and approvals in its parts only".into(),
        );
    }
    if parts.is_empty() {
        return Err("an export in parts names no part".into());
    }
    for seq in parts {
        let line = lines
            .iter()
            .find(|l| l.seq == seq)
            .ok_or_else(|| format!("its part, entry {seq}, is not in {ENTRIES_PATH}"))?;
        let e = &line.entry;
        if seq >= export.seq
            || e.subject != export.entry.subject
            || e.actor.kind != export.entry.actor.kind
            || e.actor.id != export.entry.actor.id
        {
            return Err(format!(
                "its part, entry {seq}, is not an earlier entry of the same export by the same actor"
            ));
        }
        match e
            .parsed_details()
            .map_err(|err| format!("its part, entry {seq}: {err}"))?
        {
            Details::ExportListed(part) => {
                segments.extend(part.segments);
                entries.extend(part.entries);
                entries.insert(seq);
            }
            other => {
                return Err(format!(
                    "its part, entry {seq}, is a {}, not an export.listed",
                    other.action()
                ))
            }
        }
    }
    Ok((segments, entries))
}

/// One line of `entries.jsonl`, checked on its own (step 4).
#[derive(Debug)]
struct ParsedLine {
    line: usize,
    seq: u64,
    raw: Vec<u8>,
    entry: Entry,
    leaf: Hash,
}

impl ParsedLine {
    fn location(&self) -> String {
        format!("{ENTRIES_PATH} line {} (seq {})", self.line, self.seq)
    }
}

fn parse_entries(bytes: &[u8]) -> Result<Vec<ParsedLine>, BundleError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines: Vec<ParsedLine> = Vec::new();
    if body.is_empty() {
        return Ok(lines);
    }
    for (i, text) in body.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let bare = format!("{ENTRIES_PATH} line {number}");
        let json: EntryLine = serde_json::from_slice(text)
            .map_err(|e| invalid(bare.as_str(), Problem::LineSyntax(e.to_string())))?;
        let location = format!("{bare} (seq {})", json.seq);
        let raw = json
            .raw_bytes()
            .map_err(|_| invalid(location.as_str(), Problem::RawBase64))?;
        let entry =
            Entry::parse(&raw).map_err(|e| invalid(location.as_str(), Problem::RawEntry(e)))?;
        if entry.seq != json.seq {
            return Err(invalid(
                location,
                Problem::SeqMismatch {
                    line_seq: json.seq,
                    entry_seq: entry.seq,
                },
            ));
        }
        // `entry` must say what `raw` says. The writer embeds the same bytes,
        // so equal bytes settle it without parsing either again; otherwise
        // the two are compared as JSON values.
        if json.entry.get().as_bytes() != raw.as_slice() {
            // raw parsed as an entry above, so it is JSON; mapped all the same.
            let raw_value: Value = serde_json::from_slice(&raw)
                .map_err(|e| invalid(location.as_str(), Problem::LineSyntax(e.to_string())))?;
            let entry_value: Value = serde_json::from_str(json.entry.get())
                .map_err(|e| invalid(location.as_str(), Problem::LineSyntax(e.to_string())))?;
            if raw_value != entry_value {
                return Err(invalid(location, Problem::EntryFieldMismatch));
            }
        }
        if let Some(previous) = lines.last() {
            if previous.seq == json.seq {
                return Err(invalid(location, Problem::DuplicateSeq));
            }
            if previous.seq > json.seq {
                return Err(invalid(
                    location,
                    Problem::OutOfOrder {
                        previous: previous.seq,
                    },
                ));
            }
        }
        let leaf = leaf_hash(&raw);
        lines.push(ParsedLine {
            line: number,
            seq: json.seq,
            raw,
            entry,
            leaf,
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{check_segment_id, MAX_HELD_BYTES, MAX_KEYS, MAX_MEMBERS, MAX_PROOF_BYTES};
    use crate::dsse::DsseError;
    use crate::entry::EntryError;
    use crate::manifest::ManifestError;
    use crate::merkle::InclusionError;

    /// The variant's name. Exhaustive on purpose: a new [`Problem`] does not
    /// compile until it is named here, and then needs a sample in
    /// [`samples`].
    fn name(problem: &Problem) -> &'static str {
        match problem {
            Problem::UnknownMember => "UnknownMember",
            Problem::DuplicateMember => "DuplicateMember",
            Problem::NotRegularFile { .. } => "NotRegularFile",
            Problem::TooLarge { .. } => "TooLarge",
            Problem::TooManyMembers { .. } => "TooManyMembers",
            Problem::TooManyKeys { .. } => "TooManyKeys",
            Problem::HeldTooLarge { .. } => "HeldTooLarge",
            Problem::DataAfterEnd { .. } => "DataAfterEnd",
            Problem::Missing => "Missing",
            Problem::Key(_) => "Key",
            Problem::KeyFileName { .. } => "KeyFileName",
            Problem::Checkpoint(_) => "Checkpoint",
            Problem::CheckpointNotPinned { .. } => "CheckpointNotPinned",
            Problem::NotAtExport { .. } => "NotAtExport",
            Problem::LineSyntax(_) => "LineSyntax",
            Problem::RawBase64 => "RawBase64",
            Problem::RawEntry(_) => "RawEntry",
            Problem::SeqMismatch { .. } => "SeqMismatch",
            Problem::EntryFieldMismatch => "EntryFieldMismatch",
            Problem::OutOfOrder { .. } => "OutOfOrder",
            Problem::DuplicateSeq => "DuplicateSeq",
            Problem::PrevMismatch { .. } => "PrevMismatch",
            Problem::MissingProof { .. } => "MissingProof",
            Problem::Event(_) => "Event",
            Problem::EventMismatch { .. } => "EventMismatch",
            Problem::ProofWithoutEntry { .. } => "ProofWithoutEntry",
            Problem::ProofSyntax(_) => "ProofSyntax",
            Problem::ProofIndex { .. } => "ProofIndex",
            Problem::ProofSize { .. } => "ProofSize",
            Problem::NotIncluded { .. } => "NotIncluded",
            Problem::TlogProofWithoutEntry { .. } => "TlogProofWithoutEntry",
            Problem::MissingTlogProof { .. } => "MissingTlogProof",
            Problem::TlogProof(_) => "TlogProof",
            Problem::Policy(_) => "Policy",
            Problem::NoExportEntry => "NoExportEntry",
            Problem::LastNotExport { .. } => "LastNotExport",
            Problem::EntryNotListed { .. } => "EntryNotListed",
            Problem::ExportDetails(_) => "ExportDetails",
            Problem::ListedEntryMissing { .. } => "ListedEntryMissing",
            Problem::ListedSegmentMissing { .. } => "ListedSegmentMissing",
            Problem::SegmentNotListed { .. } => "SegmentNotListed",
            Problem::DocumentMissing { .. } => "DocumentMissing",
            Problem::DocumentNotListed { .. } => "DocumentNotListed",
            Problem::DocumentDigest { .. } => "DocumentDigest",
            Problem::Envelope(_) => "Envelope",
            Problem::Manifest(_) => "Manifest",
            Problem::UnsafeName(_) => "UnsafeName",
            Problem::SegmentIdMismatch { .. } => "SegmentIdMismatch",
            Problem::NotIngested { .. } => "NotIngested",
            Problem::FootageMissing { .. } => "FootageMissing",
            Problem::FootageWithoutManifest => "FootageWithoutManifest",
            Problem::FootageSize { .. } => "FootageSize",
            Problem::FootageDigest { .. } => "FootageDigest",
        }
    }

    /// Every variant with values such as the verifier reports (two where
    /// the message has two forms), in declaration order.
    fn samples() -> Vec<Problem> {
        vec![
            Problem::UnknownMember,
            Problem::DuplicateMember,
            Problem::NotRegularFile {
                kind: "Symlink".into(),
            },
            Problem::TooLarge {
                size: 70_000,
                max: MAX_PROOF_BYTES,
            },
            Problem::TooManyMembers {
                max: MAX_MEMBERS,
            },
            Problem::TooManyKeys {
                max: MAX_KEYS,
            },
            Problem::HeldTooLarge {
                max: MAX_HELD_BYTES,
            },
            Problem::DataAfterEnd { offset: 10_752 },
            Problem::Missing,
            Problem::Key(KeyError::BadVerifierKey("the file is not UTF-8".into())),
            Problem::KeyFileName {
                key_id: "dock-7+5c2e9a10".into(),
            },
            Problem::Checkpoint(CheckpointError::BadSize("042".into())),
            Problem::CheckpointNotPinned {
                pinned: vec!["ledger+0a1b2c3d".into(), "ledger+4e5f6a7b".into()],
                source: CheckpointError::Signature(VerifyError::NoTrustedSignature {
                    signers: vec!["forger+89abcdef".into()],
                }),
            },
            Problem::NotAtExport {
                size: 40,
                export: 41,
            },
            Problem::LineSyntax("missing field `raw` at line 1 column 9".into()),
            Problem::RawBase64,
            Problem::RawEntry(EntryError::EmptyField("subject")),
            Problem::SeqMismatch {
                line_seq: 17,
                entry_seq: 18,
            },
            Problem::EntryFieldMismatch,
            Problem::OutOfOrder { previous: 17 },
            Problem::DuplicateSeq,
            Problem::PrevMismatch { previous: 16 },
            Problem::MissingProof {
                path: "proofs/17.json".into(),
            },
            Problem::Event(EntryError::Dsse(DsseError::NoTrustedSignature {
                keyids: vec!["dock-7+5c2e9a10".into()],
            })),
            Problem::EventMismatch { field: "details" },
            Problem::ProofWithoutEntry { seq: 12 },
            Problem::ProofSyntax("unknown field `leaf`, expected one of `index`, `size`, `hashes` at line 1 column 7".into()),
            Problem::ProofIndex { index: 16, seq: 17 },
            Problem::ProofSize {
                size: 41,
                checkpoint: 42,
            },
            Problem::NotIncluded {
                proof: "proofs/17.json".into(),
                source: InclusionError::RootMismatch { index: 17, size: 42 },
            },
            Problem::TlogProofWithoutEntry { seq: 12 },
            Problem::MissingTlogProof {
                path: "tlog-proofs/17.tlog-proof".into(),
            },
            Problem::TlogProof(crate::tlog_proof::ProofError::Policy(
                crate::policy::PolicyError::Cosignatures(
                    crate::cosignature::CosignatureError::NoQuorum {
                        got: 1,
                        quorum: 2,
                        names: "court.example/w1".into(),
                    },
                ),
            )),
            Problem::TlogProof(crate::tlog_proof::ProofError::Inclusion(
                InclusionError::RootMismatch { index: 17, size: 42 },
            )),
            Problem::Policy(crate::policy::PolicyError::NoQuorum),
            Problem::NoExportEntry,
            Problem::LastNotExport {
                action: "segment.viewed".into(),
            },
            Problem::EntryNotListed { export: 41 },
            Problem::ExportDetails("details of export.created: invalid type: string \"7\", expected u64".into()),
            Problem::ListedEntryMissing { seq: 12, export: 41 },
            Problem::ListedSegmentMissing {
                segment: "seg-0007".into(),
                export: 41,
            },
            Problem::SegmentNotListed { export: 41 },
            Problem::DocumentMissing { export: 41 },
            Problem::DocumentNotListed { export: 41 },
            Problem::DocumentDigest {
                expected: Digest::new(Algorithm::Sha256, [0x55; 32]),
                found: Digest::new(Algorithm::Sha256, [0x66; 32]),
            },
            Problem::Envelope(DsseError::NoSignatures),
            Problem::Manifest(ManifestError::EmptyField("officer")),
            Problem::UnsafeName(check_segment_id("../seg").unwrap_err()),
            Problem::SegmentIdMismatch {
                found: "seg-0008".into(),
            },
            Problem::NotIngested { seqs: vec![] },
            Problem::NotIngested { seqs: vec![3, 9] },
            Problem::FootageMissing {
                manifest: "manifests/seg-0007.dsse.json".into(),
            },
            Problem::FootageWithoutManifest,
            Problem::FootageSize {
                expected: 1_048_576,
                found: 1_048_575,
            },
            Problem::FootageDigest {
                expected: Digest::new(Algorithm::Sha256, [0x11; 32]),
                found: Digest::new(Algorithm::Sha256, [0x22; 32]),
            },
            Problem::FootageDigest {
                expected: Digest::new(Algorithm::Sm3, [0x33; 32]),
                found: Digest::new(Algorithm::Sm3, [0x44; 32]),
            },
        ]
    }

    /// Every problem message, one line per sample: a change of wording
    /// shows in review as a change of this snapshot.
    #[test]
    fn problem_messages() {
        let text: Vec<String> = samples()
            .iter()
            .map(|problem| format!("{}: {problem}", name(problem)))
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
