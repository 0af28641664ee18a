#![no_main]
use custos_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

// Whatever parses writes back (canonically) to bytes that parse to the same manifest.
fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        let bytes = manifest
            .to_canonical()
            .expect("a parsed manifest is writable");
        assert_eq!(Manifest::parse(&bytes).ok(), Some(manifest));
    }
});
