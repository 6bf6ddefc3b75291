//! Wrapper types for plaintext secret material.
//!
//! Design note: every module that touches a decrypted value, a fetched
//! backend secret or a credential holds it in one of these types, so three
//! guarantees hold everywhere without each call site remembering them:
//!
//! 1. **Never printed.** `Debug` and `Display` write [`REDACTED`] and the
//!    length at most. A stray `{:?}` in a log line, an error, an event or a
//!    status message therefore cannot leak the value.
//! 2. **Wiped on drop.** The buffer is zeroized when the value is dropped
//!    (via `zeroize`), limiting how long plaintext lingers in memory.
//! 3. **Explicit access.** Reading the bytes goes through
//!    [`ExposeSecret::expose_secret`], which is easy to grep for in review.
//!
//! Deliberately missing: `serde::Serialize` (serializing a secret must be a
//! visible, local decision, not a derive that silently includes it) and
//! `Deref` (which would make exposure implicit).

use std::fmt;

pub use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The marker written in place of a secret value by `Debug` and `Display`.
///
/// Public so tests and log scrubbers can assert on exactly this text.
pub const REDACTED: &str = "[REDACTED]";

/// Plaintext secret bytes: a data key, a decrypted sops value, a backend
/// secret, a Kubernetes `Secret` data entry.
///
/// Equality is constant-time so comparing a supplied value against a stored
/// one (drift detection, MAC-like checks) does not leak timing.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the caller's buffer is moved, not copied,
    /// so no unzeroized duplicate is left behind.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Length in bytes. Lengths are not secret for our purposes (sops and
    /// Kubernetes both expose them), and they help diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty; an empty value is often a configuration
    /// error worth reporting without revealing anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Interprets the bytes as UTF-8, keeping them wrapped. Fails without
    /// echoing the content, so the error is safe to log.
    pub fn into_string(mut self) -> Result<SecretString, NotUtf8> {
        // Move the buffer out (no copy); on failure wipe it before returning.
        match String::from_utf8(std::mem::take(&mut *self.0)) {
            Ok(s) => Ok(SecretString::new(s)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(NotUtf8)
            }
        }
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
}

impl ExposeSecret<[u8]> for SecretBytes {
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({REDACTED}, {} bytes)", self.0.len())
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A secret known to be UTF-8 text: a token, a password, an age identity.
///
/// Separate from [`SecretBytes`] so APIs that need `&str` (HTTP headers, age
/// identity parsing) do not re-validate or copy into an unwrapped `String`.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s` without copying it.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// Length in bytes; see [`SecretBytes::len`] for why this is exposed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Converts to bytes, keeping the value wrapped and without a copy.
    pub fn into_bytes(mut self) -> SecretBytes {
        SecretBytes::new(std::mem::take(&mut *self.0).into_bytes())
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl ExposeSecret<str> for SecretString {
    fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({REDACTED}, {} bytes)", self.0.len())
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Returned when secret bytes are not valid UTF-8. Carries no content, so it
/// is safe to put in any error chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret value is not valid UTF-8")]
pub struct NotUtf8;

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "hunter2-correct-horse-battery-staple";

    #[test]
    fn debug_and_display_never_show_the_value() {
        let b = SecretBytes::from(VALUE.as_bytes());
        let s = SecretString::from(VALUE);
        for rendered in [
            format!("{b:?}"),
            format!("{b:#?}"),
            format!("{b}"),
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{:?}", Some(&b)),
            format!("{:?}", vec![s.clone()]),
        ] {
            assert!(!rendered.contains(VALUE), "leaked in {rendered:?}");
            assert!(!rendered.contains("hunter"), "partial leak in {rendered:?}");
            assert!(rendered.contains(REDACTED), "no marker in {rendered:?}");
        }
    }

    #[test]
    fn debug_reports_length_only() {
        let b = SecretBytes::from(&b"abc"[..]);
        assert_eq!(format!("{b:?}"), "SecretBytes([REDACTED], 3 bytes)");
        assert_eq!(b.to_string(), REDACTED);
    }

    #[test]
    fn a_struct_deriving_debug_stays_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            user: String,
            password: SecretString,
        }
        let c = Credentials {
            user: "app".into(),
            password: VALUE.into(),
        };
        let out = format!("{c:?}");
        assert!(out.contains("app"));
        assert!(!out.contains(VALUE));
    }

    #[test]
    fn expose_returns_the_exact_bytes() {
        let b = SecretBytes::new(vec![0, 159, 146, 150]);
        assert_eq!(b.expose_secret(), &[0, 159, 146, 150]);
        assert_eq!(b.len(), 4);
        assert!(!b.is_empty());
        assert!(SecretBytes::default().is_empty());
    }

    #[test]
    fn utf8_round_trip_keeps_value() {
        let s = SecretBytes::from(VALUE.as_bytes()).into_string().unwrap();
        assert_eq!(s.expose_secret(), VALUE);
        assert_eq!(s.into_bytes().expose_secret(), VALUE.as_bytes());
    }

    #[test]
    fn non_utf8_error_carries_no_content() {
        let err = SecretBytes::new(vec![0xff, 0xfe, b's', b'e', b'c'])
            .into_string()
            .unwrap_err();
        assert_eq!(err.to_string(), "secret value is not valid UTF-8");
        assert!(!format!("{err:?}").contains("sec"));
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(SecretBytes::from(&b"a"[..]), SecretBytes::from(&b"a"[..]));
        assert_ne!(SecretBytes::from(&b"a"[..]), SecretBytes::from(&b"b"[..]));
        assert_ne!(SecretBytes::from(&b"a"[..]), SecretBytes::from(&b"ab"[..]));
        assert_eq!(SecretString::from("x"), SecretString::from("x"));
        assert_ne!(SecretString::from("x"), SecretString::from("y"));
    }
}
