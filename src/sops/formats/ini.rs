//! INI store following go-ini's defaults as sops uses them (sops-format.md §8.4).
//!
//! Design note: the tree is one item per section, each section a flat map of
//! strings; keys before the first header go to go-ini's implicit `DEFAULT`
//! section. A comment above a header is the section's first item; a
//! comment above a key is stored right after that key, as sops does, so
//! comment AADs (`section:`) match. Unquoted values lose `#`/`;` inline
//! comments like go-ini; values containing them are written back-quoted.

use super::super::error::SopsError;
use super::super::tree::{Branch, Item, Value};
use crate::secret::{ExposeSecret, SecretString};

fn strip_comment_marker(line: &str) -> String {
    line.trim_start_matches(['#', ';']).trim_start().to_owned()
}

/// Parses INI text.
pub fn parse(input: &str) -> Result<Branch, SopsError> {
    let mut sections: Vec<Item> = Vec::new();
    let mut current: Vec<Item> = Vec::new();
    let mut current_name = String::from("DEFAULT");
    let mut pending: Vec<String> = Vec::new();
    let mut last_was_comment = false;
    let lines: Vec<&str> = input.lines().collect();
    let mut n = 0;
    let err = |line: usize, m: &str| SopsError::Parse {
        format: "ini",
        line,
        column: 1,
        message: m.into(),
    };
    while n < lines.len() {
        let raw = lines[n];
        let line = raw.trim();
        n += 1;
        if line.is_empty() {
            last_was_comment = false;
            continue;
        }
        if line.starts_with('#') || line.starts_with(';') {
            // go-ini joins consecutive comment lines into one comment:
            // the first line loses its marker, the others stay verbatim.
            match (pending.last_mut(), last_was_comment) {
                (Some(prev), true) => {
                    prev.push('\n');
                    prev.push_str(line);
                }
                _ => pending.push(strip_comment_marker(line)),
            }
            last_was_comment = true;
            continue;
        }
        last_was_comment = false;
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(err(n, "section header without closing `]`"));
            };
            if current_name != "DEFAULT" || !current.is_empty() {
                sections.push(Item::Pair(
                    current_name,
                    Value::Map(std::mem::take(&mut current)),
                ));
            }
            current_name = name.trim().to_owned();
            for c in pending.drain(..) {
                current.push(Item::Comment(SecretString::new(c)));
            }
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else {
            return Err(err(
                n,
                "line is not `key = value`, a [section] or a comment",
            ));
        };
        let key = line[..pos].trim().to_owned();
        if key.is_empty() {
            return Err(err(n, "empty key"));
        }
        let mut val = line[pos + 1..].trim_start().to_owned();
        if let Some(rest) = val.strip_prefix("\"\"\"") {
            // Multi-line value up to the closing triple quote.
            let mut buf = rest.to_owned();
            loop {
                if let Some(end) = buf.find("\"\"\"") {
                    buf.truncate(end);
                    break;
                }
                if n >= lines.len() {
                    return Err(err(n, "unterminated \"\"\" value"));
                }
                buf.push('\n');
                buf.push_str(lines[n]);
                n += 1;
            }
            val = buf;
        } else if val.len() >= 2 && val.starts_with('`') && val[1..].contains('`') {
            let end = val[1..].find('`').map(|e| e + 1).unwrap_or(val.len());
            val = val[1..end].to_owned();
        } else if val.len() >= 2 && val.starts_with('"') && val[1..].contains('"') {
            let end = val[1..].rfind('"').map(|e| e + 1).unwrap_or(val.len());
            val = val[1..end].to_owned();
        } else {
            if let Some(i) = val.find(['#', ';']) {
                // go-ini keeps an inline comment as the key's comment.
                pending.push(strip_comment_marker(&val[i..]));
                val.truncate(i);
            }
            val = val.trim().to_owned();
        }
        current.push(Item::Pair(key, Value::str(val)));
        for c in pending.drain(..) {
            current.push(Item::Comment(SecretString::new(c)));
        }
    }
    if current_name != "DEFAULT" || !current.is_empty() {
        sections.push(Item::Pair(current_name, Value::Map(current)));
    }
    for c in pending {
        sections.push(Item::Comment(SecretString::new(c)));
    }
    Ok(sections)
}

fn quote_value(v: &str) -> String {
    if v.contains('\n') || v.contains('`') {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_owned()
    }
}

fn write_section(
    out: &mut String,
    name: &str,
    items: &[(String, String)],
    comments_first: &[String],
    header: bool,
) {
    if !out.is_empty() {
        out.push('\n');
    }
    for c in comments_first {
        out.push_str("; ");
        out.push_str(c);
        out.push('\n');
    }
    if header {
        out.push('[');
        out.push_str(name);
        out.push_str("]\n");
    }
    let width = items
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in items {
        if k.is_empty() {
            // A comment line (value holds its text).
            out.push_str("; ");
            out.push_str(v);
            out.push('\n');
            continue;
        }
        out.push_str(k);
        for _ in k.chars().count()..width {
            out.push(' ');
        }
        out.push_str(" = ");
        out.push_str(v);
        out.push('\n');
    }
}

/// Emits INI text; `meta` (flattened) becomes a final `[sops]` section with
/// newlines written as `\n`.
pub fn emit(branch: &Branch, meta: Option<&[(String, String)]>) -> Result<String, SopsError> {
    let mut out = String::new();
    for item in branch {
        match item {
            Item::Comment(c) => {
                out.push_str("; ");
                out.push_str(c.expose_secret());
                out.push('\n');
            }
            Item::Pair(name, Value::Map(entries)) => {
                let mut lead = Vec::new();
                let mut rows: Vec<(String, String)> = Vec::new();
                for e in entries {
                    match e {
                        Item::Comment(c) if rows.is_empty() => {
                            lead.push(c.expose_secret().to_owned())
                        }
                        Item::Comment(c) => {
                            rows.push((String::new(), c.expose_secret().to_owned()))
                        }
                        Item::Pair(k, v) => {
                            let text = match v {
                                Value::Map(_) | Value::List(_) => {
                                    return Err(SopsError::Unrepresentable {
                                        format: "ini",
                                        message: format!(
                                            "{name}.{k} is nested; INI values are flat strings"
                                        ),
                                    });
                                }
                                Value::Null => String::new(),
                                other => super::super::keys::scalar_text(other)
                                    .or_else(|| {
                                        other.to_plain_bytes().map(|b| {
                                            String::from_utf8_lossy(b.expose_secret()).into_owned()
                                        })
                                    })
                                    .unwrap_or_default(),
                            };
                            rows.push((k.clone(), quote_value(&text)));
                        }
                    }
                }
                // Comment rows after a key belong to it (see module note):
                // write them before the next key instead of after, which
                // re-parses to the same tree.
                let mut ordered: Vec<(String, String)> = Vec::new();
                let mut i = 0;
                while i < rows.len() {
                    let mut j = i + 1;
                    while j < rows.len() && rows[j].0.is_empty() {
                        ordered.push(rows[j].clone());
                        j += 1;
                    }
                    ordered.push(rows[i].clone());
                    i = j;
                }
                write_section(&mut out, name, &ordered, &lead, name != "DEFAULT");
            }
            Item::Pair(k, _) => {
                return Err(SopsError::Unrepresentable {
                    format: "ini",
                    message: format!("top-level key {k} is not a section"),
                });
            }
        }
    }
    if let Some(meta) = meta {
        let rows: Vec<(String, String)> = meta
            .iter()
            .map(|(k, v)| (k.clone(), v.replace('\n', "\\n")))
            .collect();
        write_section(&mut out, "sops", &rows, &[], true);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_and_quotes() {
        let src = "; about name\n[name]\nfirst = John ; inline\n# about last\nlast = `a;b`\n\n[x]\nk: \"  v  \"\n";
        let t = parse(src).unwrap();
        let out = emit(&t, None).unwrap();
        assert_eq!(parse(&out).unwrap(), t);
        let Item::Pair(_, Value::Map(name)) = &t[0] else {
            panic!()
        };
        assert!(matches!(&name[0], Item::Comment(_)));
        assert!(matches!(&name[1], Item::Pair(k, v) if k == "first" && *v == Value::str("John")));
        assert!(matches!(&name[2], Item::Comment(c) if c.expose_secret() == "inline"));
        assert!(matches!(&name[3], Item::Pair(k, v) if k == "last" && *v == Value::str("a;b")));
    }
}
