//! Picking one property out of a key/value or JSON secret.
//!
//! Why here and not per backend: External Secrets Operator users rely on
//! the same `property` semantics whether the secret lives in Vault KV or in
//! an AWS JSON secret, so both go through these functions.
//!
//! Semantics: an exact top-level key wins (`"db.password"` as one key);
//! otherwise the property is a dotted path into nested JSON objects
//! (`db.password`). A string leaf is returned as its text; any other JSON
//! leaf (number, bool, object, array) as its compact JSON.

use std::collections::BTreeMap;

use base64::Engine;
use zeroize::Zeroizing;

use crate::secret::{ExposeSecret, SecretBytes};

/// Why a property could not be extracted. Carries the property name only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// No such property.
    #[error("property {0:?} does not exist")]
    Missing(String),
    /// The secret is not JSON, so a property cannot be looked up.
    #[error("property {0:?} requested but the secret is not a JSON object")]
    NotJson(String),
}

/// Picks `property` from a map of fields (a KV entry).
pub fn from_map(
    map: &BTreeMap<String, SecretBytes>,
    property: &str,
) -> Result<SecretBytes, PropertyError> {
    if let Some(v) = map.get(property) {
        return Ok(v.clone());
    }
    // Dotted path: the first segment names a field whose value is JSON.
    let mut parts = property.splitn(2, '.');
    let (Some(head), Some(rest)) = (parts.next(), parts.next()) else {
        return Err(PropertyError::Missing(property.to_owned()));
    };
    let inner = map
        .get(head)
        .ok_or_else(|| PropertyError::Missing(property.to_owned()))?;
    from_json(inner, rest).map_err(|_| PropertyError::Missing(property.to_owned()))
}

/// Picks `property` from a JSON document held as secret bytes.
pub fn from_json(json: &SecretBytes, property: &str) -> Result<SecretBytes, PropertyError> {
    let doc: serde_json::Value = serde_json::from_slice(json.expose_secret())
        .map_err(|_| PropertyError::NotJson(property.to_owned()))?;
    if !doc.is_object() {
        return Err(PropertyError::NotJson(property.to_owned()));
    }
    let leaf = doc
        .get(property)
        .or_else(|| {
            property.split('.').try_fold(&doc, |node, seg| match node {
                serde_json::Value::Object(m) => m.get(seg),
                serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            })
        })
        .ok_or_else(|| PropertyError::Missing(property.to_owned()))?;
    Ok(json_leaf(leaf))
}

/// Converts a JSON value to the bytes a Kubernetes Secret should hold.
pub fn json_leaf(v: &serde_json::Value) -> SecretBytes {
    match v {
        serde_json::Value::String(s) => SecretBytes::from(s.as_bytes()),
        other => SecretBytes::new(other.to_string().into_bytes()),
    }
}

/// Decodes standard base64 (padding optional, surrounding whitespace
/// ignored) without leaving an unwiped copy.
pub fn decode_base64(b: &SecretBytes) -> Result<SecretBytes, base64::DecodeError> {
    decode_with(b, &base64::alphabet::STANDARD)
}

/// URL-safe base64 (`-` and `_`), padding optional: how JWT-era tools and
/// ESO's `Base64URL` store binary values.
pub fn decode_base64_url(b: &SecretBytes) -> Result<SecretBytes, base64::DecodeError> {
    decode_with(b, &base64::alphabet::URL_SAFE)
}

fn decode_with(
    b: &SecretBytes,
    alphabet: &base64::alphabet::Alphabet,
) -> Result<SecretBytes, base64::DecodeError> {
    let text = b.expose_secret().trim_ascii();
    let engine = base64::engine::GeneralPurpose::new(
        alphabet,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let out = Zeroizing::new(engine.decode(text)?);
    Ok(SecretBytes::from(out.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::from(v.as_bytes())))
            .collect()
    }

    #[test]
    fn exact_key_wins_over_dotted_path() {
        let m = map(&[("db.password", "exact"), ("db", r#"{"password":"nested"}"#)]);
        assert_eq!(
            from_map(&m, "db.password").unwrap().expose_secret(),
            b"exact"
        );
    }

    #[test]
    fn dotted_path_reads_nested_json() {
        let m = map(&[(
            "db",
            r#"{"password":"nested","port":5432,"tags":["a","b"]}"#,
        )]);
        assert_eq!(
            from_map(&m, "db.password").unwrap().expose_secret(),
            b"nested"
        );
        assert_eq!(from_map(&m, "db.port").unwrap().expose_secret(), b"5432");
        assert_eq!(from_map(&m, "db.tags.1").unwrap().expose_secret(), b"b");
        assert_eq!(
            from_map(&m, "db.nope").unwrap_err(),
            PropertyError::Missing("db.nope".into())
        );
    }

    #[test]
    fn json_property_errors_name_the_property_not_the_value() {
        let plain = SecretBytes::from(&b"not-json-hunter2"[..]);
        let e = from_json(&plain, "x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(e, PropertyError::NotJson("x".into()));
    }

    #[test]
    fn url_safe_base64_decodes_what_standard_refuses() {
        let v = SecretBytes::from(&b"-_8"[..]);
        assert!(decode_base64(&v).is_err());
        assert_eq!(
            decode_base64_url(&v).unwrap().expose_secret(),
            &[0xfb, 0xff]
        );
    }

    #[test]
    fn base64_decoding_tolerates_padding_and_whitespace() {
        let b = SecretBytes::from(&b" aGk \n"[..]);
        assert_eq!(decode_base64(&b).unwrap().expose_secret(), b"hi");
        let b = SecretBytes::from(&b"aGk="[..]);
        assert_eq!(decode_base64(&b).unwrap().expose_secret(), b"hi");
        assert!(decode_base64(&SecretBytes::from(&b"%%%"[..])).is_err());
    }

    proptest::proptest! {
        #[test]
        fn from_json_never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..200), prop in "[a-z.0-9]{0,12}") {
            let _ = from_json(&SecretBytes::new(input), &prop);
        }

        #[test]
        fn string_leaves_round_trip(key in "[a-z]{1,8}", value in "\\PC{0,40}") {
            let doc = serde_json::json!({ key.clone(): value.clone() }).to_string();
            let got = from_json(&SecretBytes::new(doc.into_bytes()), &key).unwrap();
            proptest::prop_assert_eq!(got.expose_secret(), value.as_bytes());
        }
    }
}
