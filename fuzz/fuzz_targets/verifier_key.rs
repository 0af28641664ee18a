#![no_main]
use custos_core::keys::VerifierKey;
use libfuzzer_sys::fuzz_target;

// Whatever parses prints as a key string that parses to the same key.
fuzz_target!(|data: &[u8]| {
    if let Some(key) = std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse::<VerifierKey>().ok())
    {
        assert_eq!(key.to_string().parse::<VerifierKey>().ok(), Some(key));
    }
});
