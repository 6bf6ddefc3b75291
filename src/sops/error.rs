//! Errors of the sops engine, named for what the user faces.
//!
//! Design note: every variant carries enough context (key path, metadata
//! field, line) to fix the input, and none carries a plaintext value: paths
//! and keys are never encrypted by sops, so they are safe to print, values
//! are not. The CLI maps [`SopsError::exit_class`] onto the documented exit
//! codes (1 refusal, 2 input, 3 unavailable).

/// How the CLI should classify an error (see docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Integrity refusal: MAC mismatch or tampered value (exit 1).
    Refusal,
    /// Bad input, bad key, bad config (exit 2).
    Input,
    /// A key service could not be reached (exit 3).
    Unavailable,
}

/// Everything that can go wrong reading, decrypting or writing a sops file.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// None of the available identities opens enough key groups.
    #[error(
        "no matching keys: could not decrypt the data key with any available identity \
         ({groups_opened} of {groups_needed} key group(s) needed were opened; file recipients: {recipients})"
    )]
    NoMatchingKeys {
        /// Key groups whose share was recovered.
        groups_opened: usize,
        /// Groups required (the Shamir threshold, or 1).
        groups_needed: usize,
        /// Recipients listed in the file (public data), for the hint.
        recipients: String,
    },
    /// The stored MAC does not match the content: the file was modified
    /// outside sops (or by a tool with different canonical bytes).
    #[error(
        "invalid MAC: the file content does not match its integrity code (tampered or edited by hand); \
         refusing to output anything (use --ignore-mac to override)"
    )]
    InvalidMac,
    /// The `mac` field itself does not decrypt with the data key.
    #[error(
        "invalid MAC: the stored mac does not decrypt with this data key (tampered metadata or lastmodified)"
    )]
    MacUndecryptable,
    /// A value failed authentication at its path.
    #[error(
        "cannot decrypt value at {path}: authentication failed (tampered value, or the key was renamed or moved)"
    )]
    ValueTampered {
        /// The key path, `a.b.c`.
        path: String,
    },
    /// A value that the rules say is encrypted is not a valid `ENC[...]`.
    #[error("malformed encrypted value at {path}: {reason}")]
    MalformedValue {
        /// The key path.
        path: String,
        /// What is wrong with it (never the value).
        reason: String,
    },
    /// A decrypted value does not parse as its declared type.
    #[error("value at {path} does not parse as type {kind}")]
    BadTypedValue {
        /// The key path.
        path: String,
        /// The declared type.
        kind: String,
    },
    /// The file has no `sops` metadata: it is not sops-encrypted.
    #[error(
        "sops metadata not found: the file is not encrypted with sops (no top-level `sops` key)"
    )]
    MetadataNotFound,
    /// A metadata field is missing or has the wrong shape.
    #[error("invalid sops metadata field `{field}`: {reason}")]
    InvalidMetadata {
        /// The field, `sops.lastmodified`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The file's `version` is not one we read.
    #[error("unsupported sops file version {0:?}: sealgate reads sops v3 files")]
    UnsupportedVersion(String),
    /// Nothing to encrypt: empty, whitespace- or comment-only input.
    #[error("the file is empty (or only comments); there is nothing to encrypt")]
    EmptyFile,
    /// Encrypting a file that already carries sops metadata.
    #[error("the file already contains sops metadata; it is already encrypted")]
    AlreadyEncrypted,
    /// The input does not parse in the chosen format.
    #[error("cannot parse {format}: {message} (line {line}, column {column})")]
    Parse {
        /// `yaml`, `json`, `dotenv`, `ini`.
        format: &'static str,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// Parser message (about syntax, not values).
        message: String,
    },
    /// A tree cannot be written in the chosen format (nested value in dotenv).
    #[error("cannot write {format}: {message}")]
    Unrepresentable {
        /// Target format.
        format: &'static str,
        /// What cannot be represented.
        message: String,
    },
    /// Plaintext in a text format is not UTF-8.
    #[error(
        "input is not valid UTF-8 (byte offset {offset}); use --input-type binary for non-text files"
    )]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// No master key to encrypt for.
    #[error(
        "no recipients: give --age, set SOPS_AGE_RECIPIENTS, or add a creation rule to .sops.yaml"
    )]
    NoRecipients,
    /// A recipient string cannot be parsed.
    #[error("invalid {kind} recipient {recipient:?}: {reason}")]
    BadRecipient {
        /// Key type.
        kind: String,
        /// The public recipient string.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// A key type we cannot wrap data keys for (yet).
    #[error("cannot wrap a data key for {kind} master keys yet (sealgate speaks age); {hint}")]
    UnsupportedKeyType {
        /// The metadata list name (`pgp`, `kms`, ...).
        kind: String,
        /// What the user can do.
        hint: String,
    },
    /// An identity file or value cannot be parsed.
    #[error("invalid age identity in {source_name}: {reason}")]
    BadIdentity {
        /// Where it came from (env var name or file path).
        source_name: String,
        /// Why (never the key material).
        reason: String,
    },
    /// Wrapping a data key failed.
    #[error("cannot wrap the data key for {kind} recipient {recipient}: {reason}")]
    Wrap {
        /// Key type.
        kind: String,
        /// Recipient.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// Invalid encryption rule (selector) configuration.
    #[error("invalid encryption rule: {0}")]
    BadRule(String),
    /// Shamir threshold inconsistent with the groups.
    #[error("invalid key groups: {0}")]
    BadKeyGroups(String),
    /// The data key has the wrong length or the cipher refused it.
    #[error("data key is not a valid AES-256 key")]
    BadDataKey,
    /// The OS random source failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// `.sops.yaml` problems.
    #[error("config {file}: {reason}")]
    Config {
        /// Config path.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// `--extract` path not found or malformed.
    #[error("cannot extract {path}: {reason}")]
    Extract {
        /// The requested path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SopsError {
    /// Exit-code class for the CLI.
    pub fn exit_class(&self) -> ErrorClass {
        match self {
            SopsError::InvalidMac
            | SopsError::MacUndecryptable
            | SopsError::ValueTampered { .. } => ErrorClass::Refusal,
            _ => ErrorClass::Input,
        }
    }

    pub(crate) fn meta(field: &str, reason: impl Into<String>) -> Self {
        SopsError::InvalidMetadata {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
