//! `sealgate convert` on arbitrary text: must return converted YAML or a
//! typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sealgate::controller::convert::convert_stream(text);
    }
});
