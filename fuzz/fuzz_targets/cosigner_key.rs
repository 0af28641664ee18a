#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<custos_core::cosignature::CosignerKey>();
        let _ = custos_core::note::NoteSignature::parse_lines(s);
    }
});
