//! DSSE envelopes: the protocol's PAE known answer, the secure-systems-lab
//! test vectors (Ed25519 keys of RFC 8032 §7.1 tests 1 and 2), strict
//! parsing, multi-signature rules and tampering.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use custos_core::dsse::{
    pae, DsseError, Envelope, Signature, EVENT_PAYLOAD_TYPE, MANIFEST_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES, MAX_SIGNATURES,
};
use custos_core::keys::{SigningKey, VerifierKey};
use proptest::prelude::*;

/// RFC 8032 §7.1 TEST 1 secret key, called "A" in the DSSE vectors.
const SEED_A: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// RFC 8032 §7.1 TEST 2 secret key, "B".
const SEED_B: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

const IN_TOTO: &str = "application/vnd.in-toto+json";
const STATEMENT_B64: &str = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==";
/// The "single-signature" vector's signature by A.
const STATEMENT_SIG_A: &str =
    "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==";

fn seed_key(name: &str, hex_seed: &str) -> SigningKey {
    let seed: [u8; 32] = hex::decode(hex_seed).unwrap().try_into().unwrap();
    SigningKey::from_seed(name, &seed).unwrap()
}

fn key(name: &str, byte: u8) -> SigningKey {
    SigningKey::from_seed(name, &[byte; 32]).unwrap()
}

fn envelope_json(payload: &str, payload_type: &str, sigs: &[(&str, &str)]) -> Vec<u8> {
    let sigs: Vec<serde_json::Value> = sigs
        .iter()
        .map(|(keyid, sig)| serde_json::json!({"keyid": keyid, "sig": sig}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "payload": payload, "payloadType": payload_type, "signatures": sigs,
    }))
    .unwrap()
}

#[test]
fn pae_known_answers() {
    // The protocol document's example.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    // LEN is the byte length of the UTF-8 type, not its character count.
    assert_eq!(
        pae("application/vnd.exämple+json", b"x"),
        "DSSEv1 29 application/vnd.exämple+json 1 x".as_bytes()
    );
    // An empty body still ends with the separator.
    assert_eq!(
        pae(IN_TOTO, b""),
        b"DSSEv1 28 application/vnd.in-toto+json 0 "
    );
    let statement = STANDARD.decode(STATEMENT_B64).unwrap();
    assert_eq!(
        hex::encode(pae(IN_TOTO, &statement)),
        "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e20\
         3433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d65\
         6e742f7631227d"
    );
}

#[test]
fn ed25519_signature_matches_published_vector() {
    let a = seed_key("A", SEED_A);
    assert_eq!(
        hex::encode(a.verifier_key().public_key()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let statement = STANDARD.decode(STATEMENT_B64).unwrap();
    let env = Envelope::sign(IN_TOTO, statement, &[&a]).unwrap();
    assert_eq!(STANDARD.encode(&env.signatures[0].sig), STATEMENT_SIG_A);
    assert_eq!(env.signatures[0].keyid, a.verifier_key().key_id());
}

#[test]
fn published_vector_verifies_by_keyid_and_without_one() {
    let a = seed_key("A", SEED_A).verifier_key();
    let trusted = [a.clone()];

    // The vector's keyid "A" is not a Custos key id (`A+<hash>`): the
    // signature is from an unknown key as far as the keyid says, and ignored.
    let env = Envelope::parse(&envelope_json(
        STATEMENT_B64,
        IN_TOTO,
        &[("A", STATEMENT_SIG_A)],
    ))
    .unwrap();
    assert!(matches!(
        env.verify(&trusted),
        Err(DsseError::NoTrustedSignature { keyids }) if keyids == ["A"]
    ));

    // With A's key id it verifies.
    let env = Envelope::parse(&envelope_json(
        STATEMENT_B64,
        IN_TOTO,
        &[(&a.key_id(), STATEMENT_SIG_A)],
    ))
    .unwrap();
    assert_eq!(env.verify_for(IN_TOTO, &trusted).unwrap(), vec![a.key_id()]);

    // Without a keyid every trusted key is tried.
    let no_keyid = format!(
        r#"{{"payload":"{STATEMENT_B64}","payloadType":"{IN_TOTO}","signatures":[{{"sig":"{STATEMENT_SIG_A}"}}]}}"#
    );
    let env = Envelope::parse(no_keyid.as_bytes()).unwrap();
    let b = seed_key("B", SEED_B).verifier_key();
    assert_eq!(
        env.verify(&[b.clone(), a.clone()]).unwrap(),
        vec![a.key_id()]
    );
    assert!(matches!(
        env.verify(&[b]),
        Err(DsseError::NoTrustedSignature { .. })
    ));
    // Written back, the absent keyid stays absent.
    assert_eq!(env.to_json(), no_keyid.as_bytes());
}

#[test]
fn url_safe_base64_is_accepted_and_written_back_standard() {
    // The "url-safe-base64" vector: payload bytes fb ff bf 3e 3f.
    let a = seed_key("A", SEED_A).verifier_key();
    let sig =
        "P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==";
    let env = Envelope::parse(&envelope_json("-_-_Pj8=", IN_TOTO, &[(&a.key_id(), sig)])).unwrap();
    assert_eq!(env.payload, [0xfb, 0xff, 0xbf, 0x3e, 0x3f]);
    assert_eq!(env.verify(&[a]).unwrap().len(), 1);
    let json = String::from_utf8(env.to_json()).unwrap();
    assert!(json.contains(r#""payload":"+/+/Pj8=""#), "{json}");
    // Unpadded URL-safe is accepted too.
    let unpadded = envelope_json("-_-_Pj8", IN_TOTO, &[("k", sig.trim_end_matches('='))]);
    assert_eq!(Envelope::parse(&unpadded).unwrap().payload, env.payload);
}

#[test]
fn swapped_payload_type_fails_verification() {
    // The "payload-type-swapped" vector: A's signature covers the in-toto
    // type, the envelope claims another.
    let a = seed_key("A", SEED_A).verifier_key();
    let env = Envelope::parse(&envelope_json(
        STATEMENT_B64,
        "application/vnd.example.other+json",
        &[(&a.key_id(), STATEMENT_SIG_A)],
    ))
    .unwrap();
    assert!(matches!(
        env.verify(&[a]),
        Err(DsseError::BadSignature { .. })
    ));
}

#[test]
fn payload_type_must_match() {
    let k = key("dock-1", 1);
    let env = Envelope::sign(EVENT_PAYLOAD_TYPE, b"{}".to_vec(), &[&k]).unwrap();
    let trusted = [k.verifier_key()];
    env.verify_payload_type(EVENT_PAYLOAD_TYPE).unwrap();
    match env.verify_for(MANIFEST_PAYLOAD_TYPE, &trusted) {
        Err(DsseError::WrongPayloadType { expected, found }) => {
            assert_eq!(expected, MANIFEST_PAYLOAD_TYPE);
            assert_eq!(found, EVENT_PAYLOAD_TYPE);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn multiple_signers() {
    let (k1, k2, k3) = (key("dock-1", 1), key("dock-2", 2), key("dock-3", 3));
    let env = Envelope::sign(EVENT_PAYLOAD_TYPE, b"x".to_vec(), &[&k1, &k2]).unwrap();
    let (v1, v2, v3) = (k1.verifier_key(), k2.verifier_key(), k3.verifier_key());
    assert_eq!(
        env.verify(&[v2.clone(), v1.clone()]).unwrap(),
        vec![v1.key_id(), v2.key_id()]
    );
    assert_eq!(
        env.verify(std::slice::from_ref(&v2)).unwrap(),
        vec![v2.key_id()]
    );
    assert!(matches!(
        env.verify(&[v3]),
        Err(DsseError::NoTrustedSignature { .. })
    ));
    assert!(matches!(
        env.verify(&[]),
        Err(DsseError::NoTrustedSignature { .. })
    ));

    // Signing again with the same key replaces, never duplicates.
    let mut again = env.clone();
    again.add_signature(&k1).unwrap();
    assert_eq!(again, env);

    // The same signature twice counts once.
    let mut doubled = env.clone();
    doubled.signatures.push(env.signatures[0].clone());
    assert_eq!(
        doubled.verify(std::slice::from_ref(&v1)).unwrap(),
        vec![v1.key_id()]
    );

    // A signature by k2 filed under k1's key id is an error, even though
    // k2's own signature is valid: a trusted keyid must verify.
    let mut spoofed = env.clone();
    spoofed.signatures[0].sig = env.signatures[1].sig.clone();
    assert!(matches!(
        spoofed.verify(&[v1.clone(), v2]),
        Err(DsseError::BadSignature { keyid, .. }) if keyid == v1.key_id()
    ));

    // An unknown keyid with garbage is ignored when a trusted one verifies.
    let mut extra = env.clone();
    extra.signatures.push(Signature {
        keyid: "stranger+00000000".into(),
        sig: vec![0; 64],
    });
    assert_eq!(
        extra.verify(std::slice::from_ref(&v1)).unwrap(),
        vec![v1.key_id()]
    );
}

#[test]
fn tampering_is_detected() {
    let k = key("dock-1", 1);
    let trusted = [k.verifier_key()];
    let env = Envelope::sign(MANIFEST_PAYLOAD_TYPE, br#"{"size":1}"#.to_vec(), &[&k]).unwrap();
    env.verify(&trusted).unwrap();
    for i in 0..env.payload.len() {
        let mut t = env.clone();
        t.payload[i] ^= 0x01;
        assert!(
            matches!(t.verify(&trusted), Err(DsseError::BadSignature { .. })),
            "byte {i}"
        );
    }
    let mut t = env.clone();
    t.payload.push(b' ');
    assert!(t.verify(&trusted).is_err());
    let mut t = env.clone();
    t.payload_type.push('x');
    assert!(t.verify(&trusted).is_err());
    for i in [0, 31, 32, 63] {
        let mut t = env.clone();
        t.signatures[0].sig[i] ^= 0x80;
        assert!(t.verify(&trusted).is_err(), "sig byte {i}");
    }
    let mut t = env.clone();
    t.signatures[0].sig.truncate(63);
    assert!(matches!(
        t.verify(&trusted),
        Err(DsseError::BadSignature { .. })
    ));
    let mut t = env;
    t.signatures.clear();
    assert!(matches!(t.verify(&trusted), Err(DsseError::NoSignatures)));
}

#[test]
fn strict_parsing() {
    let ok = |s: &str| Envelope::parse(s.as_bytes());
    let sig = STANDARD.encode([7u8; 64]);
    let good = format!(
        r#"{{"payload":"e30=","payloadType":"t","signatures":[{{"keyid":"k","sig":"{sig}"}}]}}"#
    );
    ok(&good).unwrap();

    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(r#""payload":"e30=","#, r#""payload":"e30=","extra":1,"#),
            "unknown field",
        ),
        (
            good.replace(r#""keyid":"k","#, r#""keyid":"k","x":"y","#),
            "unknown signature field",
        ),
        (
            good.replace(r#""payloadType":"t","#, ""),
            "missing payloadType",
        ),
        (
            good.replace(r#""payloadType":"t""#, r#""payloadType":"""#),
            "empty payloadType",
        ),
        (
            good.replace(
                r#""payloadType":"t""#,
                r#""payloadType":"t","payloadType":"t""#,
            ),
            "duplicate field",
        ),
        (
            good.replace(&format!(r#"[{{"keyid":"k","sig":"{sig}"}}]"#), "[]"),
            "no signatures",
        ),
        (good.replace("e30=", "e30"), "ok-unpadded"),
        (good.replace("e30=", "e3!="), "bad base64"),
        (good.replace("e30=", "e3-+"), "mixed alphabets"),
        (good.replace("e30=", "e31="), "non-zero trailing bits"),
        (good.replace("e30=", " e30="), "whitespace in base64"),
        (good.replace(&sig, ""), "empty sig"),
        (
            good.replace(&sig, &STANDARD.encode([7u8; 513])),
            "oversized sig",
        ),
        (
            good.replace(
                r#""keyid":"k""#,
                &format!(r#""keyid":"{}""#, "k".repeat(257)),
            ),
            "long keyid",
        ),
        (
            good.replace(r#""signatures":["#, r#""signatures":{"#)
                .replace("}]}", "}}}"),
            "signatures not a list",
        ),
        (
            good.replace(r#""payload":"e30=""#, r#""payload":null"#),
            "null payload",
        ),
        ("[]".to_owned(), "not an object"),
        (format!("{good} x"), "trailing garbage"),
    ];
    for (json, what) in cases {
        let result = ok(&json);
        if what.starts_with("ok") {
            assert!(result.is_ok(), "{what}: {result:?}");
        } else {
            assert!(result.is_err(), "{what} accepted: {json}");
        }
    }

    let many: Vec<String> = (0..=MAX_SIGNATURES)
        .map(|i| format!(r#"{{"keyid":"k{i}","sig":"{sig}"}}"#))
        .collect();
    let too_many = format!(
        r#"{{"payload":"","payloadType":"t","signatures":[{}]}}"#,
        many.join(",")
    );
    assert!(matches!(
        ok(&too_many),
        Err(DsseError::TooManySignatures { count, .. }) if count == MAX_SIGNATURES + 1
    ));

    let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
    assert!(matches!(
        Envelope::parse(&huge),
        Err(DsseError::TooLarge { .. })
    ));

    // Absent payload is the empty payload (envelope spec: empty fields may be omitted).
    let no_payload = format!(r#"{{"payloadType":"t","signatures":[{{"sig":"{sig}"}}]}}"#);
    assert!(ok(&no_payload).unwrap().payload.is_empty());
}

#[test]
fn errors_name_the_field() {
    let json = envelope_json("e30=", "t", &[("k", "AAAA"), ("k2", "not base64!")]);
    let err = Envelope::parse(&json).unwrap_err();
    assert!(err.to_string().contains("signatures[1].sig"), "{err}");
}

#[test]
fn envelope_inside_another_document_is_checked_too() {
    #[derive(serde::Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        envelope: Envelope,
    }
    let bad = r#"{"envelope":{"payload":"","payloadType":"t","signatures":[]}}"#;
    assert!(serde_json::from_str::<Outer>(bad).is_err());
}

fn arb_key() -> impl Strategy<Value = SigningKey> {
    (any::<[u8; 32]>(), "[a-z][a-z0-9.-]{0,15}")
        .prop_map(|(seed, name)| SigningKey::from_seed(&name, &seed).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_serialise_parse_verify(
        payload in prop::collection::vec(any::<u8>(), 0..512),
        payload_type in "[ -~]{1,64}",
        k in arb_key(),
        flip in any::<prop::sample::Index>(),
    ) {
        let env = Envelope::sign(&payload_type, payload.clone(), &[&k]).unwrap();
        let json = env.to_json();
        let back = Envelope::parse(&json).unwrap();
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(back.to_json(), json);
        let vk: VerifierKey = k.verifier_key();
        prop_assert_eq!(back.verify_for(&payload_type, std::slice::from_ref(&vk)).unwrap(), vec![vk.key_id()]);
        if !payload.is_empty() {
            let mut t = back.clone();
            let i = flip.index(payload.len());
            t.payload[i] ^= 1;
            prop_assert!(t.verify(&[vk]).is_err());
        }
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&bytes);
    }
}
