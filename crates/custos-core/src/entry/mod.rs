//! Custody ledger entries, and the signed events docks send to the ledger.
//!
//! An [`Entry`] is one line of the custody record: number `seq`, the
//! ledger's `time`, the `prev` leaf hash chaining it to entry `seq - 1`, who
//! acted (`actor`), what they did (`action`, a dotted name such as
//! `segment.ingested`), to what (`subject`), its `details` (a JSON object
//! whose members depend on the action: [`details`] types them), and where
//! the actor signed the request, the DSSE `envelope` it sent. Its bytes are
//! RFC 8785 canonical JSON; those exact bytes are the Merkle leaf, and
//! [`Entry::parse`] refuses any other spelling, so that a leaf hash names one
//! entry and one entry has one leaf hash.
//!
//! An [`Event`] is what a dock signs and POSTs: `{"action", "subject",
//! "details", "time"}` (the dock's own clock) in a DSSE envelope of type
//! [`EVENT_PAYLOAD_TYPE`]. The ledger verifies it ([`Event::open`]) and wraps
//! it in an entry ([`Entry::from_event`]), adding `seq`, `prev`, its own
//! `time` and the `actor`.
//!
//! Reading: events come straight from the network, so unknown fields are
//! refused; entries are long-lived records that later verifiers must still
//! read, so unknown fields in them are ignored (the leaf hash covers the
//! bytes regardless). Optional fields are absent or hold a value, never `null`.
//!
//! This module never assigns sequence numbers or reads a clock: the ledger
//! passes both in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::canonical::{self, CanonicalError};
use crate::dsse::{DsseError, Envelope, EVENT_PAYLOAD_TYPE};
use crate::keys::{Signers, VerifierKey};
use crate::manifest::Timestamp;
use crate::merkle::{leaf_hash, Hash};

pub mod details;
pub use details::{Details, DetailsError};

/// Largest serialised entry [`Entry::parse`] reads: 2 MiB (an entry holds at
/// most one envelope, itself at most [`crate::dsse::MAX_ENVELOPE_BYTES`]).
pub const MAX_ENTRY_BYTES: usize = 2 << 20;
/// Longest action name, in bytes.
pub const MAX_ACTION_LEN: usize = 64;

/// The action names Custos writes. Any name with valid syntax is accepted
/// (see [`Action`]); these are the ones the parts agree on.
pub mod actions {
    /// A recorder was plugged into a dock slot and identified.
    pub const RECORDER_DOCKED: &str = "recorder.docked";
    /// A recorder was unplugged.
    pub const RECORDER_UNDOCKED: &str = "recorder.undocked";
    /// The dock set the recorder's clock.
    pub const RECORDER_CLOCK_SET: &str = "recorder.clock_set";
    /// A segment was read, hashed, stored and its manifest signed.
    pub const SEGMENT_INGESTED: &str = "segment.ingested";
    /// The stored object was read back (or checksum-confirmed) and matches.
    pub const SEGMENT_VERIFIED: &str = "segment.verified";
    /// The segment was removed from the recorder after verification.
    pub const SEGMENT_WIPED: &str = "segment.wiped";
    /// Someone played the footage.
    pub const SEGMENT_VIEWED: &str = "segment.viewed";
    /// Someone downloaded the footage.
    pub const SEGMENT_DOWNLOADED: &str = "segment.downloaded";
    /// A case was opened.
    pub const CASE_CREATED: &str = "case.created";
    /// A segment was linked to a case.
    pub const CASE_SEGMENT_LINKED: &str = "case.segment_linked";
    /// A case was closed.
    pub const CASE_CLOSED: &str = "case.closed";
    /// Someone asked for access to footage.
    pub const ACCESS_REQUESTED: &str = "access.requested";
    /// A supervisor approved an access request.
    pub const ACCESS_APPROVED: &str = "access.approved";
    /// A supervisor denied an access request.
    pub const ACCESS_DENIED: &str = "access.denied";
    /// An attempt to view or download footage was refused (no approval).
    pub const ACCESS_REFUSED: &str = "access.refused";
    /// An export bundle was built.
    pub const EXPORT_CREATED: &str = "export.created";
    /// One part of a large export's listing (its segments and their
    /// entries), appended before the `export.created` that names the parts.
    pub const EXPORT_LISTED: &str = "export.listed";
    /// A legal hold was placed.
    pub const HOLD_PLACED: &str = "hold.placed";
    /// A legal hold was released.
    pub const HOLD_RELEASED: &str = "hold.released";
    /// A retention period was changed.
    pub const RETENTION_CHANGED: &str = "retention.changed";
    /// The retention sweeper deleted footage whose retention had ended.
    pub const RETENTION_DELETED: &str = "retention.deleted";
    /// The audit scrub re-hashed stored objects against their manifests.
    pub const AUDIT_SCRUBBED: &str = "audit.scrubbed";
    /// A bearer token was created.
    pub const TOKEN_CREATED: &str = "token.created";
    /// A bearer token was revoked.
    pub const TOKEN_REVOKED: &str = "token.revoked";
    /// An admin token was used.
    pub const TOKEN_USED: &str = "token.used";
    /// A dock's verifier key was registered.
    pub const KEY_REGISTERED: &str = "key.registered";
    /// The ledger found a gap in a recorder's footage (a missing file, a
    /// clock jump, a late ingest), from the manifests in its catalogue.
    pub const COVERAGE_GAP: &str = "coverage.gap";
    /// A supervisor explained a coverage gap (中断说明).
    pub const COVERAGE_EXPLAINED: &str = "coverage.explained";
    /// A key began signing the ledger's checkpoints (a key rotation, or an
    /// SM2 key configured beside the Ed25519 one).
    pub const LEDGER_KEY_ADDED: &str = "ledger.key_added";
    /// A key stopped signing the ledger's checkpoints.
    pub const LEDGER_KEY_RETIRED: &str = "ledger.key_retired";

    /// Every name above.
    pub const ALL: &[&str] = &[
        RECORDER_DOCKED,
        RECORDER_UNDOCKED,
        RECORDER_CLOCK_SET,
        SEGMENT_INGESTED,
        SEGMENT_VERIFIED,
        SEGMENT_WIPED,
        SEGMENT_VIEWED,
        SEGMENT_DOWNLOADED,
        CASE_CREATED,
        CASE_SEGMENT_LINKED,
        CASE_CLOSED,
        ACCESS_REQUESTED,
        ACCESS_APPROVED,
        ACCESS_DENIED,
        ACCESS_REFUSED,
        EXPORT_CREATED,
        EXPORT_LISTED,
        HOLD_PLACED,
        HOLD_RELEASED,
        RETENTION_CHANGED,
        RETENTION_DELETED,
        AUDIT_SCRUBBED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        TOKEN_USED,
        KEY_REGISTERED,
        COVERAGE_GAP,
        COVERAGE_EXPLAINED,
        LEDGER_KEY_ADDED,
        LEDGER_KEY_RETIRED,
    ];
}

/// Why an entry or event could not be built, written, read or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The bytes are not canonical JSON of the expected shape, or a value
    /// holds a number that cannot be written exactly.
    #[error("{0}")]
    Canonical(#[from] CanonicalError),
    /// The event's envelope did not verify or is not an event envelope.
    #[error("signed event: {0}")]
    Dsse(#[from] DsseError),
    /// The serialised entry is larger than [`MAX_ENTRY_BYTES`].
    #[error("entry is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An action name is not dotted lower-case words.
    #[error("invalid action name {0:?}: expected lower-case dotted words such as \"segment.ingested\" (a-z, 0-9, '_'; at most 64 bytes)")]
    BadAction(String),
    /// A field that identifies something is empty.
    #[error("{0} is empty")]
    EmptyField(&'static str),
    /// `prev` is present on entry 0 or absent on a later one.
    #[error("entry {seq}: prev must be {}", if *seq == 0 { "absent on entry 0" } else { "present on every entry after 0" })]
    PrevPresence {
        /// The entry's sequence number.
        seq: u64,
    },
    /// `prev` is not the leaf hash of the previous entry: the chain is broken.
    #[error("entry {seq}: prev does not match the leaf hash of entry {}", seq.saturating_sub(1))]
    PrevMismatch {
        /// The entry's sequence number.
        seq: u64,
    },
}

// ---------------------------------------------------------------------------
// Action

/// A dotted action name: two or more words of `a-z`, `0-9` and `_`, each
/// starting with a letter, joined by `.`, at most [`MAX_ACTION_LEN`] bytes
/// (`segment.ingested`, `case.segment_linked`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Action(String);

impl Action {
    /// Check `name`'s syntax and wrap it.
    pub fn new(name: &str) -> Result<Action, EntryError> {
        let valid = name.len() <= MAX_ACTION_LEN && name.split('.').count() >= 2 && {
            name.split('.').all(|word| {
                let mut bytes = word.bytes();
                bytes.next().is_some_and(|b| b.is_ascii_lowercase())
                    && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
        };
        if valid {
            Ok(Action(name.to_owned()))
        } else {
            Err(EntryError::BadAction(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is one of [`actions::ALL`].
    pub fn is_known(&self) -> bool {
        actions::ALL.contains(&self.0.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Action {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::new(s)
    }
}

impl PartialEq<str> for Action {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Action {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Action::new(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Actor

/// Who acted: the role behind a bearer token, or the ledger itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A docking station (token role `dock`, signs its events).
    Dock,
    /// An officer.
    Officer,
    /// A legal reviewer.
    Reviewer,
    /// A supervisor.
    Supervisor,
    /// An auditor.
    Auditor,
    /// An administrator.
    Admin,
    /// The ledger service itself (retention sweeps, checkpoints).
    Ledger,
    /// Other automated parts of Custos (the audit scrub, the CLI).
    System,
}

impl ActorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ActorKind; 8] = [
        ActorKind::Dock,
        ActorKind::Officer,
        ActorKind::Reviewer,
        ActorKind::Supervisor,
        ActorKind::Auditor,
        ActorKind::Admin,
        ActorKind::Ledger,
        ActorKind::System,
    ];

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Dock => "dock",
            ActorKind::Officer => "officer",
            ActorKind::Reviewer => "reviewer",
            ActorKind::Supervisor => "supervisor",
            ActorKind::Auditor => "auditor",
            ActorKind::Admin => "admin",
            ActorKind::Ledger => "ledger",
            ActorKind::System => "system",
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not an actor kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown actor kind {0:?} (expected dock, officer, reviewer, supervisor, auditor, admin, ledger or system)")]
pub struct UnknownActorKind(pub String);

impl FromStr for ActorKind {
    type Err = UnknownActorKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownActorKind(s.to_owned()))
    }
}

/// Who acted: a kind and an id (the token's name, the dock id, `ledger`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The kind of actor.
    pub kind: ActorKind,
    /// Its id.
    pub id: String,
}

// ---------------------------------------------------------------------------
// Entry

/// One custody ledger entry (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When the ledger appended it (the ledger's clock).
    pub time: Timestamp,
    /// Leaf hash of entry `seq - 1` ([`leaf_hash`] of its bytes); absent
    /// on entry 0. Standard padded base64 in JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub prev: Option<Hash>,
    /// Who acted.
    pub actor: Actor,
    /// What they did.
    pub action: Action,
    /// What it was done to: a segment id, a case id, a token name...
    pub subject: String,
    /// Anything else worth recording, as a JSON object.
    pub details: Map<String, Value>,
    /// The DSSE envelope the actor signed, where it signed one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub envelope: Option<Envelope>,
}

impl Entry {
    /// The entry for a verified event: the event's action, subject and
    /// details, with the ledger's `seq`, `prev`, `time` and `actor`, and the
    /// envelope the event arrived in.
    pub fn from_event(
        seq: u64,
        prev: Option<Hash>,
        time: Timestamp,
        actor: Actor,
        event: Event,
        envelope: Envelope,
    ) -> Result<Entry, EntryError> {
        let entry = Entry {
            seq,
            time,
            prev,
            actor,
            action: event.action,
            subject: event.subject,
            details: event.details,
            envelope: Some(envelope),
        };
        entry.validate()?;
        Ok(entry)
    }

    /// The entry's canonical JSON bytes: exactly the Merkle leaf.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        Ok(canonical::to_canonical_vec(self)?)
    }

    /// Read an entry from its leaf bytes, which must be canonical JSON, and
    /// [`validate`](Self::validate) it. Unknown fields are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let entry: Entry = canonical::from_canonical_slice(bytes)?;
        entry.validate()?;
        Ok(entry)
    }

    /// The details, typed by the action ([`Details::parse`]).
    pub fn parsed_details(&self) -> Result<Details, DetailsError> {
        Details::parse(self.action.as_str(), &self.details)
    }

    /// Check the fields on their own: `prev` is absent exactly on entry 0,
    /// and the actor id and subject are not empty.
    pub fn validate(&self) -> Result<(), EntryError> {
        if (self.seq == 0) != self.prev.is_none() {
            return Err(EntryError::PrevPresence { seq: self.seq });
        }
        if self.actor.id.is_empty() {
            return Err(EntryError::EmptyField("entry actor.id"));
        }
        if self.subject.is_empty() {
            return Err(EntryError::EmptyField("entry subject"));
        }
        Ok(())
    }

    /// Check the hash chain link: `previous` must be the leaf bytes of entry
    /// `seq - 1` (`None` for entry 0), and `prev` their [`leaf_hash`].
    pub fn verify_prev(&self, previous: Option<&[u8]>) -> Result<(), EntryError> {
        match (self.prev, previous) {
            (None, None) if self.seq == 0 => Ok(()),
            (Some(prev), Some(bytes)) if self.seq > 0 => {
                if prev == leaf_hash(bytes) {
                    Ok(())
                } else {
                    Err(EntryError::PrevMismatch { seq: self.seq })
                }
            }
            _ => Err(EntryError::PrevPresence { seq: self.seq }),
        }
    }
}

/// An entry's canonical bytes without the three fields the ledger assigns
/// when it sequences the entry (`seq`, `prev`, `time`), so that the costly
/// part of writing an entry (details, envelope) happens where the append is
/// admitted, in parallel, and the ledger's single writer only splices in
/// three small values.
///
/// Canonical JSON sorts an object's members by name, and the members of an
/// entry sort as `action`, `actor`, `details`, `envelope`, `prev`, `seq`,
/// `subject`, `time`: the body keeps the canonical text of the first four
/// (the head) and of `subject`, and [`EntryBody::to_bytes`] writes the
/// rest between them. The result is byte for byte [`Entry::to_bytes`] of
/// the same entry (a test holds it to that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBody {
    /// `{"action":…,"actor":…,"details":…` and `,"envelope":…` if any.
    head: Vec<u8>,
    /// The canonical JSON string of the subject.
    subject: Vec<u8>,
    /// Whether the actor id is empty (refused by [`Entry::validate`]).
    empty_actor: bool,
}

impl EntryBody {
    /// The body of an entry by `actor` doing `action` to `subject`, with
    /// `details` and, where the actor signed one, the envelope as its
    /// canonical JSON (`envelope_json`: exactly what [`Envelope::to_json`]
    /// returns; the caller usually has it already, for de-duplication).
    pub fn new(
        actor: &Actor,
        action: &Action,
        subject: &str,
        details: &Map<String, Value>,
        envelope_json: Option<&[u8]>,
    ) -> Result<EntryBody, EntryError> {
        if subject.is_empty() {
            return Err(EntryError::EmptyField("entry subject"));
        }
        let details = canonical::object_to_canonical_vec(details)?;
        let envelope_len = envelope_json.map_or(0, |e| e.len() + 12);
        let mut head = Vec::with_capacity(
            64 + action.as_str().len() + actor.id.len() + details.len() + envelope_len,
        );
        // The action, the actor (members `id`, `kind`, in canonical order)
        // and the subject are strings, whose canonical form is
        // `canonical::write_string`'s; a test holds the whole body to
        // `Entry::to_bytes`.
        head.extend_from_slice(b"{\"action\":");
        canonical::write_string(&mut head, action.as_str());
        head.extend_from_slice(b",\"actor\":{\"id\":");
        canonical::write_string(&mut head, &actor.id);
        head.extend_from_slice(b",\"kind\":");
        canonical::write_string(&mut head, actor.kind.as_str());
        head.extend_from_slice(b"},\"details\":");
        head.extend_from_slice(&details);
        if let Some(envelope) = envelope_json {
            head.extend_from_slice(b",\"envelope\":");
            head.extend_from_slice(envelope);
        }
        let mut subject_json = Vec::with_capacity(subject.len() + 2);
        canonical::write_string(&mut subject_json, subject);
        Ok(EntryBody {
            head,
            subject: subject_json,
            empty_actor: actor.id.is_empty(),
        })
    }

    /// A lower bound of the entry's length in bytes, whatever its `seq`,
    /// `prev` and `time`: what the body alone takes.
    pub fn min_len(&self) -> usize {
        self.head.len() + self.subject.len()
    }

    /// The entry's canonical bytes at `seq`, after `prev`, at `time`:
    /// what [`Entry::to_bytes`] returns for it, with the same checks.
    pub fn to_bytes(
        &self,
        seq: u64,
        prev: Option<Hash>,
        time: Timestamp,
    ) -> Result<Vec<u8>, EntryError> {
        if (seq == 0) != prev.is_none() {
            return Err(EntryError::PrevPresence { seq });
        }
        if self.empty_actor {
            return Err(EntryError::EmptyField("entry actor.id"));
        }
        let time = canonical::to_canonical_vec(&time)?;
        let mut out = Vec::with_capacity(self.head.len() + self.subject.len() + 128);
        out.extend_from_slice(&self.head);
        if let Some(prev) = prev {
            out.extend_from_slice(b",\"prev\":\"");
            out.extend_from_slice(prev.to_string().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(&canonical::to_canonical_vec(&seq)?);
        out.extend_from_slice(b",\"subject\":");
        out.extend_from_slice(&self.subject);
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(&time);
        out.push(b'}');
        Ok(out)
    }
}

/// Deserialise an optional field that, when present, must hold a value
/// (not `null`): absent and `null` would otherwise be two spellings of `None`.
fn some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

// ---------------------------------------------------------------------------
// Event

/// What a dock signs and sends to the ledger (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// To what.
    pub subject: String,
    /// Anything else, as a JSON object (for `segment.ingested`, the
    /// manifest's envelope and object key, for example).
    pub details: Map<String, Value>,
    /// When it happened by the dock's clock.
    pub time: Timestamp,
}

/// An event whose envelope verified under a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvent {
    /// The event, parsed from the envelope's payload.
    pub event: Event,
    /// Key ids (`name+hash`) of the trusted keys that signed it.
    pub signers: Vec<String>,
}

impl Event {
    /// An event with a checked action name and a non-empty subject.
    pub fn new(
        action: &str,
        subject: impl Into<String>,
        details: Map<String, Value>,
        time: Timestamp,
    ) -> Result<Event, EntryError> {
        let event = Event {
            action: Action::new(action)?,
            subject: subject.into(),
            details,
            time,
        };
        event.validate()?;
        Ok(event)
    }

    /// An event doing what `details` say (their action) to `subject`.
    pub fn of(
        details: &Details,
        subject: impl Into<String>,
        time: Timestamp,
    ) -> Result<Event, EntryError> {
        Event::new(details.action(), subject, details.to_map(), time)
    }

    /// The details, typed by the action ([`Details::parse`]).
    pub fn parsed_details(&self) -> Result<Details, DetailsError> {
        Details::parse(self.action.as_str(), &self.details)
    }

    /// The event as canonical JSON: the DSSE payload.
    pub fn to_canonical(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        Ok(canonical::to_canonical_vec(self)?)
    }

    /// Read an event from canonical JSON; unknown fields are refused.
    pub fn parse(bytes: &[u8]) -> Result<Event, EntryError> {
        let event: Event = canonical::from_canonical_slice(bytes)?;
        event.validate()?;
        Ok(event)
    }

    /// Sign the canonical JSON with `key` as a DSSE envelope of type
    /// [`EVENT_PAYLOAD_TYPE`].
    pub fn sign(&self, key: &(impl Signers + ?Sized)) -> Result<Envelope, EntryError> {
        Ok(Envelope::sign(
            EVENT_PAYLOAD_TYPE,
            self.to_canonical()?,
            &key.signing_keys(),
        )?)
    }

    /// Verify `envelope` under the `trusted` keys, check it is an event
    /// envelope, and parse its payload.
    pub fn open(envelope: &Envelope, trusted: &[VerifierKey]) -> Result<SignedEvent, EntryError> {
        Event::open_with(envelope, trusted, &mut |key, message, sig| {
            key.verify(message, sig)
        })
    }

    /// [`Event::open`] with the signature check of
    /// [`Envelope::verify_with`] (for a caller that verified signatures in
    /// a batch beforehand).
    pub fn open_with(
        envelope: &Envelope,
        trusted: &[VerifierKey],
        check: &mut crate::dsse::SignatureCheck<'_>,
    ) -> Result<SignedEvent, EntryError> {
        let signers = envelope.verify_for_with(EVENT_PAYLOAD_TYPE, trusted, check)?;
        let event = Event::parse(&envelope.payload)?;
        Ok(SignedEvent { event, signers })
    }

    fn validate(&self) -> Result<(), EntryError> {
        if self.subject.is_empty() {
            return Err(EntryError::EmptyField("event subject"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_syntax() {
        for good in ["segment.ingested", "case.segment_linked", "a.b.c", "x1.y_2"] {
            assert!(Action::new(good).is_ok(), "{good}");
        }
        let long = format!("a.{}", "b".repeat(MAX_ACTION_LEN - 1));
        for bad in [
            "",
            "segment",
            ".a",
            "a.",
            "a..b",
            "Segment.ingested",
            "1a.b",
            "a._b",
            "a.b-c",
            "a.b c",
            "a.b\n",
            &long,
        ] {
            assert!(Action::new(bad).is_err(), "{bad:?}");
        }
        for name in actions::ALL {
            let action = Action::new(name).unwrap();
            assert!(action.is_known());
        }
        assert!(!Action::new("made.up").unwrap().is_known());
    }

    #[test]
    fn actor_kind_names_round_trip() {
        for kind in ActorKind::ALL {
            assert_eq!(kind.as_str().parse::<ActorKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert!("root".parse::<ActorKind>().is_err());
    }

    /// [`EntryBody::to_bytes`] is [`Entry::to_bytes`], byte for byte, over
    /// entries with and without `prev` and an envelope, with details and
    /// subjects that need escaping and non-ASCII names that sort by UTF-16.
    #[test]
    fn entry_body_writes_what_entry_writes() {
        let key = crate::keys::SigningKey::generate("dock-7", &mut rand_core::OsRng).unwrap();
        let time = Timestamp::parse("2026-03-01T12:34:56.123456789Z").unwrap();
        let event = Event::new("recorder.docked", "rec-1", Map::new(), time).unwrap();
        let envelope = event.sign(&key).unwrap();
        let mut details = Map::new();
        details.insert("zeta".into(), serde_json::json!([1, 2.5, "x\u{7}\"\\/"]));
        details.insert(
            "\u{e9}t\u{e9}".into(),
            serde_json::json!({"b": null, "a": true}),
        );
        details.insert("\u{1f600}".into(), serde_json::json!(1e21));
        details.insert("\u{ff61}".into(), serde_json::json!(-0.0));
        let subjects = ["seg-1", "caf\u{e9} \"q\" \n\t\u{1}", "\u{2028}"];
        let actors = [
            Actor {
                kind: ActorKind::Dock,
                id: "dock-7".into(),
            },
            Actor {
                kind: ActorKind::Admin,
                id: "\u{c5}sa".into(),
            },
        ];
        for (seq, prev) in [
            (0, None),
            (1, Some(leaf_hash(b"x"))),
            (1 << 40, Some(leaf_hash(b""))),
        ] {
            for subject in subjects {
                for actor in &actors {
                    for (details, envelope) in [
                        (Map::new(), None),
                        (details.clone(), None),
                        (details.clone(), Some(envelope.clone())),
                    ] {
                        let entry = Entry {
                            seq,
                            time,
                            prev,
                            actor: actor.clone(),
                            action: Action::new("segment.ingested").unwrap(),
                            subject: subject.into(),
                            details: details.clone(),
                            envelope: envelope.clone(),
                        };
                        let json = envelope.as_ref().map(Envelope::to_json);
                        let body = EntryBody::new(
                            &entry.actor,
                            &entry.action,
                            &entry.subject,
                            &entry.details,
                            json.as_deref(),
                        )
                        .unwrap();
                        let bytes = body.to_bytes(seq, prev, time).unwrap();
                        assert_eq!(
                            String::from_utf8(bytes).unwrap(),
                            String::from_utf8(entry.to_bytes().unwrap()).unwrap()
                        );
                    }
                }
            }
        }
        // The same refusals as Entry::to_bytes.
        let body = EntryBody::new(
            &actors[0],
            &Action::new("a.b").unwrap(),
            "s",
            &Map::new(),
            None,
        )
        .unwrap();
        assert!(matches!(
            body.to_bytes(0, Some(leaf_hash(b"")), time),
            Err(EntryError::PrevPresence { .. })
        ));
        assert!(matches!(
            body.to_bytes(3, None, time),
            Err(EntryError::PrevPresence { .. })
        ));
        assert!(body.to_bytes(1 << 60, Some(leaf_hash(b"")), time).is_err());
        let nobody = Actor {
            kind: ActorKind::Dock,
            id: String::new(),
        };
        let body = EntryBody::new(
            &nobody,
            &Action::new("a.b").unwrap(),
            "s",
            &Map::new(),
            None,
        )
        .unwrap();
        assert!(matches!(
            body.to_bytes(0, None, time),
            Err(EntryError::EmptyField(_))
        ));
        assert!(EntryBody::new(
            &actors[0],
            &Action::new("a.b").unwrap(),
            "",
            &Map::new(),
            None
        )
        .is_err());
    }
}
