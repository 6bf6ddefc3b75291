//! Parse + decrypt of an untrusted file with a fixed age identity: the
//! whole path the controller runs on files from Git. The seed corpus should
//! hold real encrypted files for this identity so mutations reach the value
//! and MAC checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::secret::SecretString;
use sealgate::sops::{self, AgeIdentities, Format, Keyring};

// A throwaway identity used only by this fuzz target (recipient
// age17vvwhkychzhv2q5t8y62tzz79jv7yf7tk9ykp62qq6424ggn5c2swla2np); seed
// the corpus with files encrypted to it.
const IDENTITY: &str = "AGE-SECRET-KEY-1HGE04MQQQLNUC950ZP7A65HT9NAKC2RL896WU0FNPD05MPN7RTHSGPTEKN";

fuzz_target!(|data: &[u8]| {
    let mut ids = AgeIdentities::default();
    if ids.add_text(&SecretString::from(IDENTITY), "fuzz").is_err() {
        return;
    }
    let ring = Keyring::age(ids);
    for fmt in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini] {
        let _ = sops::decrypt(data, fmt, fmt, &ring, false);
    }
});
