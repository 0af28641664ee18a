//! C2SP signed notes: the published example of Go's golang.org/x/mod/sumdb/note
//! as a known answer, round trips, verification rules and every malformed case.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custos_core::keys::{SigningKey, VerifierKey};
use custos_core::note::{Note, NoteError, SignedNote, VerifyError, MAX_SIGNATURES};
use proptest::prelude::*;

// The example keys, text and signatures published with the Go note package.
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// The Go signer key: "PRIVATE+KEY+<name>+<hash>+" then base64(0x01 || seed).
const PETER_SKEY_DATA: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> VerifierKey {
    PETER_VKEY.parse().unwrap()
}

fn enoch() -> VerifierKey {
    ENOCH_VKEY.parse().unwrap()
}

fn peter_signer() -> SigningKey {
    let data = B64.decode(PETER_SKEY_DATA).unwrap();
    assert_eq!(data[0], 0x01, "Ed25519");
    SigningKey::from_seed("PeterNeumann", data[1..].try_into().unwrap()).unwrap()
}

fn note(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

fn parse_err(bytes: &[u8]) -> NoteError {
    SignedNote::parse(bytes).expect_err("malformed note accepted")
}

#[test]
fn signing_reproduces_the_published_note_byte_for_byte() {
    let key = peter_signer();
    assert_eq!(key.verifier_key().to_string(), PETER_VKEY);
    let signed = Note::sign(TEXT, &[&key]).unwrap();
    assert_eq!(signed.to_string(), format!("{TEXT}\n{PETER_SIG}"));
    assert_eq!(signed.to_bytes(), note(&[TEXT, "\n", PETER_SIG]));
}

#[test]
fn the_published_note_verifies() {
    let signed = SignedNote::parse(&note(&[TEXT, "\n", PETER_SIG])).unwrap();
    assert_eq!(signed.text(), TEXT);
    assert_eq!(signed.signatures().len(), 1);
    assert_eq!(signed.signatures()[0].key_id(), "PeterNeumann+c74f20a3");
    assert_eq!(signed.signatures()[0].signature().len(), 64);
    assert_eq!(signed.verify(&[peter()]).unwrap(), vec!["PeterNeumann"]);
    // Altered text: the signature by the trusted key no longer verifies.
    let altered = note(&[
        &TEXT.replace("cryptography", "cryptographY"),
        "\n",
        PETER_SIG,
    ]);
    let err = SignedNote::parse(&altered)
        .unwrap()
        .verify(&[peter()])
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            key_id: "PeterNeumann+c74f20a3".into()
        }
    );
}

#[test]
fn unknown_keys_are_ignored_known_keys_must_verify() {
    let both = note(&[TEXT, "\n", PETER_SIG, ENOCH_SIG]);
    let signed = SignedNote::parse(&both).unwrap();
    assert_eq!(signed.verify(&[peter()]).unwrap(), vec!["PeterNeumann"]);
    assert_eq!(signed.verify(&[enoch()]).unwrap(), vec!["EnochRoot"]);
    assert_eq!(
        signed.verify(&[enoch(), peter()]).unwrap(),
        vec!["PeterNeumann", "EnochRoot"]
    );
    // No trusted key at all.
    let err = signed.verify(&[]).unwrap_err();
    assert_eq!(
        err,
        VerifyError::NoTrustedSignature {
            signers: vec!["PeterNeumann+c74f20a3".into(), "EnochRoot+af0cfe78".into()]
        }
    );
    assert!(err.to_string().contains("PeterNeumann+c74f20a3"), "{err}");

    // A key with the same name but another hash is a different key: ignored.
    let imposter = SigningKey::from_seed("PeterNeumann", &[5; 32]).unwrap();
    assert_ne!(imposter.verifier_key().key_hash(), peter().key_hash());
    assert!(matches!(
        signed.verify(&[imposter.verifier_key()]),
        Err(VerifyError::NoTrustedSignature { .. })
    ));

    // A corrupted signature by an untrusted key is ignored; by a trusted key,
    // it rejects the note even when another trusted signature verifies.
    let bad_enoch = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    let signed = SignedNote::parse(&note(&[TEXT, "\n", PETER_SIG, &bad_enoch])).unwrap();
    assert_eq!(signed.verify(&[peter()]).unwrap(), vec!["PeterNeumann"]);
    assert!(matches!(
        signed.verify(&[peter(), enoch()]),
        Err(VerifyError::BadSignature { key_id }) if key_id == "EnochRoot+af0cfe78"
    ));
    let bad_peter = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let signed = SignedNote::parse(&note(&[TEXT, "\n", &bad_peter])).unwrap();
    assert!(matches!(
        signed.verify(&[peter()]),
        Err(VerifyError::BadSignature { .. })
    ));

    // Repeated signatures are fine and reported once.
    let twice = SignedNote::parse(&note(&[TEXT, "\n", PETER_SIG, PETER_SIG])).unwrap();
    assert_eq!(
        twice.verify(&[peter(), peter()]).unwrap(),
        vec!["PeterNeumann"]
    );
}

#[test]
fn malformed_notes_are_rejected_with_the_reason() {
    let sig_no_nl = PETER_SIG.trim_end_matches('\n');
    let cases: Vec<(Vec<u8>, NoteError)> = vec![
        (note(&[TEXT]), NoteError::MissingBlankLine),
        (note(&[TEXT, "\n"]), NoteError::NoSignatures),
        (
            note(&[TEXT, "\n", sig_no_nl]),
            NoteError::SignatureNotTerminated,
        ),
        (
            note(&["\x01", TEXT, "\n", PETER_SIG]),
            NoteError::ControlCharacter { line: 1, code: 1 },
        ),
        (
            note(&[TEXT, "\r\n", PETER_SIG]),
            NoteError::ControlCharacter { line: 3, code: 13 },
        ),
        (
            [
                b"\xff".as_slice(),
                TEXT.as_bytes(),
                b"\n",
                PETER_SIG.as_bytes(),
            ]
            .concat(),
            NoteError::NotUtf8 { offset: 0 },
        ),
        (note(&["\n", PETER_SIG]), NoteError::MissingBlankLine),
        (note(&[]), NoteError::MissingBlankLine),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            parse_err(&bytes),
            want,
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }

    let bad_lines = [
        // (signature line, what the message must say)
        ("\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "more than one"),
        ("Unexpected line.\n", "em dash"),
        ("- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "em dash"),
        ("\u{2014}PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "em dash"),
        ("\u{2014} PeterNeumann\n", "no space"),
        ("\u{2014}  x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "empty"),
        ("\u{2014} Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "'+'"),
        ("\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n", "base64"),
        ("\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnA!=\n", "base64"),
        ("\u{2014} PeterNeumann x08g\n", "3 bytes"),
        ("\u{2014} PeterNeumann x08goA==\n", "only a 4-byte key ID"),
    ];
    for (line, reason) in bad_lines {
        let err = parse_err(&note(&[TEXT, "\n", line]));
        let NoteError::BadSignatureLine { line: n, .. } = &err else {
            panic!("{line:?}: {err:?}");
        };
        assert_eq!(*n, 4, "{line:?}: line number");
        let msg = err.to_string();
        assert!(
            msg.contains("line 4") && msg.contains(reason),
            "{line:?}: {msg}"
        );
    }
    // A bad line after a good one is reported at its own line.
    let err = parse_err(&note(&[TEXT, "\n", PETER_SIG, "Unexpected line.\n"]));
    assert!(
        matches!(err, NoteError::BadSignatureLine { line: 5, .. }),
        "{err:?}"
    );

    // Too many signatures.
    let many = PETER_SIG.repeat(MAX_SIGNATURES + 1);
    assert_eq!(
        parse_err(&note(&[TEXT, "\n", &many])),
        NoteError::TooManySignatures {
            count: MAX_SIGNATURES + 1,
            max: MAX_SIGNATURES
        }
    );
    let enough = PETER_SIG.repeat(MAX_SIGNATURES);
    assert!(SignedNote::parse(&note(&[TEXT, "\n", &enough])).is_ok());
}

#[test]
fn texts_that_cannot_be_signed() {
    let key = peter_signer();
    assert_eq!(Note::sign("", &[&key]), Err(NoteError::EmptyText));
    assert_eq!(
        Note::sign("abc", &[&key]),
        Err(NoteError::TextNotTerminated)
    );
    assert_eq!(
        Note::sign("a\tb\n", &[&key]),
        Err(NoteError::ControlCharacter { line: 1, code: 9 })
    );
    assert_eq!(Note::sign(TEXT, &[]), Err(NoteError::NoSignatures));
}

#[test]
fn cosigning_replaces_a_keys_earlier_signature() {
    let a = SigningKey::from_seed("log.example/a", &[1; 32]).unwrap();
    let b = SigningKey::from_seed("witness.example/b", &[2; 32]).unwrap();
    let mut signed = Note::sign("hello\n", &[&a]).unwrap();
    signed.add_signature(&b).unwrap();
    signed.add_signature(&a).unwrap();
    assert_eq!(signed.signatures().len(), 2);
    let back = SignedNote::parse(&signed.to_bytes()).unwrap();
    assert_eq!(back, signed);
    assert_eq!(
        back.verify(&[b.verifier_key(), a.verifier_key()]).unwrap(),
        vec!["log.example/a", "witness.example/b"]
    );
}

#[test]
fn texts_with_blank_lines_split_at_the_last_one() {
    let key = SigningKey::from_seed("k", &[3; 32]).unwrap();
    for text in [
        "a\n\nb\n",
        "a\n\n",
        "\n",
        "\n\n\n",
        "— looks like a signature\n\n",
    ] {
        let signed = Note::sign(text, &[&key]).unwrap();
        let back = SignedNote::parse(&signed.to_bytes()).unwrap();
        assert_eq!(back.text(), text);
        assert_eq!(back.verify(&[key.verifier_key()]).unwrap(), vec!["k"]);
    }
}

fn text_strategy() -> impl Strategy<Value = String> {
    // Lines of printable text (any Unicode but controls), possibly empty.
    proptest::collection::vec("[^\\x00-\\x1f]{0,20}", 1..6)
        .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_parse_verify_round_trip(text in text_strategy(), seed in any::<[u8; 32]>(), flip in any::<usize>()) {
        let key = SigningKey::from_seed("custos.example/ledger", &seed).unwrap();
        let signed = Note::sign(&text, &[&key]).unwrap();
        let bytes = signed.to_bytes();
        let back = SignedNote::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert_eq!(back.text(), text.as_str());
        prop_assert_eq!(back.verify(&[key.verifier_key()]).unwrap(), vec!["custos.example/ledger".to_owned()]);
        // Changing any byte of the text either breaks the format or the signature.
        let text_len = text.len();
        let mut bad = bytes.clone();
        let at = flip % text_len;
        bad[at] ^= 0x01;
        if let Ok(n) = SignedNote::parse(&bad) {
            prop_assert!(n.verify(&[key.verifier_key()]).is_err());
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = SignedNote::parse(&bytes);
    }
}
