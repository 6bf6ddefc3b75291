//! Parse + decrypt of an untrusted file with a known age identity: the
//! whole path the controller runs on files from Git. The seed corpus should
//! hold real encrypted files for this identity so mutations reach the value
//! and MAC checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::secret::SecretString;
use sealgate::sops::{self, AgeIdentities, Format, Keyring};

/// The identity the seed corpus is encrypted to: `fuzz/identity.txt`
/// (git-ignored; create it with `age-keygen -o fuzz/identity.txt` and seed
/// the corpus with files encrypted to its recipient). Without it a fresh
/// identity is generated, which still fuzzes parsing and key matching.
/// No private key is committed.
fn identity() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let path = std::env::var("SEALGATE_FUZZ_IDENTITY_FILE")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/identity.txt").to_owned());
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).map(str::to_owned))
            .unwrap_or_else(|| {
                use age::secrecy::ExposeSecret;
                age::x25519::Identity::generate().to_string().expose_secret().to_owned()
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut ids = AgeIdentities::default();
    if ids.add_text(&SecretString::from(identity()), "fuzz").is_err() {
        return;
    }
    let ring = Keyring::age(ids);
    for fmt in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini] {
        let _ = sops::decrypt(data, fmt, fmt, &ring, false);
    }
});
