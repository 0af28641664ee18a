//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.
//!
//! Manifests, custody events and ledger entries are signed or hashed as
//! bytes, so every producer must write the same value as the same bytes and
//! every reader must be able to tell whether bytes it was handed are in that
//! one form. JCS gives the rules: no whitespace, object members sorted by the
//! UTF-16 code units of their names (§3.2.3), strings with only the escapes
//! ECMAScript's `JSON.stringify` uses (§3.2.2.2), and numbers written as
//! ECMAScript writes a double (§3.2.2.3).
//!
//! The writing itself is done by the `serde_json_canonicalizer` crate, whose
//! number formatting is `ryu-js` (the ECMAScript algorithm) and whose key
//! order is UTF-16; the tests of this module hold it to the RFC's own
//! examples. This module adds what the crate leaves to its callers:
//!
//! - **I-JSON on input** (RFC 7493, required by RFC 8785 §3.1): a duplicate
//!   member name is an error, never "last one wins"; lone surrogates are
//!   refused by `serde_json` already;
//! - **exact integers on output**: JCS writes every number as a double, so
//!   a Rust integer whose decimal digits are not the canonical form of the
//!   nearest double (2^53 + 1, `u64::MAX`) would come back changed; writing
//!   one is an error instead of a silent rounding. Every integer up to
//!   ±2^53 is exact; larger ones only where the digits happen to be the
//!   double's own (`1e+21` is written `1e+21`, and 2^60 is refused);
//! - **"is this canonical?"** for bytes from outside, with the offset of the
//!   first byte that differs, so that a signed or hashed payload has exactly
//!   one accepted spelling.
//!
//! This module must never accept two spellings of one value as canonical,
//! and never change a value while writing it.

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every integer of magnitude up to this (2^53) is a double and is written
/// exactly; beyond it, only some are. Values that may grow larger (none in
/// Custos's formats do) should travel as strings, as RFC 7493 §2.2 advises.
pub const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Why a value could not be written, or bytes could not be read, as
/// canonical JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The value's `Serialize` implementation failed, or produced something
    /// JSON cannot hold (NaN, an infinity, a map with non-string keys).
    #[error("value cannot be written as canonical JSON: {0}")]
    Serialize(serde_json::Error),
    /// An integer in the value would be changed by the trip through a
    /// double: canonical JSON would write other digits.
    #[error("integer {given} cannot be written exactly as a JSON number (canonical JSON would write {written}); send it as a string")]
    InexactInteger {
        /// The integer.
        given: String,
        /// What canonical JSON would write instead.
        written: String,
    },
    /// The bytes are not I-JSON: bad syntax, trailing data, invalid UTF-8, a
    /// lone surrogate, a duplicate member name or a number out of range.
    #[error("not valid I-JSON: {0}")]
    Parse(serde_json::Error),
    /// The bytes are valid JSON but not in canonical form.
    #[error("JSON is not in RFC 8785 canonical form (first difference at byte {offset})")]
    NotCanonical {
        /// Offset of the first byte that differs from the canonical form.
        offset: usize,
    },
    /// The bytes are canonical JSON but do not have the expected shape
    /// (a missing or mistyped field).
    #[error("canonical JSON does not match the expected structure: {0}")]
    Schema(serde_json::Error),
}

/// Write `value` as RFC 8785 canonical JSON.
///
/// Fails on NaN or infinite floats, on maps whose keys are not strings and on
/// integers that a double cannot carry exactly (see [`MAX_EXACT_INTEGER`]).
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    // The canonicaliser refuses NaN and infinities; `serde_json::to_value`
    // would turn them into `null`, so it runs first.
    let bytes = serde_json_canonicalizer::to_vec(&value).map_err(CanonicalError::Serialize)?;
    // The canonicaliser writes every integer through a double; a second pass
    // over the value catches the integers that would be rounded.
    let tree = serde_json::to_value(value).map_err(CanonicalError::Serialize)?;
    check_integers(&tree)?;
    Ok(bytes)
}

/// Parse `bytes` as I-JSON and write them back in canonical form.
///
/// Numbers are read as ECMAScript reads them (as doubles), so an integer
/// literal beyond 2^53 is rounded here exactly as `JSON.parse` would round it.
pub fn canonicalize_json(bytes: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let value = parse_strict(bytes)?;
    write_value(&value)
}

/// Whether `bytes` are I-JSON already in RFC 8785 canonical form.
pub fn is_canonical(bytes: &[u8]) -> bool {
    check_canonical(bytes).is_ok()
}

/// Check that `bytes` are I-JSON in canonical form; on failure say where
/// they first differ from it.
pub fn check_canonical(bytes: &[u8]) -> Result<(), CanonicalError> {
    let value = parse_strict(bytes)?;
    compare(bytes, &write_value(&value)?)
}

/// Parse canonical JSON into `T`, refusing bytes that are not canonical, so
/// that whatever is accepted has exactly one spelling.
///
/// Every integer literal in canonical bytes is the canonical form of its
/// double, so an integer field read here writes back to the same digits.
pub fn from_canonical_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CanonicalError> {
    let value = parse_strict(bytes)?;
    compare(bytes, &write_value(&value)?)?;
    // The value parsed above is the document: reading `T` from it, rather
    // than from the bytes again, parses once.
    serde_json::from_value(value).map_err(CanonicalError::Schema)
}

fn compare(given: &[u8], canonical: &[u8]) -> Result<(), CanonicalError> {
    if given == canonical {
        return Ok(());
    }
    let offset = given
        .iter()
        .zip(canonical)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| given.len().min(canonical.len()));
    Err(CanonicalError::NotCanonical { offset })
}

/// Write a parsed value as canonical JSON.
///
/// Written here rather than by `serde_json_canonicalizer` (which builds a
/// sorted set of owned members for every object): every custody event the
/// ledger admits is checked this way, and most of what an event holds is
/// strings and small integers. Their canonical forms are simple: a string
/// is `serde_json`'s escaping (only `"`, `\\` and U+0000 to U+001F, with
/// the same short forms and lower-case `\u00xx` as ECMAScript), an integer
/// of magnitude up to [`MAX_EXACT_INTEGER`] is its decimal digits (what
/// ECMAScript writes for such a double), and object members are sorted by
/// the UTF-16 code units of their names. Every other number (floats and
/// larger integers) is written by the canonicaliser, one number at a time.
/// A test holds this to the canonicaliser's output.
fn write_value(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_into(&mut out, value)?;
    Ok(out)
}

/// Write `map`, a JSON object, as canonical JSON, refusing inexact
/// integers as [`to_canonical_vec`] does: the same bytes and errors as
/// `to_canonical_vec(map)`, without its copy of the whole map.
pub fn object_to_canonical_vec(map: &Map<String, Value>) -> Result<Vec<u8>, CanonicalError> {
    map.values().try_for_each(check_integers)?;
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, map)?;
    Ok(out)
}

/// Append `text` to `out` as a canonical JSON string.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    // INVARIANT: writing a string into a Vec cannot fail.
    serde_json::to_writer(&mut *out, text).expect("INVARIANT: a string writes");
}

fn write_into(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_into(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members)?,
    }
    Ok(())
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), CanonicalError> {
    use std::io::Write as _;
    let exact = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) if u <= MAX_EXACT_INTEGER => write!(out, "{u}").is_ok(),
        (None, Some(i)) if i.unsigned_abs() <= MAX_EXACT_INTEGER => write!(out, "{i}").is_ok(),
        _ => false,
    };
    if !exact {
        let written = serde_json_canonicalizer::to_vec(&Value::Number(n.clone()))
            .map_err(CanonicalError::Serialize)?;
        out.extend_from_slice(&written);
    }
    Ok(())
}

fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // Names in UTF-16 code unit order (RFC 8785 §3.2.3), which differs
    // from the map's own (byte) order only for names holding characters
    // beyond U+FFFF.
    if !sorted.is_sorted_by(|a, b| utf16_le(a.0, b.0)) {
        sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    }
    out.push(b'{');
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_into(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn utf16_le(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a <= b;
    }
    a.encode_utf16().le(b.encode_utf16())
}

/// Refuse any integer (as `serde_json` holds it: `u64` or `i64`) whose
/// decimal digits are not what canonical JSON writes for it.
fn check_integers(value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Number(n) => {
            let magnitude = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u,
                (None, Some(i)) => i.unsigned_abs(),
                (None, None) => return Ok(()), // a double: written as ECMAScript writes it
            };
            if magnitude <= MAX_EXACT_INTEGER {
                return Ok(());
            }
            let given = n.to_string();
            let written = write_value(&Value::from(n.as_f64()))?;
            if written == given.as_bytes() {
                Ok(())
            } else {
                Err(CanonicalError::InexactInteger {
                    given,
                    written: String::from_utf8_lossy(&written).into_owned(),
                })
            }
        }
        Value::Array(items) => items.iter().try_for_each(check_integers),
        Value::Object(members) => members.values().try_for_each(check_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Parse I-JSON: `serde_json`'s grammar (with its nesting limit of 128),
/// plus a refusal of duplicate member names.
fn parse_strict(bytes: &[u8]) -> Result<Value, CanonicalError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) = StrictValue::deserialize(&mut de).map_err(CanonicalError::Parse)?;
    de.end().map_err(CanonicalError::Parse)?;
    Ok(value)
}

/// A `serde_json::Value` built by a visitor that refuses duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name {key:?} (I-JSON, RFC 7493 §2.3)"
                )));
            }
            let StrictValue(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer of this module against the canonicaliser crate, on
    /// values that exercise every branch: names beyond U+FFFF (whose UTF-16
    /// order differs from their byte order), escapes, integers around
    /// 2^53, negative numbers, floats.
    #[test]
    fn own_writer_matches_the_canonicaliser() {
        let values = [
            serde_json::json!({
                "b": [1, 2, {"z": null, "a": true}],
                "a": false,
                "\u{e000}": 1,
                "\u{10000}": 2,
                "\u{7f}x": "del",
                "é": "accent",
                "": "empty",
                "ctl": "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\"\\/\u{7f}\u{2028}\u{fffd}\u{1f600}",
            }),
            serde_json::json!([
                0,
                -1,
                9007199254740992u64,
                -9007199254740992i64,
                9007199254740993u64,
                -9007199254740993i64,
                u64::MAX,
                i64::MIN,
                1.5,
                -0.0,
                1e21,
                1e20,
                5e-7,
                0.1,
                123456789.125,
                f64::MAX,
                f64::MIN_POSITIVE
            ]),
            serde_json::json!("plain"),
            serde_json::json!({}),
            serde_json::json!([]),
        ];
        for value in &values {
            let ours = write_value(value).unwrap();
            let theirs = serde_json_canonicalizer::to_vec(value).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{value}"
            );
        }
        let map = values[0].as_object().unwrap();
        assert_eq!(
            object_to_canonical_vec(map).unwrap(),
            to_canonical_vec(map).unwrap()
        );
        let mut big = Map::new();
        big.insert("n".into(), Value::from(u64::MAX));
        assert!(matches!(
            object_to_canonical_vec(&big),
            Err(CanonicalError::InexactInteger { .. })
        ));
    }

    #[test]
    fn sorts_and_strips_whitespace() {
        let out =
            canonicalize_json(br#" { "b" : [ 1 , 2 ] , "a" : { "d" : null , "c" : true } } "#)
                .unwrap();
        assert_eq!(out, br#"{"a":{"c":true,"d":null},"b":[1,2]}"#);
        assert!(is_canonical(&out));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = canonicalize_json(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate member name"), "{err}");
        assert!(!is_canonical(br#"{"a":1,"a":1}"#));
    }

    #[test]
    fn not_canonical_reports_offset() {
        match check_canonical(br#"{"b":1,"a":2}"#) {
            Err(CanonicalError::NotCanonical { offset }) => assert_eq!(offset, 2),
            other => panic!("unexpected {other:?}"),
        }
        match check_canonical(b"{} ") {
            Err(CanonicalError::NotCanonical { offset }) => assert_eq!(offset, 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn inexact_integers_are_refused_on_write() {
        let exact = MAX_EXACT_INTEGER;
        assert_eq!(to_canonical_vec(&exact).unwrap(), b"9007199254740992");
        assert_eq!(
            to_canonical_vec(&-(exact as i64)).unwrap(),
            b"-9007199254740992"
        );
        for inexact in [exact + 1, u64::MAX, 1 << 60] {
            assert!(
                matches!(
                    to_canonical_vec(&inexact),
                    Err(CanonicalError::InexactInteger { .. })
                ),
                "{inexact}"
            );
        }
        assert!(matches!(
            to_canonical_vec(&(i64::MIN + 1)),
            Err(CanonicalError::InexactInteger { .. })
        ));
        // Beyond 2^53, digits that are the double's own are exact.
        assert_eq!(to_canonical_vec(&(exact + 2)).unwrap(), b"9007199254740994");
        assert_eq!(
            to_canonical_vec(&1_152_921_504_606_847_000u64).unwrap(),
            b"1152921504606847000"
        );
        // Reading canonical digits into an integer gives them back.
        let n: u64 = from_canonical_slice(b"9007199254740994").unwrap();
        assert_eq!(to_canonical_vec(&n).unwrap(), b"9007199254740994");
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(matches!(
            to_canonical_vec(&f64::NAN),
            Err(CanonicalError::Serialize(_))
        ));
        assert!(matches!(
            to_canonical_vec(&f64::INFINITY),
            Err(CanonicalError::Serialize(_))
        ));
    }

    #[test]
    fn lone_surrogates_and_garbage_are_refused() {
        assert!(matches!(
            canonicalize_json(br#""\ud800""#),
            Err(CanonicalError::Parse(_))
        ));
        assert!(matches!(
            canonicalize_json(b"{} {}"),
            Err(CanonicalError::Parse(_))
        ));
        assert!(matches!(
            canonicalize_json(b"\xff"),
            Err(CanonicalError::Parse(_))
        ));
        assert!(matches!(
            canonicalize_json(b""),
            Err(CanonicalError::Parse(_))
        ));
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The module's own writer and the canonicaliser crate write every
        /// JSON value alike (names of any characters, any numbers).
        #[test]
        fn own_writer_is_the_canonicaliser_on_any_value(value in json_value()) {
            let ours = write_value(&value).unwrap();
            let theirs = serde_json_canonicalizer::to_vec(&value).unwrap();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
