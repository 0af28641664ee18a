//! RFC 8785 canonical JSON, held to the RFC's own examples: the §3.2.2
//! sample (numbers, literals, string escapes) and its UTF-8 bytes from
//! §3.2.4, the §3.2.3 sorting example, and the Appendix B number table.

use std::collections::BTreeMap;

use custos_core::canonical::{
    canonicalize_json, check_canonical, from_canonical_slice, is_canonical, to_canonical_vec,
    CanonicalError,
};
use proptest::prelude::*;
use serde_json::Value;

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

/// RFC 8785 §3.2.2: the input sample, whitespace and all.
const RFC_SAMPLE_INPUT: &str = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;

#[test]
fn rfc8785_sample_gives_the_published_bytes() {
    // RFC 8785 §3.2.4: the canonical sample in UTF-8, byte for byte.
    let expected = unhex(
        "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
         75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
         5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
         65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
         5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
         30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d",
    );
    let out = canonicalize_json(RFC_SAMPLE_INPUT.as_bytes()).unwrap();
    assert_eq!(out, expected, "{}", String::from_utf8_lossy(&out));
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
    assert!(is_canonical(&out));
    assert!(!is_canonical(RFC_SAMPLE_INPUT.as_bytes()));
}

#[test]
fn rfc8785_sorting_example_orders_by_utf16_code_units() {
    // RFC 8785 §3.2.3.
    let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
    let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                    \"\u{1f600}\":\"Emoji: Grinning Face\",\
                    \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(
        String::from_utf8(canonicalize_json(input.as_bytes()).unwrap()).unwrap(),
        expected
    );

    // The same keys from a Rust map: BTreeMap iterates in code point order
    // (U+FB33 before U+1F600); the canonical writer must re-sort by UTF-16
    // code units, where the surrogate 0xD83D comes before 0xFB33.
    let map: BTreeMap<String, &str> = [
        ("\u{20ac}", "Euro Sign"),
        ("\r", "Carriage Return"),
        ("\u{fb33}", "Hebrew Letter Dalet With Dagesh"),
        ("1", "One"),
        ("\u{1f600}", "Emoji: Grinning Face"),
        ("\u{80}", "Control"),
        ("\u{f6}", "Latin Small Letter O With Diaeresis"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        String::from_utf8(to_canonical_vec(&map).unwrap()).unwrap(),
        expected
    );
}

#[test]
fn rfc8785_appendix_b_numbers() {
    // (IEEE 754 bits, ECMAScript serialisation) from RFC 8785 Appendix B.
    let table: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, expected) in table {
        let value = f64::from_bits(bits);
        let out = to_canonical_vec(&value).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            expected,
            "bits {bits:016x}"
        );
        // Parsing the canonical text gives the same double and the same text.
        assert_eq!(canonicalize_json(&out).unwrap(), out, "bits {bits:016x}");
        let back: f64 = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            back.to_bits(),
            if bits == 0x8000000000000000 { 0 } else { bits }
        );
    }
    // Appendix B's NaN and Infinity rows: not expressible, an error.
    for bits in [0x7fffffffffffffffu64, 0x7ff0000000000000] {
        assert!(matches!(
            to_canonical_vec(&f64::from_bits(bits)),
            Err(CanonicalError::Serialize(_))
        ));
    }
}

#[test]
fn string_escapes_follow_json_stringify() {
    let s: String = (0u8..0x20).map(char::from).collect::<String>() + "\"\\/\u{7f}\u{2028}é";
    let out = String::from_utf8(to_canonical_vec(&s).unwrap()).unwrap();
    assert_eq!(
        out,
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
         \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
         \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\/\u{7f}\u{2028}é\""
    );
    // Escapes that JSON allows but JCS does not write are not canonical.
    for other_spelling in [r#""\u00e9""#, r#""\/""#, r#""\u000A""#, r#""\u0041""#] {
        assert!(!is_canonical(other_spelling.as_bytes()), "{other_spelling}");
    }
}

#[test]
fn other_spellings_of_numbers_are_not_canonical() {
    for (given, canonical) in [
        ("1.0", "1"),
        ("-0", "0"),
        ("1e2", "100"),
        ("1E+30", "1e+30"),
        ("0.10", "0.1"),
        ("9007199254740993", "9007199254740992"),
    ] {
        assert_eq!(
            canonicalize_json(given.as_bytes()).unwrap(),
            canonical.as_bytes()
        );
        assert!(!is_canonical(given.as_bytes()), "{given}");
        assert!(matches!(
            check_canonical(given.as_bytes()),
            Err(CanonicalError::NotCanonical { .. })
        ));
    }
}

#[test]
fn typed_parse_requires_canonical_bytes() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct T {
        a: u32,
        b: String,
    }
    assert_eq!(
        from_canonical_slice::<T>(br#"{"a":1,"b":"x"}"#).unwrap(),
        T {
            a: 1,
            b: "x".into()
        }
    );
    assert!(matches!(
        from_canonical_slice::<T>(br#"{"b":"x","a":1}"#),
        Err(CanonicalError::NotCanonical { offset: 2 })
    ));
    assert!(matches!(
        from_canonical_slice::<T>(br#"{"a":"1","b":"x"}"#),
        Err(CanonicalError::Schema(_))
    ));
    assert!(matches!(
        from_canonical_slice::<T>(br#"{"a":1,"a":1,"b":"x"}"#),
        Err(CanonicalError::Parse(_))
    ));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_form_is_a_fixed_point(value in arb_json()) {
        let bytes = to_canonical_vec(&value).unwrap();
        prop_assert!(is_canonical(&bytes));
        prop_assert_eq!(canonicalize_json(&bytes).unwrap(), bytes.clone());
        // Pretty-printing changes the bytes, not the canonical form.
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        prop_assert_eq!(canonicalize_json(&pretty).unwrap(), bytes.clone());
        // And the value survives (doubles compare as doubles).
        let back: Value = from_canonical_slice(&bytes).unwrap();
        prop_assert_eq!(to_canonical_vec(&back).unwrap(), bytes);
    }

    #[test]
    fn canonicalize_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(out) = canonicalize_json(&bytes) {
            prop_assert!(is_canonical(&out));
        }
    }
}
