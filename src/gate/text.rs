//! Line-oriented scanning: dotenv, scripts, properties, INI/TOML, Terraform,
//! documents, text embedded in YAML values (ConfigMap files, Helm values
//! strings), and the fallback for YAML that does not parse.
//!
//! Design note: no character can silence a file here. Each line is examined
//! on its own (a lone `%`, a tab or a replaced invalid UTF-8 byte only
//! affects that line's assignment parse), private-key blocks are found over
//! the whole text, and a broken manifest still gets its `kind: Secret`
//! sections checked by indentation.

use std::sync::LazyLock;

use regex::Regex;

use super::classify::{self, KeyClass};
use super::{Ctx, Site, detect, sops};

/// What kind of text is being scanned; selects the rule for credential-named
/// assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `.env` files.
    Dotenv,
    /// Any other text file.
    Generic,
    /// Documentation: only token formats and keys, no key-name rules.
    Docs,
    /// `*.example` / `*.sample`: templates for humans; tokens and keys only.
    Example,
    /// Text embedded in a YAML value; assignments report the given rule.
    Embedded(&'static str),
}

impl Mode {
    fn assignment_rule(self) -> Option<&'static str> {
        match self {
            Mode::Dotenv => Some("dotenv/credential"),
            Mode::Generic => Some("generic/credential-literal"),
            Mode::Embedded(r) => Some(r),
            Mode::Docs | Mode::Example => None,
        }
    }
}

/// Scans a whole file.
pub fn scan_file(ctx: &mut Ctx<'_>, text: &str, mode: Mode) {
    set_code_file(ctx.path);
    if sops::scan_text_sops(ctx, text) {
        return;
    }
    sops::demand_encryption(ctx, false);
    let site = Site::default();
    scan_lines(ctx, text, mode, &|l, c| (l + 1, c + 1), &site, &[]);
}

/// Scans text and maps (0-based line index, 0-based byte column) to a file
/// position. `skip` lists 0-based line indexes already handled.
pub fn scan_lines(
    ctx: &mut Ctx<'_>,
    text: &str,
    mode: Mode,
    map: &dyn Fn(usize, usize) -> (usize, usize),
    site: &Site,
    skip: &[usize],
) {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |off: usize| match starts.binary_search(&off) {
        Ok(i) => i,
        Err(i) => i.saturating_sub(1),
    };
    let mut covered: Vec<(usize, usize)> = Vec::new();
    if text.contains("PRIVATE KEY") || text.contains("PuTTY") || text.contains("AGE-SECRET") {
        for h in detect::private_keys(text) {
            let li = line_of(h.start);
            let (line, col) = map(li, h.start - starts[li]);
            covered.push((li, line_of(h.end.saturating_sub(1))));
            let s = Site {
                line,
                col,
                ..site.clone()
            };
            ctx.emit(h.rule, &s, &text[h.start..h.end], h.what.to_owned());
        }
    }
    let may = detect::may_contain_secret(text);
    let has_aws_id = text.contains("AKIA") || text.contains("ASIA");
    let hint = CRED_HINT.is_match(text);
    if !may && !hint {
        // Nothing a detector or a key-name rule could report: one pass over
        // the text decided it (most files of a repository end here).
        return;
    }
    let sops_like = text.contains("ENC[AES256_GCM");
    // `- name: DB_PASSWORD` followed by `value: …` (env lists in templates
    // that did not parse): the name is the key of the value line.
    let mut env_name: Option<(usize, &str)> = None;
    for (li, line) in text.lines().enumerate() {
        if let Some(c) = ENV_NAME_LINE.captures(line) {
            env_name = c.get(1).map(|m| (li, m.as_str()));
        } else if let Some((nli, name)) = env_name
            && li <= nli + 2
            && let Some(c) = ENV_VALUE_LINE.captures(line)
            && let Some(v) = c.get(1)
        {
            let raw = v.as_str().trim_end();
            let val = raw.trim_matches(|ch| ch == '"' || ch == '\'');
            let q = usize::from(raw.len() != val.len());
            let (line_no, col) = map(li, v.start() + q);
            let site = Site {
                line: line_no,
                col,
                ..site.clone()
            };
            check_assignment(ctx, mode, name, val, &site, has_aws_id);
            env_name = None;
            continue;
        }
        if skip.contains(&li) || covered.iter().any(|&(a, b)| li >= a && li <= b) {
            continue;
        }
        let at = |c: usize| {
            let (line, col) = map(li, c);
            Site {
                line,
                col,
                ..site.clone()
            }
        };
        let mut found = false;
        if may {
            for h in detect::all(line) {
                if h.rule == "key/private-key" {
                    continue;
                }
                let rule = jwt_scope(h.rule, line);
                ctx.emit(rule, &at(h.start), &line[h.start..h.end], h.what.to_owned());
                found = true;
            }
        }
        if found || sops_like && line.contains("ENC[") || !CRED_HINT.is_match(line) {
            continue;
        }
        let Some(a) = assignment(line, mode) else {
            if has_aws_id {
                for (s, e) in detect::aws_secret_candidates(line) {
                    ctx.emit(
                        "token/aws-secret-key",
                        &at(s),
                        &line[s..e],
                        "AWS secret access key next to an access key id".to_owned(),
                    );
                }
            }
            continue;
        };
        check_assignment(ctx, mode, a.key, a.value, &at(a.value_col), has_aws_id);
    }
}

fn jwt_scope(rule: &'static str, line: &str) -> &'static str {
    if rule != "token/jwt" {
        return rule;
    }
    let l = line.to_ascii_lowercase();
    if [
        "token",
        "bearer",
        "authorization",
        "auth",
        "secret",
        "password",
        "jwt",
        "key",
    ]
    .iter()
    .any(|w| l.contains(w))
    {
        "token/jwt"
    } else {
        "token/jwt-unscoped"
    }
}

/// Applies key-name rules to one `key = value`.
pub fn check_assignment(
    ctx: &mut Ctx<'_>,
    mode: Mode,
    key: &str,
    value: &str,
    site: &Site,
    has_aws_id: bool,
) {
    let class = classify::classify_key(key);
    let nk = classify::normalise_key(key);
    let aws_named = nk.contains("secretaccesskey") || (nk.contains("aws") && nk.contains("secret"));
    if (aws_named || has_aws_id && class != KeyClass::None)
        && !detect::aws_secret_candidates(value).is_empty()
        && value.trim().len() == 40
    {
        ctx.emit(
            "token/aws-secret-key",
            site,
            value,
            format!("AWS secret access key in `{key}`"),
        );
        return;
    }
    let Some(rule) = mode.assignment_rule() else {
        return;
    };
    match class {
        KeyClass::Strong if classify::is_literal_credential(value) => {
            ctx.emit(
                rule,
                site,
                value,
                format!("credential in `{key}` is a literal value"),
            );
        }
        KeyClass::Weak | KeyClass::Strong if classify::looks_random(value) => {
            ctx.emit(
                "entropy/generic-assignment",
                site,
                value,
                format!("high-entropy value in `{key}`"),
            );
        }
        _ => {}
    }
}

/// One parsed `key = value` on a line.
pub struct Assignment<'l> {
    /// Key text.
    pub key: &'l str,
    /// Value text without quotes.
    pub value: &'l str,
    /// Byte column of the value in the line.
    pub value_col: usize,
}

/// Words without which no key-name rule can fire on a line; a cheap
/// literal pre-filter (compiled to a multi-substring search).
pub static CRED_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)pass|secret|token|key|auth|cred|pwd|salt|cookie|sig|seed|conn|bearer|login|mysql|curl|private|pw|AKIA|ASIA",
    )
    .expect("hint regex")
});

static ENV_NAME_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*-\s+name:\s*["']?([A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*$"#)
        .expect("env name regex")
});
static ENV_VALUE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+value:\s*(\S.*)$").expect("env value regex"));

static ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^\s*(?:export\s+|set\s+|ENV\s+|ARG\s+|-\s+|\$env:|local\s+|readonly\s+|declare\s+(?:-\w+\s+)?|var\s+|let\s+|const\s+)?["']?([A-Za-z_@][A-Za-z0-9_.\-\[\]]*)["']?\s*(:=|=>|=|:|\s)\s*(.*)$"#,
    )
    .expect("assignment regex")
});
static FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|\s)--?([A-Za-z][A-Za-z0-9_\-]*)(?:=|\s+)("[^"]*"|'[^']*'|[^\s"'\\]+)"#)
        .expect("flag regex")
});
static XML: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<([A-Za-z_.\-]*(?i:password|secret|token|apikey)[A-Za-z_.\-]*)>([^<]{4,})</")
        .expect("xml regex")
});
static KV_INLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[;&?\s.=])((?:password|pwd|passwd|secret|token|api[_-]?key|access[_-]?key)[A-Za-z_]*)=([^;&\s'\x22]+)")
        .expect("inline kv regex")
});

fn is_code_ext(path: &str) -> bool {
    let ext = path.rsplit('.').next().unwrap_or("");
    matches!(
        ext,
        "py" | "js"
            | "ts"
            | "go"
            | "java"
            | "rb"
            | "rs"
            | "php"
            | "cs"
            | "kt"
            | "scala"
            | "jsx"
            | "tsx"
            | "c"
            | "cpp"
            | "h"
            | "swift"
            | "groovy"
            | "tf"
            | "hcl"
    )
}

/// Extracts the credential-relevant assignment on a line, if any.
pub fn assignment(line: &str, mode: Mode) -> Option<Assignment<'_>> {
    let trimmed = line.trim_start();
    let slash_comment = trimmed.starts_with("//")
        && trimmed[2..].starts_with(|c: char| c.is_whitespace() || c == '/')
        || trimmed == "//";
    if trimmed.starts_with('#') && !trimmed.starts_with("#ENC") || slash_comment {
        // Comments may hold examples; tokens were already checked.
        return None;
    }
    if let Some(a) = quoted_pair(line) {
        return Some(a);
    }
    if let Some(c) = XML.captures(line) {
        let (k, v) = (c.get(1)?, c.get(2)?);
        return Some(Assignment {
            key: k.as_str(),
            value: v.as_str(),
            value_col: v.start(),
        });
    }
    if let Some(c) = ASSIGN.captures(line) {
        let k = c.get(1)?;
        let sep = c.get(2)?.as_str();
        let raw = c.get(3)?;
        // `key value` (space separator) only for Dockerfile ENV-like lines.
        let spaced_ok = trimmed.starts_with("ENV ") || trimmed.starts_with("ARG ");
        if sep.trim().is_empty() && !spaced_ok {
            return flag_or_inline(line);
        }
        let (value, off) = clean_value(raw.as_str(), mode, sep);
        if let Some(v) = value {
            if classify::classify_key(k.as_str()) == KeyClass::None {
                // `DATABASE_URL=…` is handled by the URL detector; look for an
                // inline `password=` inside the value (JDBC, DSNs).
                return flag_or_inline(line);
            }
            return Some(Assignment {
                key: k.as_str(),
                value: v,
                value_col: raw.start() + off,
            });
        }
        return flag_or_inline(line);
    }
    flag_or_inline(line)
}

static QUOTED_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"["']([A-Za-z_][A-Za-z0-9_.\-]*)["']\s*(?::|=>|,|=)\s*["']([^"']*)["']"#)
        .expect("quoted pair regex")
});
static CLI_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?:\bcurl\b.*?\s(?:-u|--user)\s+["']?[^:\s"']+:([^\s"'@]+)"#,
        r#"|\blogin\b.*?\s-p\s+["']?([^\s"']+)"#,
        r#"|\bmysql(?:dump|admin)?\b.*?\s-p["']?([^\s"'-][^\s"']*)"#,
        r#"|:_(?:authToken|auth|password)\s*=\s*["']?([^\s"']+)"#,
        r#"|\bmachine\s+\S+.*?\bpassword\s+([^\s"']+))"#,
    ))
    .expect("cli secret regex")
});

/// `'PASSWORD': 'x'`, `"apiKey" => "x"`, `define('DB_PASSWORD', 'x')`:
/// quoted key/value pairs anywhere on a line (dict literals, PHP, JSON).
fn quoted_pair(line: &str) -> Option<Assignment<'_>> {
    QUOTED_PAIR.captures_iter(line).find_map(|c| {
        let (k, v) = (c.get(1)?, c.get(2)?);
        (classify::classify_key(k.as_str()) != KeyClass::None).then(|| Assignment {
            key: k.as_str(),
            value: v.as_str(),
            value_col: v.start(),
        })
    })
}

fn flag_or_inline(line: &str) -> Option<Assignment<'_>> {
    if let Some(c) = CLI_SECRET.captures(line)
        && let Some(v) = (1..=5).find_map(|i| c.get(i))
    {
        return Some(Assignment {
            key: "password",
            value: v.as_str(),
            value_col: v.start(),
        });
    }
    for c in FLAG.captures_iter(line) {
        let (Some(k), Some(v)) = (c.get(1), c.get(2)) else {
            continue;
        };
        if classify::classify_key(k.as_str()) == KeyClass::Strong {
            let val = v.as_str().trim_matches(|ch| ch == '"' || ch == '\'');
            return Some(Assignment {
                key: k.as_str(),
                value: val,
                value_col: v.start(),
            });
        }
    }
    let c = KV_INLINE.captures(line)?;
    let (k, v) = (c.get(1)?, c.get(2)?);
    Some(Assignment {
        key: k.as_str(),
        value: v.as_str(),
        value_col: v.start(),
    })
}

/// Strips quotes, trailing commas and comments. Returns `None` for values
/// that are code, not literals (function calls, variables) in code files.
fn clean_value<'r>(raw: &'r str, mode: Mode, sep: &str) -> (Option<&'r str>, usize) {
    let lead = raw.len() - raw.trim_start().len();
    let r = raw.trim();
    if let Some(q) = r
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'' || *c == '`')
    {
        let inner = &r[1..];
        return match inner.find(q) {
            Some(end) => (Some(&inner[..end]), lead + 1),
            None => (Some(inner.trim_end_matches([',', ';'])), lead + 1),
        };
    }
    let mut v = r;
    if let Some(i) = v.find(" #") {
        v = &v[..i];
    }
    let mut v = v.trim().trim_end_matches([',', ';']);
    if sep == "=" && mode != Mode::Dotenv {
        // Shell-like `VAR=value command …`: the value ends at whitespace.
        v = v.split_whitespace().next().unwrap_or("");
    }
    let code_like = v.contains('(')
        || v.contains('[')
        || v.starts_with('[')
        || v.starts_with('{')
        || v.starts_with('&')
        || v.starts_with('!')
        || v.starts_with('|')
        || v.starts_with('>')
        || (v.contains('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    if code_like || v.is_empty() {
        return (None, 0);
    }
    if matches!(mode, Mode::Generic) && CODE_FILE.with(|c| *c.borrow()) {
        return (None, 0);
    }
    (Some(v), lead)
}

thread_local! {
    /// Whether the current file is source code (unquoted values are then
    /// identifiers, not literals). Set per file by the scanner.
    static CODE_FILE: std::cell::RefCell<bool> = const { std::cell::RefCell::new(false) };
}

/// Marks the current thread's file as code or not; see [`CODE_FILE`].
pub fn set_code_file(path: &str) {
    CODE_FILE.with(|c| *c.borrow_mut() = is_code_ext(path));
}

static SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\s*)(data|stringData):\s*(?:#.*)?$").expect("section regex"));
static YAML_KV: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(\s*)["']?([^\s:"'#][^:"']*)["']?:\s+(.+?)\s*$"#).expect("yaml kv regex")
});

/// Fallback for YAML/JSON that does not parse: generic line scan, plus
/// indentation-based detection of `data`/`stringData` entries in documents
/// that declare `kind: Secret`.
pub fn scan_fallback(ctx: &mut Ctx<'_>, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let mut secret_lines = Vec::new();
    let mut doc_start = 0;
    let is_sep = |l: &str| l.starts_with("---");
    for end in (0..=lines.len()).filter(|&i| i == lines.len() || is_sep(lines[i])) {
        let doc = &lines[doc_start..end];
        let is_secret = doc
            .iter()
            .any(|l| l.trim() == "kind: Secret" || l.trim() == "\"kind\": \"Secret\",");
        let is_sops = doc.iter().any(|l| l.starts_with("sops:"));
        if is_secret && !is_sops {
            let mut section: Option<usize> = None;
            for (i, l) in doc.iter().enumerate() {
                let li = doc_start + i;
                if let Some(c) = SECTION.captures(l) {
                    section = Some(c.get(1).map_or(0, |m| m.as_str().len()));
                    continue;
                }
                let Some(ind) = section else { continue };
                let cur = l.len() - l.trim_start().len();
                if !l.trim().is_empty() && cur <= ind {
                    section = None;
                    continue;
                }
                if let Some(c) = YAML_KV.captures(l) {
                    let (Some(k), Some(v)) = (c.get(2), c.get(3)) else {
                        continue;
                    };
                    let val = v.as_str().trim_matches(|ch| ch == '"' || ch == '\'');
                    if classify::is_indirection(val) || val == "|" || val == ">" {
                        continue;
                    }
                    let site = Site {
                        line: li + 1,
                        col: v.start() + 1,
                        ..Site::default()
                    };
                    ctx.emit(
                        "k8s/secret-plaintext",
                        &site,
                        val,
                        format!(
                            "Secret value `{}` in clear (file did not parse; found by line scan)",
                            k.as_str().trim()
                        ),
                    );
                    secret_lines.push(li);
                }
            }
        }
        doc_start = end + 1;
    }
    sops::demand_encryption(ctx, text.contains("\nsops:") || text.contains("\"sops\":"));
    scan_lines(
        ctx,
        text,
        Mode::Generic,
        &|l, c| (l + 1, c + 1),
        &Site::default(),
        &secret_lines,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments() {
        let a = assignment("export DB_PASSWORD=\"s3cr3t-Val\" # x", Mode::Generic).unwrap();
        assert_eq!((a.key, a.value), ("DB_PASSWORD", "s3cr3t-Val"));
        let a = assignment("API_TOKEN=abc%def%ghi", Mode::Dotenv).unwrap();
        assert_eq!(a.value, "abc%def%ghi");
        let a = assignment("  \"password\": \"hunter2x\",", Mode::Generic).unwrap();
        assert_eq!(a.value, "hunter2x");
        let a = assignment("mysql --password=Zr9qK2wL host", Mode::Generic).unwrap();
        assert_eq!((a.key, a.value), ("password", "Zr9qK2wL"));
        let a = assignment(
            "jdbc:postgresql://db/app?user=app&password=Zr9qK2wL",
            Mode::Generic,
        )
        .unwrap();
        assert_eq!(a.value, "Zr9qK2wL");
        assert!(assignment("# password=abcdefgh", Mode::Generic).is_none());
    }
}
