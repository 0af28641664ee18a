#![no_main]
use custos_core::dsse::Envelope;
use libfuzzer_sys::fuzz_target;

// Whatever parses writes back to JSON that parses to the same envelope.
fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        assert_eq!(Envelope::parse(&envelope.to_json()).ok(), Some(envelope));
    }
});
