//! `.sealgate.yaml`: rules on/off and severity, path ignores, value
//! allowlists.
//!
//! Design note: every allowlist entry needs a `reason`, and an unknown rule
//! id is an error rather than a silently ignored line — allowlist confusion
//! is the most common complaint about peer tools. The file is parsed with the
//! gate's own YAML tree, so errors carry line numbers.

use std::collections::HashMap;

use regex::Regex;

use super::yaml::{Node, Value, parse_documents};
use super::{Options, Severity, rules};

/// Parsed configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Rule id → severity, or `None` for off.
    pub rule_levels: HashMap<String, Option<Severity>>,
    /// Glob patterns (gitignore-like, relative to the config file) of paths
    /// never scanned.
    pub ignore: Vec<String>,
    /// Value regexes that are accepted everywhere.
    pub allow_values: Vec<Regex>,
    /// Files larger than this many bytes are skipped (with a note).
    pub max_file_size: Option<u64>,
}

/// A configuration problem, with the line it is on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML.
    #[error("invalid YAML: {0}")]
    Yaml(#[from] super::yaml::ParseError),
    /// Names a rule that does not exist.
    #[error("line {line}: unknown rule `{rule}` (see docs/lint.md for rule ids)")]
    UnknownRule {
        /// Line.
        line: usize,
        /// The id given.
        rule: String,
    },
    /// Anything else wrong with a field.
    #[error("line {line}: {what}")]
    Invalid {
        /// Line.
        line: usize,
        /// What is wrong.
        what: String,
    },
}

impl Config {
    /// Parses the text of a `.sealgate.yaml`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let docs = parse_documents(text)?;
        let mut cfg = Config::default();
        let Some(doc) = docs.first() else {
            return Ok(cfg);
        };
        if !matches!(doc.value, Value::Map(_)) {
            return Err(ConfigError::Invalid {
                line: doc.line,
                what: "the config must be a mapping".to_owned(),
            });
        }
        for (k, v) in doc.pairs() {
            match k.as_str().unwrap_or("") {
                "rules" => {
                    for (rk, rv) in v.pairs() {
                        let id = rk.as_str().unwrap_or("");
                        if rules::rule(id).is_none() {
                            return Err(ConfigError::UnknownRule {
                                line: rk.line,
                                rule: id.to_owned(),
                            });
                        }
                        let level = match rv.as_str().unwrap_or("") {
                            "off" | "false" => None,
                            "warning" | "warn" => Some(Severity::Warning),
                            "error" | "on" | "true" => Some(Severity::Error),
                            other => {
                                return Err(ConfigError::Invalid {
                                    line: rv.line,
                                    what: format!(
                                        "rule `{id}`: level `{other}` is not off, warning or error"
                                    ),
                                });
                            }
                        };
                        cfg.rule_levels.insert(id.to_owned(), level);
                    }
                }
                "ignore" => {
                    for it in v.items() {
                        match it.as_str() {
                            Some(s) => cfg.ignore.push(s.to_owned()),
                            None => {
                                return Err(ConfigError::Invalid {
                                    line: it.line,
                                    what: "ignore entries must be strings".to_owned(),
                                });
                            }
                        }
                    }
                }
                "allowlist" => {
                    for it in v.items() {
                        cfg.allow_values.push(allow_entry(it)?);
                    }
                }
                "max_file_size" => {
                    let n = v.as_str().and_then(|s| s.parse::<u64>().ok());
                    match n {
                        Some(n) => cfg.max_file_size = Some(n),
                        None => {
                            return Err(ConfigError::Invalid {
                                line: v.line,
                                what: "max_file_size must be a number of bytes".to_owned(),
                            });
                        }
                    }
                }
                other => {
                    return Err(ConfigError::Invalid {
                        line: k.line,
                        what: format!(
                            "unknown key `{other}` (expected rules, ignore, allowlist, max_file_size)"
                        ),
                    });
                }
            }
        }
        Ok(cfg)
    }

    /// Copies rule levels and allowlists into engine options.
    pub fn apply(&self, opts: &mut Options) {
        opts.rule_levels.extend(self.rule_levels.clone());
        opts.allow_values.extend(self.allow_values.iter().cloned());
    }
}

fn allow_entry(it: &Node) -> Result<Regex, ConfigError> {
    let value = it.get("value").and_then(Node::as_str);
    let reason = it.get("reason").and_then(Node::as_str).unwrap_or("");
    let Some(value) = value else {
        return Err(ConfigError::Invalid {
            line: it.line,
            what: "allowlist entry needs `value` (a regex)".to_owned(),
        });
    };
    if reason.trim().is_empty() {
        return Err(ConfigError::Invalid {
            line: it.line,
            what: "allowlist entry needs a `reason`".to_owned(),
        });
    }
    Regex::new(value).map_err(|e| ConfigError::Invalid {
        line: it.line,
        what: format!("allowlist regex: {e}"),
    })
}
