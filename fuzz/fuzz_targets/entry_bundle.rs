#![no_main]
use custos_core::tiles::{parse_bundle, BundleId};
use libfuzzer_sys::fuzz_target;

// The first byte is the bundle's width (0 is read as a full bundle).
fuzz_target!(|data: &[u8]| {
    if let Some((&width, bytes)) = data.split_first() {
        let width = if width == 0 { 256 } else { u16::from(width) };
        let id = BundleId::new(0, width).expect("1..=256");
        let _ = parse_bundle(id, bytes);
    }
});
