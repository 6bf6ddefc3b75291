//! Every store's parser on arbitrary bytes, plaintext and encrypted paths:
//! must return Ok or a typed error, never panic or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::sops::{self, Format};

fuzz_target!(|data: &[u8]| {
    for fmt in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini, Format::Binary] {
        if let Ok(branches) = sops::formats::parse_plain(fmt, data) {
            // What parses must also be writable in its own format.
            let _ = sops::formats::emit_plain(fmt, &branches);
        }
        let _ = sops::load_encrypted(data, fmt);
    }
});
