//! sops-compatible encryption engine (no Kubernetes, AWS or Git imports).
//!
//! Design note: a file is parsed by its format's store into an ordered tree
//! ([`tree`]), the `sops` metadata block is split off ([`metadata`]), the
//! data key is unwrapped through a [`keys::Keyring`] of master-key
//! backends, and [`engine`] walks the tree decrypting or encrypting leaves
//! while computing the MAC. Public entry points take bytes + format + key
//! sources and return bytes or a tree, so the CLI, the controller and the
//! reconcile loop share exactly this code. The byte-level format follows
//! `../shared/docs/sops-format.md` (sops v3.13.2).

pub mod cipher;
pub mod config;
pub mod engine;
pub mod error;
pub mod formats;
pub mod keys;
pub mod metadata;
pub mod rules;
pub mod shamir;
pub mod tree;

mod api;
pub mod secret_data;

pub use api::*;
pub use engine::EncryptOptions;
pub use error::{ErrorClass, SopsError};
pub use formats::Format;
pub use keys::{AgeIdentities, Keyring, MasterKeyBackend, Recipient};
pub use metadata::Metadata;
pub use rules::Selector;
pub use tree::{Branch, Item, Value};
