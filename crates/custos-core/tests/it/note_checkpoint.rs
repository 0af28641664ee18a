//! C2SP tlog-checkpoints: body format, signing, opening, and every malformed
//! case.

use custos_core::checkpoint::{Checkpoint, CheckpointError};
use custos_core::keys::SigningKey;
use custos_core::merkle::{empty_root, leaf_hash, root, Hash};
use custos_core::note::{Note, NoteError, VerifyError};
use proptest::prelude::*;

const ORIGIN: &str = "custos.example.org/ledger";

fn ledger_key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap()
}

fn some_root() -> Hash {
    root(&[leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
}

#[test]
fn body_layout() {
    let cp = Checkpoint::new(ORIGIN, 3, some_root()).unwrap();
    assert_eq!(cp.to_body(), format!("{ORIGIN}\n3\n{}\n", some_root()));
    let empty = Checkpoint::new(ORIGIN, 0, empty_root()).unwrap();
    assert_eq!(
        empty.to_body(),
        format!("{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
    );
    let ext = cp.clone().with_extensions(["ext one", "ext two"]).unwrap();
    assert_eq!(ext.to_body(), format!("{}ext one\next two\n", cp.to_body()));
    assert_eq!(Checkpoint::parse(&ext.to_body()).unwrap(), ext);
    assert_eq!(ext.extensions(), ["ext one", "ext two"]);
}

#[test]
fn parses_the_spec_example_body() {
    let body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let cp = Checkpoint::parse(body).unwrap();
    assert_eq!(cp.origin(), "example.com/behind-the-sofa");
    assert_eq!(cp.size(), 20_852_163);
    assert_eq!(
        cp.root().to_string(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert!(cp.extensions().is_empty());
    assert_eq!(cp.to_body(), body);
}

#[test]
fn sign_and_open() {
    let key = ledger_key();
    let cp = Checkpoint::new(ORIGIN, 3, some_root()).unwrap();
    let signed = cp.sign(&key);
    assert!(signed.starts_with(&cp.to_body()));
    assert!(signed.contains(&format!("\n\n\u{2014} {ORIGIN} ")));
    let vk = key.verifier_key();
    assert_eq!(Checkpoint::open(&signed, &vk, Some(ORIGIN)).unwrap(), cp);
    assert_eq!(Checkpoint::open(signed.as_bytes(), &vk, None).unwrap(), cp);

    // Wrong origin.
    let err = Checkpoint::open(&signed, &vk, Some("other.example/log")).unwrap_err();
    assert_eq!(
        err,
        CheckpointError::OriginMismatch {
            expected: "other.example/log".into(),
            found: ORIGIN.into()
        }
    );
    assert!(err.to_string().contains("other.example/log"), "{err}");

    // Another key (say, a dock's key from the same bundle) is not the ledger.
    let dock = SigningKey::from_seed("dock-01", &[1; 32]).unwrap();
    let by_dock = cp.sign(&dock);
    assert!(matches!(
        Checkpoint::open(&by_dock, &vk, Some(ORIGIN)),
        Err(CheckpointError::Signature(
            VerifyError::NoTrustedSignature { .. }
        ))
    ));

    // A tampered size or root breaks the signature.
    let tampered = signed.replacen("\n3\n", "\n4\n", 1);
    assert!(matches!(
        Checkpoint::open(&tampered, &vk, Some(ORIGIN)),
        Err(CheckpointError::Signature(VerifyError::BadSignature { .. }))
    ));

    // Witness cosignatures by other keys are ignored.
    let mut note = custos_core::note::SignedNote::parse(signed.as_bytes()).unwrap();
    note.add_signature(&dock).unwrap();
    assert_eq!(
        Checkpoint::open(note.to_bytes(), &vk, Some(ORIGIN)).unwrap(),
        cp
    );

    // Not a signed note at all.
    assert!(matches!(
        Checkpoint::open(cp.to_body(), &vk, None),
        Err(CheckpointError::Note(NoteError::MissingBlankLine))
    ));
}

#[test]
fn malformed_bodies_are_rejected_with_the_reason() {
    let r = some_root().to_string();
    let cases: Vec<(String, CheckpointError)> = vec![
        (format!("{ORIGIN}\n3\n{r}"), CheckpointError::NotTerminated),
        (
            format!("{ORIGIN}\n"),
            CheckpointError::MissingLine("tree size"),
        ),
        (
            format!("{ORIGIN}\n3\n"),
            CheckpointError::MissingLine("root hash"),
        ),
        (format!("\n3\n{r}\n"), CheckpointError::EmptyOrigin),
        (
            format!("{ORIGIN}\n03\n{r}\n"),
            CheckpointError::BadSize("03".into()),
        ),
        (
            format!("{ORIGIN}\n+3\n{r}\n"),
            CheckpointError::BadSize("+3".into()),
        ),
        (
            format!("{ORIGIN}\n\n{r}\n"),
            CheckpointError::BadSize(String::new()),
        ),
        (
            format!("{ORIGIN}\n99999999999999999999\n{r}\n"),
            CheckpointError::BadSize("99999999999999999999".into()),
        ),
        (
            format!("{ORIGIN}\n3\nAAAA\n"),
            CheckpointError::BadRoot("AAAA".into()),
        ),
        (
            format!("{ORIGIN}\n3\n{}\n", some_root().to_hex()),
            CheckpointError::BadRoot(some_root().to_hex()),
        ),
        (
            format!("{ORIGIN}\n3\n{}\n", r.trim_end_matches('=')),
            CheckpointError::BadRoot(r.trim_end_matches('=').into()),
        ),
        (
            format!("{ORIGIN}\n3\n{r}\next\n\n"),
            CheckpointError::EmptyExtension { line: 5 },
        ),
        (
            format!("{ORIGIN}\n3\n{r}\n\n"),
            CheckpointError::EmptyExtension { line: 4 },
        ),
        (
            format!("cus\rtos\n3\n{r}\n"),
            CheckpointError::ControlCharacter { field: "origin" },
        ),
        (
            format!("{ORIGIN}\n3\n{r}\nex\tt\n"),
            CheckpointError::ControlCharacter {
                field: "extension line",
            },
        ),
    ];
    for (body, want) in cases {
        let got = Checkpoint::parse(&body).expect_err(&body);
        assert_eq!(got, want, "{body:?}");
        assert!(!got.to_string().is_empty());
    }

    // A correctly signed note whose text is not a checkpoint.
    let key = ledger_key();
    let signed = Note::sign("not a checkpoint\n", &[&key])
        .unwrap()
        .to_string();
    assert_eq!(
        Checkpoint::open(&signed, &key.verifier_key(), None),
        Err(CheckpointError::MissingLine("tree size"))
    );
}

#[test]
fn construction_rejects_what_parse_would() {
    assert_eq!(
        Checkpoint::new("", 1, some_root()),
        Err(CheckpointError::EmptyOrigin)
    );
    assert_eq!(
        Checkpoint::new("a\nb", 1, some_root()),
        Err(CheckpointError::ControlCharacter { field: "origin" })
    );
    let cp = Checkpoint::new(ORIGIN, 1, some_root()).unwrap();
    assert_eq!(
        cp.clone().with_extensions([""]),
        Err(CheckpointError::EmptyExtension { line: 4 })
    );
    assert!(cp.with_extensions(["a\nb"]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip(
        origin in "[^\\x00-\\x1f\\x7f]{1,40}",
        size in any::<u64>(),
        root_bytes in any::<[u8; 32]>(),
        extensions in proptest::collection::vec("[^\\x00-\\x1f\\x7f]{1,20}", 0..3),
        seed in any::<[u8; 32]>(),
    ) {
        let cp = Checkpoint::new(&origin, size, Hash::from_bytes(root_bytes))
            .unwrap()
            .with_extensions(extensions)
            .unwrap();
        prop_assert_eq!(&Checkpoint::parse(&cp.to_body()).unwrap(), &cp);
        let key = SigningKey::from_seed("log", &seed).unwrap();
        let signed = cp.sign(&key);
        prop_assert_eq!(&Checkpoint::open(&signed, &key.verifier_key(), Some(&origin)).unwrap(), &cp);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = Checkpoint::parse(&text);
    }
}
