//! The signed segment manifest: its exact JSON (the field names of
//! DESIGN.md), round trips, signing and opening, tampering, strictness, and
//! property tests over arbitrary names and values.

use custos_core::digest::{Digest, Digests, MultiHasher};
use custos_core::dsse::{DsseError, Envelope, EVENT_PAYLOAD_TYPE, MANIFEST_PAYLOAD_TYPE};
use custos_core::keys::SigningKey;
use custos_core::manifest::{
    is_late, Dock, Manifest, ManifestError, Media, ObjectRef, OriginalName, Recorded, Recorder,
    SignedManifest, Stream, StreamKind, TimeSource, Timestamp,
};
use proptest::prelude::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn sample() -> Manifest {
    let mut h = MultiHasher::sha256();
    h.update(b"footage");
    Manifest {
        segment_id: "seg-0001".into(),
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
        original_name: OriginalName::from_os_bytes(b"20240501_083000_0001.MP4"),
        size: 7,
        digests: h.finalize(),
        recorded: Recorded {
            start: ts("2024-05-01T08:30:00Z"),
            end: ts("2024-05-01T08:45:00.5Z"),
            source: TimeSource::Media,
        },
        media: Media {
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            duration_ms: Some(900_500),
            streams: vec![
                Stream {
                    index: 0,
                    kind: StreamKind::Video,
                    codec: "h264".into(),
                    width: Some(1920),
                    height: Some(1080),
                    sample_rate: None,
                    channels: None,
                },
                Stream {
                    index: 1,
                    kind: StreamKind::Audio,
                    codec: "aac".into(),
                    width: None,
                    height: None,
                    sample_rate: Some(48000),
                    channels: Some(1),
                },
            ],
            damaged: None,
        },
        ingested_at: ts("2024-05-01T18:00:00Z"),
        object: ObjectRef {
            url: "s3://evidence".into(),
            key: "RC-17/20240501_083000_0001.MP4".into(),
        },
        late: false,
    }
}

const SAMPLE_JSON: &str = concat!(
    r#"{"digests":{"sha256":"sha256:"#,
    "066d608d0c4d58f529cf925607900e9e0dd8f0da251e43028986149ce242d44b",
    r#""},"dock":{"clock_offset_ms":-1500,"id":"dock-01"},"ingested_at":"2024-05-01T18:00:00Z","late":false,"#,
    r#""media":{"container":"mov,mp4,m4a,3gp,3g2,mj2","damaged":null,"duration_ms":900500,"#,
    r#""streams":[{"codec":"h264","height":1080,"index":0,"kind":"video","width":1920},"#,
    r#"{"channels":1,"codec":"aac","index":1,"kind":"audio","sample_rate":48000}]},"#,
    r#""object":{"key":"RC-17/20240501_083000_0001.MP4","url":"s3://evidence"},"#,
    r#""officer_id":"officer-42","original_name":"20240501_083000_0001.MP4","#,
    r#""recorded":{"end":"2024-05-01T08:45:00.5Z","source":"media","start":"2024-05-01T08:30:00Z"},"#,
    r#""recorder":{"id":"RC-17","model":"BWC-9","profile":"generic-mass-storage"},"#,
    r#""segment_id":"seg-0001","size":7}"#
);

fn dock_key() -> SigningKey {
    SigningKey::from_seed("dock-01", &[5; 32]).unwrap()
}

#[test]
fn canonical_json_is_exactly_the_documented_format() {
    let m = sample();
    // `printf footage | sha256sum`
    assert_eq!(m.digests.sha256, Digest::sha256(b"footage"));
    let bytes = m.to_canonical().unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), SAMPLE_JSON);
    let back = Manifest::parse(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_canonical().unwrap(), bytes);
}

#[test]
fn optional_parts_are_written_and_read() {
    let mut m = sample();
    m.original_name = OriginalName::from_os_bytes(b"\x80\x81.mp4");
    m.digests.sm3 = Some(
        "sm3:66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
            .parse()
            .unwrap(),
    );
    m.media.damaged = Some("moov atom missing: recording was cut off".into());
    m.media.duration_ms = None;
    m.recorded.source = TimeSource::FileName;
    let bytes = m.to_canonical().unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.contains(r#""original_name":{"base64":"gIEubXA0"}"#),
        "{text}"
    );
    assert!(text.contains(r#""sm3":"sm3:66c7f0"#), "{text}");
    assert!(
        text.contains(r#""damaged":"moov atom missing: recording was cut off""#),
        "{text}"
    );
    assert!(text.contains(r#""duration_ms":null"#), "{text}");
    assert!(text.contains(r#""source":"file_name""#), "{text}");
    assert_eq!(Manifest::parse(&bytes).unwrap(), m);
}

#[test]
fn sign_and_open() {
    let key = dock_key();
    let m = sample();
    let env = m.sign(&key).unwrap();
    assert_eq!(env.payload_type, MANIFEST_PAYLOAD_TYPE);
    assert_eq!(env.payload, m.to_canonical().unwrap());
    assert_eq!(env.signatures[0].keyid, key.verifier_key().key_id());

    // Through JSON and back, as it travels.
    let env = Envelope::parse(&env.to_json()).unwrap();
    let opened = SignedManifest::open(env.clone(), &[key.verifier_key()]).unwrap();
    assert_eq!(opened.manifest, m);
    assert_eq!(opened.signers, vec![key.verifier_key().key_id()]);
    assert_eq!(opened.envelope, env);

    // Another dock's key is not trusted for it.
    let other = SigningKey::from_seed("dock-02", &[6; 32]).unwrap();
    assert!(matches!(
        SignedManifest::open(env, &[other.verifier_key()]),
        Err(ManifestError::Dsse(DsseError::NoTrustedSignature { .. }))
    ));
}

#[test]
fn tampered_manifest_is_refused() {
    let key = dock_key();
    let trusted = [key.verifier_key()];
    let env = sample().sign(&key).unwrap();
    // Change the size from 7 to 8: still canonical JSON, no longer signed.
    let mut t = env.clone();
    let text = String::from_utf8(t.payload.clone()).unwrap();
    t.payload = text.replace(r#""size":7"#, r#""size":8"#).into_bytes();
    assert_ne!(t.payload, env.payload);
    assert!(matches!(
        SignedManifest::open(t, &trusted),
        Err(ManifestError::Dsse(DsseError::BadSignature { .. }))
    ));
    // Flip one payload byte anywhere.
    for i in (0..env.payload.len()).step_by(17) {
        let mut t = env.clone();
        t.payload[i] ^= 0x20;
        assert!(SignedManifest::open(t, &trusted).is_err(), "byte {i}");
    }
}

#[test]
fn an_event_envelope_is_not_a_manifest() {
    let key = dock_key();
    let payload = sample().to_canonical().unwrap();
    let env = Envelope::sign(EVENT_PAYLOAD_TYPE, payload, &[&key]).unwrap();
    assert!(matches!(
        SignedManifest::open(env, &[key.verifier_key()]),
        Err(ManifestError::Dsse(DsseError::WrongPayloadType { .. }))
    ));
}

#[test]
fn validly_signed_but_not_canonical_is_refused() {
    let key = dock_key();
    let pretty = serde_json::to_vec_pretty(&sample()).unwrap();
    let env = Envelope::sign(MANIFEST_PAYLOAD_TYPE, pretty, &[&key]).unwrap();
    assert!(matches!(
        SignedManifest::open(env, &[key.verifier_key()]),
        Err(ManifestError::Canonical(_))
    ));
}

#[test]
fn strict_and_lenient_where_intended() {
    let canonical = sample().to_canonical().unwrap();
    let text = String::from_utf8(canonical).unwrap();
    let reparse = |s: &str| {
        let bytes = custos_core::canonical::canonicalize_json(s.as_bytes()).unwrap();
        Manifest::parse(&bytes)
    };
    reparse(&text).unwrap();
    // Unknown fields are ignored (forward compatibility of signed records).
    let extra = text.replacen('{', r#"{"zz_future":{"x":1},"#, 1);
    assert_eq!(reparse(&extra).unwrap(), sample());
    // Always-present nullable fields must be present.
    assert!(reparse(&text.replace(r#""damaged":null,"#, "")).is_err());
    assert!(reparse(&text.replace(r#""duration_ms":900500,"#, "")).is_err());
    // Omitted-when-absent fields must not be null.
    assert!(reparse(&text.replace(r#""height":1080,"#, r#""height":null,"#)).is_err());
    // Enumerations are closed.
    assert!(reparse(&text.replace(r#""source":"media""#, r#""source":"guess""#)).is_err());
    assert!(reparse(&text.replace(r#""kind":"video""#, r#""kind":"hologram""#)).is_err());
    // Times must be canonical RFC 3339 UTC.
    assert!(reparse(&text.replace("2024-05-01T18:00:00Z", "2024-05-01T20:00:00+02:00")).is_err());
    // Digests must carry their own algorithm.
    let sm3_as_sha = text.replacen("\"sha256:", "\"sm3:", 1);
    assert!(matches!(
        reparse(&sm3_as_sha),
        Err(ManifestError::DigestAlgorithm {
            field: "digests.sha256",
            ..
        })
    ));
    // Negative or fractional sizes are not sizes.
    assert!(reparse(&text.replace(r#""size":7"#, r#""size":-7"#)).is_err());
    assert!(reparse(&text.replace(r#""size":7"#, r#""size":7.5"#)).is_err());
}

#[test]
fn validation_rules() {
    let mut m = sample();
    m.segment_id.clear();
    assert!(matches!(
        m.validate(),
        Err(ManifestError::EmptyField("segment_id"))
    ));
    assert!(m.sign(&dock_key()).is_err());

    let mut m = sample();
    m.recorded.start = ts("2024-05-01T09:00:00Z");
    assert!(matches!(m.validate(), Err(ManifestError::TimeOrder { .. })));

    let mut m = sample();
    m.late = true;
    assert!(matches!(
        m.validate(),
        Err(ManifestError::LateMismatch { late: true, .. })
    ));
    m.ingested_at = ts("2024-05-03T00:00:00Z");
    m.validate().unwrap();
    assert!(is_late(m.recorded.end, m.ingested_at));
}

// ---------------------------------------------------------------------------
// Property tests

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    // Years 0000..=9999 in nanoseconds since the Unix epoch.
    (-62_167_219_200_000_000_000i128..253_402_300_800_000_000_000i128)
        .prop_map(|n| Timestamp::from_unix_nanos(n).unwrap())
}

fn arb_stream() -> impl Strategy<Value = Stream> {
    (
        any::<u32>(),
        prop_oneof![
            Just(StreamKind::Video),
            Just(StreamKind::Audio),
            Just(StreamKind::Subtitle),
            Just(StreamKind::Data),
            Just(StreamKind::Attachment),
            Just(StreamKind::Other),
        ],
        any::<String>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
    )
        .prop_map(
            |(index, kind, codec, width, height, sample_rate, channels)| Stream {
                index,
                kind,
                codec,
                width,
                height,
                sample_rate,
                channels,
            },
        )
}

fn non_empty() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-empty", |s| !s.is_empty())
}

prop_compose! {
    fn arb_manifest()(
        segment_id in non_empty(),
        recorder in (non_empty(), any::<String>(), any::<String>()),
        officer_id in any::<String>(),
        dock in (non_empty(), -(1i64 << 53)..(1i64 << 53)),
        name in prop::collection::vec(any::<u8>(), 0..64),
        size in 0u64..(1 << 53),
        data in prop::collection::vec(any::<u8>(), 0..32),
        with_sm3 in any::<bool>(),
        times in (arb_ts(), arb_ts(), arb_ts()),
        source in prop_oneof![Just(TimeSource::Media), Just(TimeSource::FileName), Just(TimeSource::FileTime)],
        media in (any::<String>(), any::<Option<u64>>().prop_map(|d| d.map(|d| d >> 11)),
                  prop::collection::vec(arb_stream(), 0..4), any::<Option<String>>()),
        object in (non_empty(), non_empty()),
    ) -> Manifest {
        let mut h = MultiHasher::new(with_sm3).unwrap();
        h.update(&data);
        let digests: Digests = h.finalize();
        let (a, b, ingested_at) = times;
        let (start, end) = if a <= b { (a, b) } else { (b, a) };
        Manifest {
            segment_id,
            recorder: Recorder { id: recorder.0, model: recorder.1, profile: recorder.2 },
            officer_id,
            dock: Dock { id: dock.0, clock_offset_ms: dock.1 },
            original_name: OriginalName::from_os_bytes(&name),
            size,
            digests,
            recorded: Recorded { start, end, source },
            media: Media { container: media.0, duration_ms: media.1, streams: media.2, damaged: media.3 },
            ingested_at,
            object: ObjectRef { url: object.0, key: object.1 },
            late: is_late(end, ingested_at),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn manifest_round_trips_byte_for_byte(m in arb_manifest()) {
        let bytes = m.to_canonical().unwrap();
        prop_assert!(custos_core::canonical::is_canonical(&bytes));
        let back = Manifest::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_canonical().unwrap(), bytes);
    }

    #[test]
    fn non_utf8_names_survive_exactly(name in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut m = sample();
        m.original_name = OriginalName::from_os_bytes(&name);
        prop_assert_eq!(
            matches!(m.original_name, OriginalName::Utf8(_)),
            std::str::from_utf8(&name).is_ok()
        );
        let back = Manifest::parse(&m.to_canonical().unwrap()).unwrap();
        prop_assert_eq!(back.original_name.as_bytes(), &name[..]);
    }

    #[test]
    fn signed_manifest_opens_and_any_flip_breaks_it(m in arb_manifest(), flip in any::<prop::sample::Index>()) {
        let key = dock_key();
        let env = m.sign(&key).unwrap();
        let opened = SignedManifest::open(env.clone(), &[key.verifier_key()]).unwrap();
        prop_assert_eq!(opened.manifest, m);
        let mut t = env;
        let i = flip.index(t.payload.len());
        t.payload[i] ^= 0x01;
        prop_assert!(SignedManifest::open(t, &[key.verifier_key()]).is_err());
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::parse(&bytes);
    }
}
