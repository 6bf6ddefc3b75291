//! Fixture strings for the gate's unit tests: realistic-looking but fake
//! credentials, kept in one place (a path named `testdata`) so repository
//! scanners — ours included — can tell deliberate fixtures from leaks.

/// A well-formed, fake AWS access key id.
pub const AWS_ACCESS_KEY_ID: &str = "AKIAZ7Q3RMW5T2YB6HXK";
/// The access key id AWS's own documentation uses; the gate accepts it.
pub const AWS_DOCS_EXAMPLE_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// PEM armour of a PKCS#1 RSA private key.
pub const RSA_BEGIN: &str = "-----BEGIN RSA PRIVATE KEY-----";
/// Closing armour of [`RSA_BEGIN`].
pub const RSA_END: &str = "-----END RSA PRIVATE KEY-----";
/// PEM armour of a PKCS#8 private key.
pub const PKCS8_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
/// Closing armour of [`PKCS8_BEGIN`].
pub const PKCS8_END: &str = "-----END PRIVATE KEY-----";
