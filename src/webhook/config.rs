//! The webhook's own configuration file: who and what is exempt from the
//! gate at admission, and which `.sealgate.yaml` tunes the rules.
//!
//! Design note: exemptions are deliberately few and explicit — namespaces,
//! object labels, and writes made by sealgate itself. A write counts as
//! sealgate's when the request names sealgate's field manager *and* (when
//! `sealgate_users` is set, as the shipped deployment does) comes from the
//! controller's ServiceAccount: anyone can pass `--field-manager=sealgate`,
//! nobody else can authenticate as that ServiceAccount. Unknown keys are an
//! error, so a typo never silently widens or narrows the gate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::controller::sops_secret::FIELD_MANAGER;
use crate::gate;

/// What the webhook enforces; built once at start-up and shared by every
/// request.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Namespaces whose objects are never gated (system namespaces,
    /// sealgate's own).
    pub exempt_namespaces: BTreeSet<String>,
    /// Object labels that exempt an object: key → value, `*` for any value.
    pub exempt_labels: BTreeMap<String, String>,
    /// Usernames (`system:serviceaccount:<ns>:<name>`) whose writes with
    /// [`Policy::field_manager`] are sealgate's own. Empty: the field manager
    /// alone decides (only sensible where nobody untrusted can write).
    pub sealgate_users: BTreeSet<String>,
    /// Field manager of sealgate's own writes.
    pub field_manager: String,
    /// Rule levels and value allowlists for the gate engine.
    pub gate: gate::Options,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            exempt_namespaces: BTreeSet::new(),
            exempt_labels: BTreeMap::new(),
            sealgate_users: BTreeSet::new(),
            field_manager: FIELD_MANAGER.to_owned(),
            gate: gate::Options::default(),
        }
    }
}

/// The file as written; see `docs/webhook.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    exempt_namespaces: Vec<String>,
    #[serde(default)]
    exempt_labels: BTreeMap<String, String>,
    #[serde(default)]
    sealgate_users: Vec<String>,
    #[serde(default)]
    field_manager: Option<String>,
    #[serde(default)]
    gate_config: Option<PathBuf>,
}

/// Why the configuration could not be loaded. The file names are in every
/// variant because the webhook refuses to start on any of them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read webhook config {path}: {error}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause (in the message, not chained).
        error: std::io::Error,
    },
    /// Not valid YAML, or an unknown/ill-typed key.
    #[error("webhook config {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The referenced `.sealgate.yaml` is wrong.
    #[error("gate config {path}: {error}")]
    Gate {
        /// File.
        path: PathBuf,
        /// Cause (in the message, not chained).
        error: gate::config::ConfigError,
    },
    /// A value is empty or otherwise meaningless.
    #[error("webhook config {path}: {what}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

impl ConfigError {
    /// Stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_read",
            ConfigError::Parse { .. } => "config_parse",
            ConfigError::Gate { .. } => "gate_config",
            ConfigError::Invalid { .. } => "config_invalid",
        }
    }
}

impl Policy {
    /// Reads the webhook config at `path`; a relative `gate_config` is
    /// resolved against the config file's directory (both usually come
    /// from one mounted ConfigMap).
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Policy::parse(&text, path)
    }

    /// Parses config text; `path` names the file in errors and anchors a
    /// relative `gate_config`.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig {
                exempt_namespaces: Vec::new(),
                exempt_labels: BTreeMap::new(),
                sealgate_users: Vec::new(),
                field_manager: None,
                gate_config: None,
            }
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        let invalid = |what: String| ConfigError::Invalid {
            path: path.to_owned(),
            what,
        };
        if let Some(ns) = raw.exempt_namespaces.iter().find(|n| n.trim().is_empty()) {
            return Err(invalid(format!(
                "exempt_namespaces has an empty entry {ns:?}"
            )));
        }
        if let Some((k, _)) = raw.exempt_labels.iter().find(|(k, _)| k.trim().is_empty()) {
            return Err(invalid(format!("exempt_labels has an empty key {k:?}")));
        }
        let field_manager = raw
            .field_manager
            .unwrap_or_else(|| FIELD_MANAGER.to_owned());
        if field_manager.trim().is_empty() {
            return Err(invalid("field_manager must not be empty".to_owned()));
        }
        let mut gate_opts = gate::Options::default();
        if let Some(g) = raw.gate_config {
            let g = match path.parent() {
                Some(dir) if g.is_relative() => dir.join(g),
                _ => g,
            };
            let text = std::fs::read_to_string(&g).map_err(|error| ConfigError::Read {
                path: g.clone(),
                error,
            })?;
            let cfg = gate::config::Config::parse(&text)
                .map_err(|error| ConfigError::Gate { path: g, error })?;
            cfg.apply(&mut gate_opts);
        }
        Ok(Policy {
            exempt_namespaces: raw.exempt_namespaces.into_iter().collect(),
            exempt_labels: raw.exempt_labels,
            sealgate_users: raw.sealgate_users.into_iter().collect(),
            field_manager,
            gate: gate_opts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses_and_resolves_the_gate_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("gate.yaml"),
            "rules:\n  k8s/configmap-credential: off\n",
        )
        .expect("write");
        let cfg = dir.path().join("webhook.yaml");
        let p = Policy::parse(
            "exempt_namespaces: [kube-system, sealgate-system]\nexempt_labels:\n  sealgate.dev/gate: skip\n  legacy: \"*\"\nsealgate_users:\n  - system:serviceaccount:sealgate-system:sealgate\ngate_config: gate.yaml\n",
            &cfg,
        )
        .expect("config");
        assert!(p.exempt_namespaces.contains("kube-system"));
        assert_eq!(p.exempt_labels["legacy"], "*");
        assert_eq!(p.field_manager, "sealgate");
        assert_eq!(
            p.gate.rule_levels.get("k8s/configmap-credential"),
            Some(&None)
        );
    }

    #[test]
    fn empty_config_is_the_default_and_typos_are_errors() {
        let p = Policy::parse("", Path::new("w.yaml")).expect("empty");
        assert!(p.exempt_namespaces.is_empty());
        let e = Policy::parse("exempt_namespace: [a]\n", Path::new("w.yaml")).unwrap_err();
        assert_eq!(e.metric_label(), "config_parse");
        assert!(e.to_string().contains("w.yaml"), "{e}");
        let e = Policy::parse("field_manager: \"\"\n", Path::new("w.yaml")).unwrap_err();
        assert_eq!(e.metric_label(), "config_invalid");
    }
}
