//! dotenv store, as primitive as sops' own (sops-format.md §8.3).
//!
//! Design note: compatibility beats convenience here: no quote handling, no
//! `export`, key = everything before the first `=` (not trimmed), a literal
//! `\n` in a value is a newline. Anything smarter would change values that
//! sops users already have under the MAC.

use super::super::error::SopsError;
use super::super::tree::{Branch, Item, Value};
use crate::secret::{ExposeSecret, SecretString};

/// Parses dotenv text.
pub fn parse(input: &str) -> Result<Branch, SopsError> {
    let mut items = Vec::new();
    for (n, line) in input.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            items.push(Item::Comment(SecretString::from(c)));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(SopsError::Parse {
                format: "dotenv",
                line: n + 1,
                column: 1,
                message: "line is neither a comment nor KEY=value".into(),
            });
        };
        if k.is_empty() {
            return Err(SopsError::Parse {
                format: "dotenv",
                line: n + 1,
                column: 1,
                message: "empty key before `=`".into(),
            });
        }
        items.push(Item::Pair(k.to_owned(), Value::str(v.replace("\\n", "\n"))));
    }
    Ok(items)
}

/// Emits dotenv text; nested values cannot be represented.
pub fn emit(branch: &Branch) -> Result<String, SopsError> {
    let mut out = String::new();
    for item in branch {
        match item {
            Item::Comment(c) => {
                out.push('#');
                out.push_str(c.expose_secret());
                out.push('\n');
            }
            Item::Pair(k, v) => {
                let text = match v {
                    Value::Map(_) | Value::List(_) => {
                        return Err(SopsError::Unrepresentable {
                            format: "dotenv",
                            message: format!(
                                "key {k} holds a nested value; dotenv values are flat strings"
                            ),
                        });
                    }
                    Value::Null => String::new(),
                    other => super::super::keys::scalar_text(other)
                        .or_else(|| {
                            other
                                .to_plain_bytes()
                                .map(|b| String::from_utf8_lossy(b.expose_secret()).into_owned())
                        })
                        .unwrap_or_default(),
                };
                out.push_str(k);
                out.push('=');
                out.push_str(&text.replace('\n', "\\n"));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_like_sops() {
        let t = parse("#c\nA=1\nB ='q' x\n\nC=a\\nb\n").unwrap();
        assert_eq!(t.len(), 4);
        assert!(matches!(&t[2], Item::Pair(k, _) if k == "B "));
        assert_eq!(emit(&t).unwrap(), "#c\nA=1\nB ='q' x\nC=a\\nb\n");
        assert!(parse("oops\n").unwrap_err().to_string().contains("line 1"));
    }
}
