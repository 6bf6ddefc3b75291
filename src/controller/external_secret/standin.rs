//! Temporary stand-in for `controller::restarts` (owned by another
//! change), with the agreed signatures, so the ExternalSecret reconciler
//! compiles and runs before it lands. Removed when the real module is
//! merged.
//!
//! Design note: the stand-in restarter does nothing.

use std::collections::BTreeMap;

use crate::controller::api::WorkloadRef;
use crate::secret::SecretBytes;

/// Stand-in restarter: does nothing.
#[derive(Clone, Default)]
pub struct Restarter;

impl Restarter {
    /// Keyed content hash (stand-in: constant).
    pub fn content_hash(&self, _data: &BTreeMap<String, SecretBytes>) -> String {
        String::new()
    }

    /// Roll `targets` (stand-in: nothing).
    pub fn content_changed(&self, _namespace: &str, _targets: &[WorkloadRef], _hash: String) {}
}
