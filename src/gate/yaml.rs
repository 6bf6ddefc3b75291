//! A position-keeping YAML/JSON tree for the gate.
//!
//! Design note: serde-style deserialisers throw positions away, and the gate
//! must say *where* a secret is (line and column, for CI annotations). We
//! therefore build a small tree from `saphyr-parser` events, keeping the
//! start marker of every node. The builder is iterative (an explicit stack),
//! so hostile nesting cannot overflow the stack, and it stops at a depth and
//! node budget: a file over budget falls back to line scanning, never to "no
//! findings". Duplicate keys are kept (a `Vec` of pairs, not a map) so a
//! duplicated key cannot hide a planted secret behind last-wins semantics.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Deepest nesting accepted before the file is treated as unparseable.
const MAX_DEPTH: usize = 200;
/// Most nodes per file; a budget against alias/anchor-free "YAML bombs".
const MAX_NODES: usize = 2_000_000;

/// One YAML node with the position (1-based line and column) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// What the node holds.
    pub value: Value<'a>,
    /// 1-based line of the node's first character (0 when not from text).
    pub line: usize,
    /// 1-based column of the node's first character.
    pub col: usize,
}

/// Node content.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A scalar with its style (block scalars start on the next line).
    Scalar(Cow<'a, str>, Style),
    /// A mapping; pairs kept in order, duplicates included.
    Map(Vec<(Node<'a>, Node<'a>)>),
    /// A sequence.
    Seq(Vec<Node<'a>>),
    /// An alias (`*x`); never followed, so aliases cannot multiply work.
    Alias,
}

/// Scalar style, needed to map positions inside block scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Plain, unquoted.
    Plain,
    /// Single or double quoted.
    Quoted,
    /// `|` or `>` block scalar.
    Block,
}

/// Why a text did not parse; carries a position, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {reason}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What the parser objected to (parser message, no document content).
    pub reason: String,
}

impl<'a> Node<'a> {
    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, _) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// Looks up a mapping key (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match &self.value {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The mapping pairs, or an empty slice.
    pub fn pairs(&self) -> &[(Node<'a>, Node<'a>)] {
        match &self.value {
            Value::Map(p) => p,
            _ => &[],
        }
    }

    /// The sequence items, or an empty slice.
    pub fn items(&self) -> &[Node<'a>] {
        match &self.value {
            Value::Seq(s) => s,
            _ => &[],
        }
    }

    /// Follows a dotted path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node<'a>> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }

    /// Builds a node tree from an already-parsed JSON value (the admission
    /// webhook and the reconcile loop hand us objects, not text). Positions
    /// are 0: there is no file.
    pub fn from_json(v: &serde_json::Value) -> Node<'static> {
        // Iterative conversion would be overkill: serde_json itself limits
        // nesting to 128 when parsing, so recursion depth is bounded.
        let value = match v {
            serde_json::Value::Null => Value::Scalar(Cow::Borrowed(""), Style::Plain),
            serde_json::Value::Bool(b) => Value::Scalar(Cow::Owned(b.to_string()), Style::Plain),
            serde_json::Value::Number(n) => Value::Scalar(Cow::Owned(n.to_string()), Style::Plain),
            serde_json::Value::String(s) => Value::Scalar(Cow::Owned(s.clone()), Style::Quoted),
            serde_json::Value::Array(a) => Value::Seq(a.iter().map(Node::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (Node::scalar(k.clone()), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node {
            value,
            line: 0,
            col: 0,
        }
    }

    fn scalar(s: String) -> Node<'static> {
        Node {
            value: Value::Scalar(Cow::Owned(s), Style::Quoted),
            line: 0,
            col: 0,
        }
    }
}

enum Frame<'a> {
    Map(Node<'a>, Vec<(Node<'a>, Node<'a>)>, Option<Node<'a>>),
    Seq(Node<'a>, Vec<Node<'a>>),
}

/// Parses every document of a YAML (or JSON) stream.
///
/// Empty documents are skipped. Errors carry the parser's position so the
/// caller can report `scan/unparseable` with a line.
pub fn parse_documents(text: &str) -> Result<Vec<Node<'_>>, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut nodes = 0usize;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| ParseError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            reason: e.info().to_owned(),
        })?;
        let line = span.start.line();
        let col = span.start.col() + 1;
        let mk = |value| Node { value, line, col };
        let complete: Option<Node<'_>> = match event {
            Event::MappingStart(..) => {
                stack.push(Frame::Map(mk(Value::Alias), Vec::new(), None));
                None
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(mk(Value::Alias), Vec::new()));
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(mut n, pairs, _)) => {
                    n.value = Value::Map(pairs);
                    Some(n)
                }
                _ => return Err(structure_error(line, col)),
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(mut n, items)) => {
                    n.value = Value::Seq(items);
                    Some(n)
                }
                _ => return Err(structure_error(line, col)),
            },
            Event::Scalar(v, style, _, _) => {
                let st = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                Some(mk(Value::Scalar(v, st)))
            }
            Event::Alias(_) => Some(mk(Value::Alias)),
            _ => None,
        };
        if stack.len() > MAX_DEPTH {
            return Err(ParseError {
                line,
                col,
                reason: format!("nesting deeper than {MAX_DEPTH}"),
            });
        }
        let Some(node) = complete else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(ParseError {
                line,
                col,
                reason: format!("more than {MAX_NODES} nodes"),
            });
        }
        match stack.last_mut() {
            None => {
                if !is_empty_doc(&node) {
                    docs.push(node);
                }
            }
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, pairs, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }
    Ok(docs)
}

fn is_empty_doc(n: &Node<'_>) -> bool {
    matches!(&n.value, Value::Scalar(s, Style::Plain) if s.is_empty() || s == "~" || s == "null")
}

fn structure_error(line: usize, col: usize) -> ParseError {
    ParseError {
        line,
        col,
        reason: "unbalanced collection events".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("a: 1\nb:\n  c: x\n").unwrap();
        assert_eq!(docs.len(), 1);
        let c = docs[0].at(&["b", "c"]).unwrap();
        assert_eq!((c.line, c.col), (3, 6));
        assert_eq!(c.as_str(), Some("x"));
    }

    #[test]
    fn multi_document_and_duplicates_kept() {
        let docs = parse_documents("---\na: 1\na: 2\n---\n---\nb: [1, 2]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].pairs().len(), 2);
        assert_eq!(docs[1].get("b").unwrap().items().len(), 2);
    }

    #[test]
    fn json_parses_with_positions() {
        let docs = parse_documents("{\n  \"k\": \"v\"\n}").unwrap();
        assert_eq!(docs[0].get("k").unwrap().line, 2);
    }

    #[test]
    fn errors_carry_a_position() {
        let e = parse_documents("a:\n\t- b: [\n").unwrap_err();
        assert!(e.line >= 1);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "[".repeat(100_000);
        assert!(parse_documents(&text).is_err());
    }
}
#[cfg(test)]
mod block_tests {
    #[test]
    fn block_scalar_position() {
        let d = super::parse_documents("a:\n  b: |\n    x\n    y\n").unwrap();
        let b = d[0].at(&["a", "b"]).unwrap();
        assert_eq!((b.line, b.col), (3, 5), "{b:?}");
    }
}
