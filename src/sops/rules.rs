//! Which leaves are encrypted: sops' six mutually exclusive selectors.
//!
//! Design note: the selector is stored in the file's metadata and applied
//! again on decrypt, so reading and writing share this one function. Each
//! path component is tested separately (sops-format.md §4); regexes are
//! unanchored searches like Go's `regexp.Match` (Rust `regex` has RE2
//! semantics for the syntax sops users write).

use regex::Regex;

use super::error::SopsError;

/// The default suffix when a file names no selector.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// One of the six selectors.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Leaves under a key ending with the suffix stay clear.
    UnencryptedSuffix(String),
    /// Only leaves under a key ending with the suffix are encrypted.
    EncryptedSuffix(String),
    /// Leaves under a key matching the regex stay clear.
    UnencryptedRegex(Regex),
    /// Only leaves under a key matching the regex are encrypted.
    EncryptedRegex(Regex),
    /// Leaves preceded by a matching comment stay clear.
    UnencryptedCommentRegex(Regex),
    /// Only leaves preceded by a matching comment are encrypted.
    EncryptedCommentRegex(Regex),
}

impl Default for Selector {
    fn default() -> Self {
        Selector::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.into())
    }
}

/// Names of the selector metadata fields, in the order sops checks them.
pub const SELECTOR_FIELDS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

impl Selector {
    /// Builds a selector from its metadata field name and value.
    pub fn from_field(field: &str, value: &str) -> Result<Self, SopsError> {
        let re = || Regex::new(value).map_err(|e| SopsError::BadRule(format!("{field}: {e}")));
        Ok(match field {
            "unencrypted_suffix" => Selector::UnencryptedSuffix(value.into()),
            "encrypted_suffix" => Selector::EncryptedSuffix(value.into()),
            "unencrypted_regex" => Selector::UnencryptedRegex(re()?),
            "encrypted_regex" => Selector::EncryptedRegex(re()?),
            "unencrypted_comment_regex" => Selector::UnencryptedCommentRegex(re()?),
            "encrypted_comment_regex" => Selector::EncryptedCommentRegex(re()?),
            other => return Err(SopsError::BadRule(format!("unknown selector {other}"))),
        })
    }

    /// Picks the single selector out of optional fields; more than one is an
    /// error, none gives the default.
    pub fn from_options(fields: &[(&str, Option<&str>)]) -> Result<Self, SopsError> {
        let set: Vec<_> = fields
            .iter()
            .filter_map(|(f, v)| v.filter(|v| !v.is_empty()).map(|v| (*f, v)))
            .collect();
        match set.as_slice() {
            [] => Ok(Selector::default()),
            [(f, v)] => Selector::from_field(f, v),
            _ => Err(SopsError::BadRule(format!(
                "only one of {} may be set, got {}",
                SELECTOR_FIELDS.join(", "),
                set.iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
        }
    }

    /// The metadata field name and value this selector is stored as.
    pub fn field(&self) -> (&'static str, String) {
        match self {
            Selector::UnencryptedSuffix(s) => ("unencrypted_suffix", s.clone()),
            Selector::EncryptedSuffix(s) => ("encrypted_suffix", s.clone()),
            Selector::UnencryptedRegex(r) => ("unencrypted_regex", r.as_str().into()),
            Selector::EncryptedRegex(r) => ("encrypted_regex", r.as_str().into()),
            Selector::UnencryptedCommentRegex(r) => {
                ("unencrypted_comment_regex", r.as_str().into())
            }
            Selector::EncryptedCommentRegex(r) => ("encrypted_comment_regex", r.as_str().into()),
        }
    }

    /// Whether a leaf at `path` (map keys from the root) with the active
    /// comment stack `comments` is encrypted.
    pub fn encrypts(&self, path: &[String], comments: &[&str]) -> bool {
        match self {
            Selector::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Selector::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Selector::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Selector::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
            Selector::UnencryptedCommentRegex(r) => !comments.iter().any(|c| r.is_match(c)),
            Selector::EncryptedCommentRegex(r) => comments.iter().any(|c| r.is_match(c)),
        }
    }

    /// Whether a comment is itself encrypted: comments follow the path rule,
    /// except that a comment matching a comment selector stays readable
    /// (it is the marker the selector keys on).
    pub fn encrypts_comment(&self, path: &[String], comments: &[&str], text: &str) -> bool {
        match self {
            Selector::UnencryptedCommentRegex(r) | Selector::EncryptedCommentRegex(r)
                if r.is_match(text) =>
            {
                false
            }
            _ => self.encrypts(path, comments),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_component_is_tested() {
        let d = Selector::default();
        assert!(d.encrypts(&p(&["a", "b"]), &[]));
        assert!(!d.encrypts(&p(&["secret_unencrypted", "a"]), &[]));
        let r = Selector::from_field("encrypted_regex", "^data$").unwrap();
        assert!(r.encrypts(&p(&["x", "data", "y"]), &[]));
        assert!(!r.encrypts(&p(&["x", "metadata"]), &[]));
        let s = Selector::from_field("encrypted_suffix", "_enc").unwrap();
        assert!(s.encrypts(&p(&["pw_enc"]), &[]));
        assert!(!s.encrypts(&p(&["pw"]), &[]));
        let u = Selector::from_field("unencrypted_regex", "^public").unwrap();
        assert!(!u.encrypts(&p(&["public_key"]), &[]));
        let c = Selector::from_field("encrypted_comment_regex", "sops:enc").unwrap();
        assert!(c.encrypts(&p(&["a"]), &[" sops:enc"]));
        assert!(!c.encrypts(&p(&["a"]), &[]));
        assert!(!c.encrypts_comment(&p(&["a"]), &[], " sops:enc"));
    }

    #[test]
    fn two_selectors_are_refused() {
        let e = Selector::from_options(&[
            ("encrypted_regex", Some("a")),
            ("unencrypted_suffix", Some("_u")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("only one"), "{e}");
    }
}
