//! The files written by the real sops in `../shared/vectors/sops/` decrypt
//! to their documented plaintext with a verified MAC.

use std::path::PathBuf;

use sealgate::secret::ExposeSecret;
use sealgate::sops::{self, AgeIdentities, Format, Item, Keyring, Value};

fn vectors_dir() -> Option<PathBuf> {
    let d = crate::support::tools::project_root().join("../shared/vectors/sops");
    if d.join("keys.txt").is_file() {
        Some(d)
    } else {
        eprintln!(
            "SKIPPED: ../shared/vectors/sops is absent (shared reference material not mounted)"
        );
        None
    }
}

fn keyring(dir: &std::path::Path) -> Keyring {
    let mut ids = AgeIdentities::default();
    ids.add_file(&dir.join("keys.txt")).unwrap();
    Keyring::age(ids)
}

fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Map(items) => items.iter().for_each(|i| {
            if let Item::Pair(_, v) = i {
                leaves(v, out)
            }
        }),
        Value::List(l) => l.iter().for_each(|v| leaves(v, out)),
        other => {
            if let Some(b) = other.to_plain_bytes() {
                out.push(String::from_utf8_lossy(b.expose_secret()).into_owned());
            }
        }
    }
}

#[test]
fn shared_vectors_decrypt_with_verified_mac() {
    let Some(dir) = vectors_dir() else { return };
    let ring = keyring(&dir);
    for (file, format) in [
        ("example.yaml", Format::Yaml),
        ("example.json", Format::Json),
        ("example.ini", Format::Ini),
        ("example.txt", Format::Binary),
    ] {
        let input = std::fs::read(dir.join(file)).unwrap();
        let d = sops::decrypt_tree(&input, format, &ring, false)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let expect: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("derived/{file}.values.json"))).unwrap(),
        )
        .unwrap();
        let key_hex: String = d
            .data_key
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key_hex, expect["data_key_hex"].as_str().unwrap(), "{file}");
        // Every documented plaintext appears, in walk order.
        let mut got = Vec::new();
        for b in &d.branches {
            leaves(&Value::Map(b.clone()), &mut got);
        }
        let mut it = got.iter();
        for v in expect["values_in_walk_order"].as_array().unwrap() {
            let want = v["plaintext"].as_str().unwrap();
            assert!(
                it.any(|g| g == want),
                "{file}: value for {} missing or out of order",
                v["aad"]
            );
        }
    }
}

#[test]
fn shared_binary_and_json_vectors_match_expected_bytes() {
    let Some(dir) = vectors_dir() else { return };
    let ring = keyring(&dir);
    let out = sops::decrypt(
        &std::fs::read(dir.join("example.txt")).unwrap(),
        Format::Binary,
        Format::Binary,
        &ring,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        std::fs::read(dir.join("derived/example.txt.plaintext")).unwrap()
    );
    let out = sops::decrypt(
        &std::fs::read(dir.join("example.json")).unwrap(),
        Format::Json,
        Format::Json,
        &ring,
        false,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        std::fs::read_to_string(dir.join("derived/example.json.expected-decrypted.json")).unwrap()
    );
}

#[test]
fn shared_vector_with_one_changed_byte_is_refused() {
    let Some(dir) = vectors_dir() else { return };
    let ring = keyring(&dir);
    let text = std::fs::read_to_string(dir.join("example.yaml")).unwrap();
    // Flip the clear value that the MAC covers.
    let tampered = text.replacen("all elements of this list", "all elements of this lisT", 1);
    assert_ne!(tampered, text);
    let e = sops::decrypt(
        tampered.as_bytes(),
        Format::Yaml,
        Format::Yaml,
        &ring,
        false,
    )
    .unwrap_err();
    assert!(matches!(e, sops::SopsError::InvalidMac), "{e}");
    // --ignore-mac lets it through (loudly).
    assert!(sops::decrypt(tampered.as_bytes(), Format::Yaml, Format::Yaml, &ring, true).is_ok());
}
