//! From the files of a revision to Kubernetes objects that remember where
//! they came from.
//!
//! Design note: every object keeps its file, 1-based line and document
//! index, so a refusal can say `apps/db.yaml:7` instead of "somewhere in
//! the revision". We reuse the gate's position-keeping YAML tree (one
//! parser for scanning and rendering, so the two can never disagree on
//! what a document is) and type plain scalars as go-yaml does (the sops
//! engine's resolver), the way `kubectl` reads the same file. Duplicate
//! mapping keys and aliases are refused: with last-wins semantics a
//! duplicate key can hide a value from review, and aliases can multiply
//! work. Caps (5 MiB a file, 5,000 objects a revision) make a hostile or
//! mistaken repository fail with a clear error instead of exhausting memory.

use serde_json::{Map, Value as Json};

use super::source::{MAX_FILE_BYTES, SourceFile};
use crate::gate::yaml::{self, Node, Style, Value as YValue};
use crate::secret::ExposeSecret;
use crate::sops::formats::yaml::resolve_plain;
use crate::sops::tree::Value as SopsValue;

/// Most objects one revision may hold.
pub const MAX_OBJECTS: usize = 5_000;

/// One rendered object and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// File path from the repository root.
    pub file: String,
    /// 1-based line where the object starts.
    pub line: usize,
    /// 0-based index of the document in the file.
    pub doc: usize,
    /// The object as JSON.
    pub object: Json,
    /// Index into the input files (sops Secrets are decrypted from the file).
    pub file_index: usize,
    /// The document carries sops metadata (an encrypted Secret).
    pub sops: bool,
}

impl Rendered {
    /// `file:line`, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object.get("kind").and_then(Json::as_str).unwrap_or("")
    }
    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Json::as_str)
            .unwrap_or("")
    }
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("")
    }
    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Json::as_str)
    }
}

/// Why a revision cannot be rendered. Messages name files and lines, never
/// content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A file is not valid YAML/JSON.
    #[error("{file}:{line}: not valid YAML/JSON: {reason}")]
    Parse {
        /// File.
        file: String,
        /// Line.
        line: usize,
        /// Parser message.
        reason: String,
    },
    /// A document is not a usable Kubernetes object.
    #[error("{file}:{line} (document {doc}): {reason}")]
    Structure {
        /// File.
        file: String,
        /// Line.
        line: usize,
        /// Document index.
        doc: usize,
        /// What is wrong.
        reason: String,
    },
    /// A file exceeds the size cap.
    #[error("{file}: {size} bytes exceeds the {limit}-byte cap per file")]
    FileTooLarge {
        /// File.
        file: String,
        /// Size.
        size: usize,
        /// Cap.
        limit: usize,
    },
    /// The revision holds too many objects.
    #[error("the revision holds more than {limit} objects (at {file})")]
    TooManyObjects {
        /// File where the cap was reached.
        file: String,
        /// Cap.
        limit: usize,
    },
}

impl RenderError {
    /// One CamelCase word for status reasons and metric labels.
    pub fn metric_label(&self) -> &'static str {
        "RenderFailed"
    }
}

/// Renders every file: multi-document YAML and JSON, `List` kinds expanded.
pub fn render(files: &[SourceFile]) -> Result<Vec<Rendered>, RenderError> {
    let mut out = Vec::new();
    for (file_index, f) in files.iter().enumerate() {
        if f.data.len() > MAX_FILE_BYTES {
            return Err(RenderError::FileTooLarge {
                file: f.path.clone(),
                size: f.data.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        let text = std::str::from_utf8(&f.data).map_err(|e| RenderError::Parse {
            file: f.path.clone(),
            line: line_of_offset(&f.data, e.valid_up_to()),
            reason: "not UTF-8".into(),
        })?;
        let docs = yaml::parse_documents(text).map_err(|e| RenderError::Parse {
            file: f.path.clone(),
            line: e.line,
            reason: e.reason,
        })?;
        for (doc, node) in docs.iter().enumerate() {
            let err = |line: usize, reason: String| RenderError::Structure {
                file: f.path.clone(),
                line,
                doc,
                reason,
            };
            let object = to_json(node).map_err(|(line, reason)| err(line, reason))?;
            let sops = object.get("sops").is_some_and(Json::is_object);
            let mut push = |object: Json, line: usize| -> Result<(), RenderError> {
                check_structure(&object).map_err(|r| err(line, r))?;
                if out.len() >= MAX_OBJECTS {
                    return Err(RenderError::TooManyObjects {
                        file: f.path.clone(),
                        limit: MAX_OBJECTS,
                    });
                }
                out.push(Rendered {
                    file: f.path.clone(),
                    line,
                    doc,
                    object,
                    file_index,
                    sops,
                });
                Ok(())
            };
            let kind = object.get("kind").and_then(Json::as_str).unwrap_or("");
            let is_list =
                kind.ends_with("List") && object.get("items").is_some_and(Json::is_array) && !sops;
            if is_list {
                let item_nodes = node.get("items").map(Node::items).unwrap_or(&[]);
                let items = object
                    .get("items")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, item) in items.into_iter().enumerate() {
                    let line = item_nodes.get(i).map_or(node.line, |n| n.line);
                    push(item, line)?;
                }
            } else {
                if sops && docs.len() > 1 {
                    return Err(err(
                        node.line,
                        "a sops-encrypted document must be alone in its file".into(),
                    ));
                }
                push(object, node.line.max(1))?;
            }
        }
    }
    Ok(out)
}

fn line_of_offset(data: &[u8], offset: usize) -> usize {
    data[..offset.min(data.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// apiVersion, kind and metadata.name must be non-empty strings.
fn check_structure(o: &Json) -> Result<(), String> {
    if !o.is_object() {
        return Err("a document must be a mapping (a Kubernetes object)".into());
    }
    for (ptr, what) in [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
    ] {
        match o.pointer(ptr) {
            Some(Json::String(s)) if !s.is_empty() => {}
            _ => return Err(format!("{what} is missing or not a string")),
        }
    }
    if let Some(ns) = o.pointer("/metadata/namespace")
        && !ns.is_string()
    {
        return Err("metadata.namespace is not a string".into());
    }
    Ok(())
}

/// Converts a YAML node to JSON with go-yaml's scalar typing. Errors carry
/// a line and a reason without content.
fn to_json(node: &Node<'_>) -> Result<Json, (usize, String)> {
    Ok(match &node.value {
        YValue::Alias => return Err((node.line, "YAML aliases are not supported".into())),
        YValue::Scalar(s, Style::Plain) => match resolve_plain(s) {
            Ok(SopsValue::Null) => Json::Null,
            Ok(SopsValue::Bool(b)) => Json::Bool(b),
            Ok(SopsValue::Int(i)) => Json::from(i),
            Ok(SopsValue::Float(f)) => {
                serde_json::Number::from_f64(f).map(Json::Number).ok_or((
                    node.line,
                    "infinite or NaN numbers are not valid JSON".into(),
                ))?
            }
            Ok(SopsValue::Str(v)) => Json::String(v.expose_secret().to_owned()),
            // Timestamps and anything else: the text as written.
            Ok(_) => Json::String(s.to_string()),
            Err(reason) => return Err((node.line, reason)),
        },
        YValue::Scalar(s, _) => Json::String(s.to_string()),
        YValue::Seq(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        YValue::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = match &k.value {
                    YValue::Scalar(s, _) => s.to_string(),
                    _ => return Err((k.line, "mapping keys must be scalars".into())),
                };
                if key == "<<" {
                    return Err((k.line, "YAML merge keys are not supported".into()));
                }
                if m.contains_key(&key) {
                    return Err((
                        k.line,
                        format!("duplicate key {key:?} (a duplicate can hide a value from review)"),
                    ));
                }
                m.insert(key, to_json(v)?);
            }
            Json::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            data: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn multi_doc_lists_and_positions() {
        let files = [
            file(
                "apps/a.yaml",
                "# c\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {n: 1, b: yes, t: true, q: '1'}\n---\n\
                 apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n\
                 - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, namespace: x}\n",
            ),
            file(
                "apps/b.json",
                "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"s\"}, \"spec\": {\"ports\": [{\"port\": 80}]}}",
            ),
        ];
        let r = render(&files).expect("render");
        let got: Vec<_> = r.iter().map(|o| (o.name(), o.location(), o.doc)).collect();
        assert_eq!(
            got,
            [
                ("a", "apps/a.yaml:2".to_owned(), 0),
                ("b", "apps/a.yaml:10".to_owned(), 1),
                ("c", "apps/a.yaml:13".to_owned(), 1),
                ("s", "apps/b.json:1".to_owned(), 0),
            ]
        );
        assert_eq!(r[0].object["data"]["n"], 1);
        assert_eq!(r[0].object["data"]["q"], "1");
        assert_eq!(r[0].object["data"]["t"], true);
        assert_eq!(r[2].namespace(), Some("x"));
        assert_eq!(r[3].object["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn clear_errors() {
        let e =
            render(&[file("x.yaml", "apiVersion: v1\nkind: ConfigMap\n")]).expect_err("no name");
        assert_eq!(
            e.to_string(),
            "x.yaml:1 (document 0): metadata.name is missing or not a string"
        );
        let e = render(&[file(
            "d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: PLANTED-1\n  k: other\n",
        )])
        .expect_err("dup");
        assert!(e.to_string().starts_with("d.yaml:6"), "{e}");
        assert!(!e.to_string().contains("PLANTED"));
        let e = render(&[file("p.yaml", "a: [\n")]).expect_err("parse");
        assert!(matches!(e, RenderError::Parse { .. }), "{e}");
        let big = SourceFile {
            path: "big.yaml".into(),
            data: vec![b' '; MAX_FILE_BYTES + 1],
        };
        assert!(matches!(
            render(&[big]),
            Err(RenderError::FileTooLarge { .. })
        ));
        let many: String = (0..=MAX_OBJECTS)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"))
            .collect();
        assert!(matches!(
            render(&[file("many.yaml", &many)]),
            Err(RenderError::TooManyObjects { .. })
        ));
    }

    #[test]
    fn sops_documents_are_flagged() {
        let r = render(&[file(
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: 'ENC[AES256_GCM,data:x]'}\nsops: {version: 3.11.0}\n",
        )])
        .expect("render");
        assert!(r[0].sops);
    }

    proptest! {
        /// Any input either renders or fails with an error; every rendered
        /// object has the required fields and a line inside the file.
        #[test]
        fn render_never_panics(text in "(apiVersion: v1\n|kind: [A-Za-z]{0,6}\n|metadata: \\{name: [a-z]{0,4}\\}\n|---\n|items:\n|- [a-z: {}\\[\\]]{0,8}\n|[ a-z:'\"\\-#]{0,12}\n){0,12}") {
            let lines = text.lines().count().max(1);
            if let Ok(objs) = render(&[file("f.yaml", &text)]) {
                for o in objs {
                    prop_assert!(!o.kind().is_empty() && !o.name().is_empty());
                    prop_assert!(o.line >= 1 && o.line <= lines);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = render(&[SourceFile { path: "b.json".into(), data }]);
        }
    }
}
