//! From fetched backend values to the Secret's content: key naming for
//! `extract`/`find`, `rewrite`, and `template` rendering with minijinja.
//!
//! Design note: everything here is pure (no I/O), so it is unit-tested
//! without a cluster. Values stay in [`SecretBytes`] except while a
//! template renders (minijinja holds its variables as ordinary strings; they
//! are dropped right after). Errors name keys, templates and lines, never
//! values: minijinja is built without its `debug` feature, whose error
//! reports would print the template's variables, and our messages use only
//! the error kind and line.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::controller::api::{Rewrite, SecretTemplate};
use crate::providers::SecretValue;
use crate::secret::{ExposeSecret, SecretBytes};

/// The Secret type that would hand out cluster credentials; never written.
pub const FORBIDDEN_TYPE: &str = "kubernetes.io/service-account-token";

/// Why the fetched values cannot be shaped into a Secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// A template failed to parse or render.
    #[error("template for key {key:?}: {kind} (line {line})")]
    Template {
        /// Output key whose template failed.
        key: String,
        /// minijinja's error kind, e.g. "undefined value".
        kind: String,
        /// Line in the template.
        line: usize,
    },
    /// A rewrite regex does not compile.
    #[error("dataFrom[{index}].rewrite: invalid regexp {pattern:?}: {message}")]
    Rewrite {
        /// Index of the dataFrom entry.
        index: usize,
        /// The pattern.
        pattern: String,
        /// Parser message.
        message: String,
    },
    /// A produced key is not a valid Secret key.
    #[error("key {0:?} is not a valid Secret key (allowed: letters, digits, '-', '_', '.')")]
    InvalidKey(String),
    /// The Secret type is refused.
    #[error("Secret type {0:?} is refused: it grants cluster access")]
    ForbiddenType(String),
    /// A value that must be a key/value map is not.
    #[error("{0:?} is not a JSON object or key/value secret; use data[] with remoteRef.property")]
    NotAMap(String),
    /// A duration field does not parse.
    #[error("{field}: {value:?} is not a duration like 30s, 5m, 1h30m or 0")]
    Duration {
        /// Field path.
        field: String,
        /// What was written (not secret).
        value: String,
    },
}

/// What the Secret should look like.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Secret `type`.
    pub type_: String,
    /// Labels from `template.metadata`.
    pub labels: BTreeMap<String, String>,
    /// Annotations from `template.metadata`.
    pub annotations: BTreeMap<String, String>,
    /// The data.
    pub data: BTreeMap<String, SecretBytes>,
}

/// A single value for `data[]`: bytes as they are; a whole key/value secret
/// (no `property` given) as a JSON object, as External Secrets Operator does.
pub fn single_value(v: SecretValue) -> SecretBytes {
    match v {
        SecretValue::Bytes(b) => b,
        SecretValue::Map(m) => map_to_json(&m),
    }
}

/// Every field of one secret, for `dataFrom.extract`. A single value must
/// be a JSON object; nested values are kept as JSON text.
pub fn extract(key: &str, v: SecretValue) -> Result<BTreeMap<String, SecretBytes>, RenderError> {
    match v {
        SecretValue::Map(m) => Ok(m),
        SecretValue::Bytes(b) => {
            let parsed: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(b.expose_secret())
                    .map_err(|_| RenderError::NotAMap(key.to_owned()))?;
            Ok(parsed
                .into_iter()
                .map(|(k, v)| {
                    let bytes = match v {
                        serde_json::Value::String(s) => s.into_bytes(),
                        other => other.to_string().into_bytes(),
                    };
                    (k, SecretBytes::new(bytes))
                })
                .collect())
        }
    }
}

/// The Secret key for a `find` result named `name` (`app/db` → `app_db`).
pub fn find_key(name: &str) -> String {
    name.trim_matches('/').replace('/', "_")
}

/// Applies `rewrite` entries in order to every key.
pub fn rewrite(
    index: usize,
    data: BTreeMap<String, SecretBytes>,
    rewrites: &[Rewrite],
) -> Result<BTreeMap<String, SecretBytes>, RenderError> {
    let mut data = data;
    for rw in rewrites {
        let Some(r) = &rw.regexp else { continue };
        let re = regex::Regex::new(&r.source).map_err(|e| RenderError::Rewrite {
            index,
            pattern: r.source.clone(),
            message: e.to_string(),
        })?;
        data = data
            .into_iter()
            .map(|(k, v)| (re.replace_all(&k, r.target.as_str()).into_owned(), v))
            .collect();
    }
    Ok(data)
}

/// Shapes `values` into the Secret: without `template.data` the values are
/// the data; with it, only the rendered keys are (the values are the
/// template's variables).
pub fn render(
    template: Option<&SecretTemplate>,
    values: BTreeMap<String, SecretBytes>,
) -> Result<Rendered, RenderError> {
    let type_ = template
        .and_then(|t| t.type_.clone())
        .unwrap_or_else(|| "Opaque".into());
    if type_ == FORBIDDEN_TYPE {
        return Err(RenderError::ForbiddenType(type_));
    }
    let (labels, annotations) = template
        .and_then(|t| t.metadata.as_ref())
        .map(|m| (m.labels.clone(), m.annotations.clone()))
        .unwrap_or_default();
    let data = match template.filter(|t| !t.data.is_empty()) {
        None => values,
        Some(t) => render_data(&t.data, &values)?,
    };
    for k in data.keys() {
        if !valid_key(k) {
            return Err(RenderError::InvalidKey(k.clone()));
        }
    }
    Ok(Rendered {
        type_,
        labels,
        annotations,
        data,
    })
}

fn render_data(
    templates: &BTreeMap<String, String>,
    values: &BTreeMap<String, SecretBytes>,
) -> Result<BTreeMap<String, SecretBytes>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("b64enc", |v: String| -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
    });
    env.add_filter("b64dec", |v: String| -> Result<String, minijinja::Error> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "b64dec: not base64")
            })?;
        String::from_utf8(bytes).map_err(|_| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "b64dec: not UTF-8")
        })
    });
    // Non-UTF-8 values cannot be template variables; a template that uses
    // one fails with "undefined value", naming the key.
    let ctx: BTreeMap<&str, Value> = values
        .iter()
        .filter_map(|(k, v)| {
            std::str::from_utf8(v.expose_secret())
                .ok()
                .map(|s| (k.as_str(), Value::from(s)))
        })
        .collect();
    let ctx = Value::from_serialize(&ctx);
    let mut out = BTreeMap::new();
    for (key, source) in templates {
        let err = |e: minijinja::Error| RenderError::Template {
            key: key.clone(),
            kind: e.kind().to_string(),
            line: e.line().unwrap_or(0),
        };
        let rendered = env.render_str(source, &ctx).map_err(err)?;
        out.insert(key.clone(), SecretBytes::new(rendered.into_bytes()));
    }
    Ok(out)
}

fn map_to_json(m: &BTreeMap<String, SecretBytes>) -> SecretBytes {
    let mut out = Vec::from(&b"{"[..]);
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(serde_json::to_vec(k).unwrap_or_default());
        out.push(b':');
        let s = String::from_utf8_lossy(v.expose_secret());
        out.extend(serde_json::to_vec(&*s).unwrap_or_default());
    }
    out.push(b'}');
    SecretBytes::new(out)
}

/// Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses a Go-style duration (`30s`, `5m`, `1h30m`, `500ms`, `0`).
pub fn parse_duration(field: &str, s: &str) -> Result<Duration, RenderError> {
    let bad = || RenderError::Duration {
        field: field.to_owned(),
        value: s.to_owned(),
    };
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::api::{RegexpRewrite, TemplateMetadata};

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::from(v.as_bytes())))
            .collect()
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("f", "0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("f", "5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_duration("f", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("f", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert!(parse_duration("f", "5").is_err());
        assert!(parse_duration("f", "x").is_err());
        assert!(parse_duration("f", "").is_err());
    }

    #[test]
    fn templates_render_with_strict_undefined_and_no_values_in_errors() {
        let t = SecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            metadata: Some(TemplateMetadata {
                labels: [("a".to_owned(), "b".to_owned())].into(),
                annotations: BTreeMap::new(),
            }),
            data: [
                (
                    "url".to_owned(),
                    "u={{ user }}:{{ pw | b64enc }}".to_owned(),
                ),
                ("password".to_owned(), "{{ pw }}".to_owned()),
            ]
            .into(),
            engine_version: None,
        };
        let r = render(
            Some(&t),
            vals(&[("user", "app"), ("pw", "PLANTED-render-1")]),
        )
        .unwrap();
        assert_eq!(r.type_, "kubernetes.io/basic-auth");
        assert_eq!(r.labels["a"], "b");
        assert_eq!(r.data.len(), 2, "only templated keys are written");
        assert_eq!(
            r.data["url"].expose_secret(),
            b"u=app:UExBTlRFRC1yZW5kZXItMQ=="
        );
        let bad = SecretTemplate {
            data: [("k".to_owned(), "{{ pw }}{{ missing }}".to_owned())].into(),
            type_: None,
            metadata: None,
            engine_version: None,
        };
        let e = render(Some(&bad), vals(&[("pw", "PLANTED-render-1")])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("undefined"), "{msg}");
        assert!(!msg.contains("PLANTED"), "{msg}");
    }

    #[test]
    fn service_account_token_type_is_refused() {
        let t = SecretTemplate {
            type_: Some(FORBIDDEN_TYPE.into()),
            metadata: None,
            data: BTreeMap::new(),
            engine_version: None,
        };
        assert_eq!(
            render(Some(&t), vals(&[("a", "b")])).unwrap_err(),
            RenderError::ForbiddenType(FORBIDDEN_TYPE.into())
        );
    }

    #[test]
    fn extract_find_and_rewrite_shape_keys() {
        let m = extract(
            "k",
            SecretValue::Bytes(SecretBytes::from(&br#"{"a":"1","b":{"c":2}}"#[..])),
        )
        .unwrap();
        assert_eq!(m["a"].expose_secret(), b"1");
        assert_eq!(m["b"].expose_secret(), br#"{"c":2}"#);
        assert!(extract("k", SecretValue::Bytes(SecretBytes::from(&b"plain"[..]))).is_err());
        assert_eq!(find_key("app/db/"), "app_db");
        let rw = vec![Rewrite {
            regexp: Some(RegexpRewrite {
                source: "^app_(.*)$".into(),
                target: "APP_$1".into(),
            }),
        }];
        let out = rewrite(0, vals(&[("app_db", "x")]), &rw).unwrap();
        assert!(out.contains_key("APP_db"));
        assert!(render(None, vals(&[("bad/key", "x")])).is_err());
    }

    #[test]
    fn whole_maps_become_json() {
        let v = single_value(SecretValue::Map(vals(&[("a", "1"), ("b", "q\"")])));
        assert_eq!(v.expose_secret(), br#"{"a":"1","b":"q\""}"#);
    }
}
