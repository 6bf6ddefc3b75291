//! Rewrites External Secrets Operator manifests into sealgate's resources.
//!
//! Design note: migration must be mechanical and safe. Fields with the same
//! meaning are carried over; fields whose ESO default means "nothing
//! special" (`conversionStrategy: Default`, `metadataPolicy: None`, ...) are
//! dropped silently; anything whose meaning sealgate would not honour is an
//! error naming the document, object and field — never a silent change of
//! behaviour. Every converted object is then parsed as the sealgate type, so
//! the output is known to be accepted by the CRD schema. Documents that are
//! not ESO resources pass through untouched.

use serde_json::{Map, Value, json};

use super::api::{ClusterSecretStoreSpec, ExternalSecretSpec, SecretStoreSpec};

/// ESO API versions this converter reads.
pub const ESO_VERSIONS: [&str; 2] = ["external-secrets.io/v1beta1", "external-secrets.io/v1"];

/// One field that cannot be converted without changing behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 0-based document index in the input stream.
    pub document: usize,
    /// `Kind/namespace/name` of the object.
    pub object: String,
    /// JSON-pointer-like path of the field, e.g. `spec.target.creationPolicy`.
    pub field: String,
    /// Why it cannot be converted, and what to do.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {}: {}: {}: {}",
            self.document, self.object, self.field, self.reason
        )
    }
}

/// Why conversion failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input is not YAML.
    #[error("cannot parse the input as YAML: {0}")]
    Parse(String),
    /// Some fields cannot be converted; nothing is written.
    #[error("{} field(s) cannot be converted:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Unconvertible(Vec<Problem>),
    /// Output serialisation failed.
    #[error("cannot write YAML: {0}")]
    Emit(String),
}

/// The result of a conversion.
#[derive(Debug)]
pub struct Converted {
    /// The output YAML stream.
    pub yaml: String,
    /// How many ESO objects were rewritten.
    pub converted: usize,
    /// How many documents passed through unchanged.
    pub passed_through: usize,
}

/// Converts a YAML stream (one or more documents).
pub fn convert_stream(input: &str) -> Result<Converted, ConvertError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| ConvertError::Parse(e.to_string()))?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let (mut converted, mut passed_through) = (0, 0);
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if !ESO_VERSIONS.contains(&api_version) {
            passed_through += 1;
            out.push(doc);
            continue;
        }
        let mut cx = Cx {
            document: index,
            object: object_id(&doc),
            problems: Vec::new(),
        };
        let result = cx.object(&doc);
        problems.append(&mut cx.problems);
        if let Some(v) = result {
            converted += 1;
            out.push(v);
        }
    }
    if !problems.is_empty() {
        return Err(ConvertError::Unconvertible(problems));
    }
    let mut yaml = String::new();
    for (i, doc) in out.iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(
            &serde_saphyr::to_string(doc).map_err(|e| ConvertError::Emit(e.to_string()))?,
        );
    }
    Ok(Converted {
        yaml,
        converted,
        passed_through,
    })
}

fn object_id(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("?");
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Parses a converted spec as its sealgate type.
type SpecCheck = fn(&Value) -> Result<(), String>;

/// Conversion state for one document.
struct Cx {
    document: usize,
    object: String,
    problems: Vec<Problem>,
}

impl Cx {
    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            document: self.document,
            object: self.object.clone(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn object(&mut self, doc: &Value) -> Option<Value> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let spec = doc.get("spec").cloned().unwrap_or(json!({}));
        let (new_spec, check): (Value, SpecCheck) = match kind {
            "ExternalSecret" => (self.external_secret(&spec), |v| {
                serde_json::from_value::<ExternalSecretSpec>(v.clone())
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
            "SecretStore" => (self.store(&spec, false), |v| {
                serde_json::from_value::<SecretStoreSpec>(v.clone())
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
            "ClusterSecretStore" => (self.store(&spec, true), |v| {
                serde_json::from_value::<ClusterSecretStoreSpec>(v.clone())
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
            other => {
                self.problem(
                    "kind",
                    format!("{other} has no sealgate equivalent (only ExternalSecret, SecretStore and ClusterSecretStore convert)"),
                );
                return None;
            }
        };
        if let Err(e) = check(&new_spec) {
            self.problem("spec", format!("converted spec is not valid: {e}"));
            return None;
        }
        let mut metadata = Map::new();
        if let Some(Value::Object(m)) = doc.get("metadata") {
            for key in ["name", "namespace", "labels", "annotations"] {
                if let Some(v) = m.get(key) {
                    metadata.insert(key.into(), v.clone());
                }
            }
        }
        Some(json!({
            "apiVersion": "sealgate.dev/v1alpha1",
            "kind": kind,
            "metadata": metadata,
            "spec": new_spec,
        }))
    }

    /// Copies `keys` of `from` into a new map; reports every other key as
    /// unsupported unless listed in `ignore_if` with its harmless value.
    fn pick(
        &mut self,
        from: &Value,
        path: &str,
        keys: &[&str],
        ignore_if: &[(&str, &str)],
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(obj) = from.as_object() else {
            self.problem(path, "expected a map");
            return out;
        };
        for (k, v) in obj {
            if keys.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            } else if ignore_if
                .iter()
                .any(|(ik, iv)| ik == k && (v.as_str() == Some(iv) || *iv == "*"))
            {
                // ESO's default for this field: same behaviour, nothing to write.
            } else {
                self.problem(
                    &format!("{path}.{k}"),
                    "not supported by sealgate; remove it or convert this object by hand",
                );
            }
        }
        out
    }

    fn external_secret(&mut self, spec: &Value) -> Value {
        let mut out = self.pick(
            spec,
            "spec",
            &[
                "secretStoreRef",
                "refreshInterval",
                "target",
                "data",
                "dataFrom",
            ],
            &[("refreshPolicy", "Periodic")],
        );
        if let Some(r) = out.get("secretStoreRef").cloned() {
            let r = self.pick(&r, "spec.secretStoreRef", &["name", "kind"], &[]);
            out.insert("secretStoreRef".into(), Value::Object(r));
        }
        if let Some(t) = out.get("target").cloned() {
            let t = self.target(&t);
            out.insert("target".into(), Value::Object(t));
        }
        if let Some(Value::Array(items)) = out.get("data").cloned() {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let path = format!("spec.data[{i}]");
                    let mut m = self.pick(d, &path, &["secretKey", "remoteRef"], &[]);
                    if let Some(r) = m.get("remoteRef").cloned() {
                        m.insert(
                            "remoteRef".into(),
                            self.remote_ref(&r, &format!("{path}.remoteRef")),
                        );
                    }
                    Value::Object(m)
                })
                .collect();
            out.insert("data".into(), Value::Array(items));
        }
        if let Some(Value::Array(items)) = out.get("dataFrom").cloned() {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, d)| self.data_from(d, &format!("spec.dataFrom[{i}]")))
                .collect();
            out.insert("dataFrom".into(), Value::Array(items));
        }
        Value::Object(out)
    }

    fn remote_ref(&mut self, r: &Value, path: &str) -> Value {
        let mut m = self.pick(
            r,
            path,
            &["key", "property", "version", "decodingStrategy"],
            &[
                ("conversionStrategy", "Default"),
                ("metadataPolicy", "None"),
            ],
        );
        if m.get("decodingStrategy").and_then(Value::as_str) == Some("None") {
            m.remove("decodingStrategy");
        }
        Value::Object(m)
    }

    fn data_from(&mut self, d: &Value, path: &str) -> Value {
        let mut m = self.pick(d, path, &["extract", "find", "rewrite"], &[]);
        if let Some(e) = m.get("extract").cloned() {
            m.insert(
                "extract".into(),
                self.remote_ref(&e, &format!("{path}.extract")),
            );
        }
        if let Some(f) = m.get("find").cloned() {
            let mut f = self.pick(
                &f,
                &format!("{path}.find"),
                &["path", "name", "tags"],
                &[
                    ("conversionStrategy", "Default"),
                    ("decodingStrategy", "None"),
                ],
            );
            if let Some(n) = f.get("name").cloned() {
                f.insert(
                    "name".into(),
                    Value::Object(self.pick(&n, &format!("{path}.find.name"), &["regexp"], &[])),
                );
            }
            m.insert("find".into(), Value::Object(f));
        }
        if let Some(Value::Array(rs)) = m.get("rewrite").cloned() {
            let rs = rs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let p = format!("{path}.rewrite[{i}]");
                    let mut r = self.pick(r, &p, &["regexp"], &[]);
                    if let Some(x) = r.get("regexp").cloned() {
                        r.insert(
                            "regexp".into(),
                            Value::Object(self.pick(
                                &x,
                                &format!("{p}.regexp"),
                                &["source", "target"],
                                &[],
                            )),
                        );
                    }
                    Value::Object(r)
                })
                .collect();
            m.insert("rewrite".into(), Value::Array(rs));
        }
        Value::Object(m)
    }

    fn target(&mut self, t: &Value) -> Map<String, Value> {
        let mut out = self.pick(
            t,
            "spec.target",
            &["name", "creationPolicy", "deletionPolicy", "template"],
            &[("immutable", "*")],
        );
        // ESO's `deletionPolicy` says what happens when the *provider's*
        // secret disappears; sealgate's says what happens when the
        // ExternalSecret is deleted. Copying it would change meaning (an
        // explicit ESO `Retain` would make an `Owner` Secret outlive its
        // ExternalSecret). ESO's `Retain` is sealgate's fixed behaviour (a
        // vanished provider secret leaves the Secret as it was), so it goes.
        let eso_deletion = out.remove("deletionPolicy");
        if t.get("immutable").and_then(Value::as_bool) == Some(true) {
            self.problem(
                "spec.target.immutable",
                "immutable Secrets cannot be rotated; sealgate does not write them",
            );
        }
        match out.get("creationPolicy").and_then(Value::as_str) {
            None | Some("Owner" | "Merge" | "Orphan") => {}
            Some(other) => self.problem(
                "spec.target.creationPolicy",
                format!("{other:?} is not supported (sealgate has Owner, Merge and Orphan)"),
            ),
        }
        match eso_deletion.as_ref().map(|v| v.as_str()) {
            None | Some(Some("Retain")) => {}
            Some(other) => self.problem(
                "spec.target.deletionPolicy",
                format!(
                    "{} is not supported: sealgate never deletes a Secret or its keys because \
                     the provider's secret disappeared (it keeps the Secret and reports \
                     SecretNotFoundInBackend); sealgate's deletionPolicy is about deleting \
                     the ExternalSecret, so set it by hand after conversion if wanted",
                    other.map_or_else(|| "this value".to_owned(), |o| format!("{o:?}"))
                ),
            ),
        }
        if let Some(tpl) = out.get("template").cloned() {
            let mut tpl = self.pick(
                &tpl,
                "spec.target.template",
                &["type", "metadata", "data", "engineVersion"],
                &[("mergePolicy", "Replace")],
            );
            if let Some(Value::Object(data)) = tpl.get("data").cloned() {
                let mut converted = Map::new();
                for (k, v) in data {
                    let text = v.as_str().unwrap_or_default();
                    match go_template_to_jinja(text) {
                        Ok(t) => {
                            converted.insert(k, Value::String(t));
                        }
                        Err(reason) => {
                            self.problem(&format!("spec.target.template.data.{k}"), reason);
                        }
                    }
                }
                tpl.insert("data".into(), Value::Object(converted));
            }
            out.insert("template".into(), Value::Object(tpl));
        }
        out
    }

    fn store(&mut self, spec: &Value, cluster: bool) -> Value {
        let keys: &[&str] = if cluster {
            &["provider", "conditions"]
        } else {
            &["provider"]
        };
        let mut out = self.pick(
            spec,
            "spec",
            keys,
            &[("refreshInterval", "*"), ("retrySettings", "*")],
        );
        if let Some(p) = out.get("provider").cloned() {
            let p = self.pick(&p, "spec.provider", &["vault", "aws"], &[]);
            let mut np = Map::new();
            if let Some(v) = p.get("vault") {
                np.insert("vault".into(), self.vault(v));
            }
            if let Some(a) = p.get("aws") {
                np.insert("aws".into(), self.aws(a));
            }
            out.insert("provider".into(), Value::Object(np));
        }
        if let Some(Value::Array(cs)) = out.get("conditions").cloned() {
            let cs = cs
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Value::Object(self.pick(
                        c,
                        &format!("spec.conditions[{i}]"),
                        &["namespaces", "namespaceSelector"],
                        &[],
                    ))
                })
                .collect();
            out.insert("conditions".into(), Value::Array(cs));
        }
        Value::Object(out)
    }

    fn vault(&mut self, v: &Value) -> Value {
        let mut out = self.pick(
            v,
            "spec.provider.vault",
            &["server", "path", "version", "namespace", "caBundle", "auth"],
            &[],
        );
        if let Some(a) = out.get("auth").cloned() {
            let path = "spec.provider.vault.auth";
            let mut a = self.pick(
                &a,
                path,
                &["tokenSecretRef", "appRole", "kubernetes", "jwt"],
                &[],
            );
            if let Some(j) = a.get("jwt").cloned() {
                let mut j = self.pick(
                    &j,
                    &format!("{path}.jwt"),
                    &["path", "role", "secretRef", "kubernetesServiceAccountToken"],
                    &[],
                );
                if let Some(k) = j.get("kubernetesServiceAccountToken").cloned() {
                    let p = format!("{path}.jwt.kubernetesServiceAccountToken");
                    let k = self.pick(
                        &k,
                        &p,
                        &["serviceAccountRef", "audiences"],
                        &[("expirationSeconds", "*")],
                    );
                    let mut sa = k
                        .get("serviceAccountRef")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(aud) = k.get("audiences") {
                        sa.insert("audiences".into(), aud.clone());
                    }
                    j.insert("kubernetesServiceAccountToken".into(), Value::Object(sa));
                }
                a.insert("jwt".into(), Value::Object(j));
            }
            out.insert("auth".into(), Value::Object(a));
        }
        Value::Object(out)
    }

    fn aws(&mut self, v: &Value) -> Value {
        let mut out = self.pick(
            v,
            "spec.provider.aws",
            &["service", "region", "auth"],
            &[("role", "*")],
        );
        let role = v.get("role").and_then(Value::as_str).map(str::to_owned);
        if let Some(a) = out.get("auth").cloned() {
            let path = "spec.provider.aws.auth";
            let a = self.pick(&a, path, &["secretRef", "jwt"], &[]);
            let mut na = Map::new();
            if let Some(s) = a.get("secretRef") {
                let s = self.pick(
                    s,
                    &format!("{path}.secretRef"),
                    &[
                        "accessKeyIDSecretRef",
                        "secretAccessKeySecretRef",
                        "sessionTokenSecretRef",
                    ],
                    &[],
                );
                let mut ns = Map::new();
                for (k, v) in s {
                    let k = if k == "accessKeyIDSecretRef" {
                        "accessKeyIdSecretRef".to_owned()
                    } else {
                        k
                    };
                    ns.insert(k, v);
                }
                na.insert("secretRef".into(), Value::Object(ns));
                if role.is_some() {
                    self.problem(
                        "spec.provider.aws.role",
                        "assuming a role on top of static keys is not supported; use auth.jwt with the role",
                    );
                }
            }
            if let Some(j) = a.get("jwt") {
                let j = self.pick(j, &format!("{path}.jwt"), &["serviceAccountRef"], &[]);
                match &role {
                    Some(r) => {
                        na.insert(
                            "jwt".into(),
                            json!({"roleArn": r, "serviceAccountRef": j.get("serviceAccountRef").cloned().unwrap_or(json!({}))}),
                        );
                    }
                    None => self.problem(
                        "spec.provider.aws.auth.jwt",
                        "ESO takes the role from the ServiceAccount's IRSA annotation; sealgate needs spec.provider.aws.role set to the role ARN",
                    ),
                }
            }
            out.insert("auth".into(), Value::Object(na));
        } else if role.is_some() {
            self.problem(
                "spec.provider.aws.role",
                "assuming a role from the default chain is not supported; use auth.jwt",
            );
        }
        Value::Object(out)
    }
}

/// Rewrites the common Go-template forms ESO users write (`{{ .key }}`,
/// `{{ .key | b64enc }}`-free plain substitutions) into minijinja syntax.
/// Anything more complex is refused so it is converted by a person.
pub fn go_template_to_jinja(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated {{ in template".into());
        };
        let inner = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let Some(name) = inner.strip_prefix('.') else {
            return Err(format!(
                "template action {{{{ {inner} }}}} is not a plain .key substitution; rewrite it in minijinja syntax by hand"
            ));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "template action {{{{ {inner} }}}} is not a plain .key substitution; rewrite it in minijinja syntax by hand"
            ));
        }
        out.push_str("{{ ");
        out.push_str(name);
        out.push_str(" }}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_become_jinja() {
        assert_eq!(
            go_template_to_jinja("postgres://{{ .user }}:{{.password}}@db").unwrap(),
            "postgres://{{ user }}:{{ password }}@db"
        );
        assert!(go_template_to_jinja("{{ .a | b64dec }}").is_err());
        assert!(go_template_to_jinja("{{ range . }}").is_err());
        assert!(go_template_to_jinja("{{ .a ").is_err());
    }

    proptest::proptest! {
        /// Plain substitutions always convert, keep the surrounding text,
        /// and any input gives Ok or an error — never a panic.
        #[test]
        fn plain_substitutions_convert(
            parts in proptest::collection::vec(("[a-z:/@ ]{0,8}", "[A-Za-z_][A-Za-z0-9_]{0,8}"), 0..5),
            noise in ".{0,40}",
        ) {
            let go: String = parts.iter().map(|(t, k)| format!("{t}{{{{ .{k} }}}}")).collect();
            let jinja: String = parts.iter().map(|(t, k)| format!("{t}{{{{ {k} }}}}")).collect();
            proptest::prop_assert_eq!(go_template_to_jinja(&go).ok(), Some(jinja));
            let _ = go_template_to_jinja(&noise);
        }

        /// Arbitrary YAML-ish input never panics the converter.
        #[test]
        fn convert_never_panics(text in r"(apiVersion: external-secrets.io/v1\nkind: (ExternalSecret|SecretStore)\n)?[a-zA-Z:{}\[\] \n-]{0,200}") {
            let _ = convert_stream(&text);
        }
    }
}
