//! YAML store: go-yaml v3 semantics on top of saphyr's event parser.
//!
//! Design note: sops parses YAML with go-yaml v3, and that decides both the
//! `type:` of encrypted values and the MAC bytes of clear ones, so scalar
//! typing here imitates go-yaml (YAML 1.1-isms included: `0777` octal,
//! underscores in numbers, timestamps; sops-format.md §8.1). No Rust YAML
//! crate keeps comments in its data model, so comments are found by a
//! lexical scan that skips quoted and block scalars (located through the
//! parser's spans) and attached to the map or list that contains them,
//! using indentation for trailing comments, as go-yaml does. Anchors are
//! expanded, tags dropped, `<<` kept as a key. Output imitates sops'
//! emitter (indent 4, sequences indented under their key, literal blocks
//! for multi-line strings, quoting whatever would re-read as another type)
//! so diffs against sops-written files stay small.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::super::error::SopsError;
use super::super::tree::{Branch, Item, Value, format_float_go_g};
use crate::secret::{ExposeSecret, SecretString};

const MAX_DEPTH: usize = 256;
const INDENT: usize = 4;

fn perr(line: usize, column: usize, message: impl Into<String>) -> SopsError {
    SopsError::Parse {
        format: "yaml",
        line,
        column,
        message: message.into(),
    }
}

// ---------------------------------------------------------------- typing

/// go-yaml v3's resolution of a plain (unquoted, untagged) scalar.
pub fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Ok(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Ok(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Ok(Value::Float(f64::NAN)),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+') {
        return Ok(Value::str(s));
    }
    if let Some(t) = parse_timestamp(s) {
        return Ok(Value::Time(SecretString::new(t)));
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return Ok(match i {
            GoInt::I(v) => Value::Int(v),
            GoInt::U => {
                return Err(
                    "integer does not fit in 64-bit signed range (quote it to keep it as a string)"
                        .into(),
                );
            }
        });
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Ok(Value::Float(f));
    }
    Ok(Value::str(s))
}

enum GoInt {
    I(i64),
    U,
}

/// Go `strconv.ParseInt(s, 0, 64)` (plus the uint64 overflow case).
fn parse_go_int(s: &str) -> Option<GoInt> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, r)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, r)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag <= i64::MAX as u128 + 1 {
            return Some(GoInt::I((mag as i128).wrapping_neg() as i64));
        }
        return None;
    }
    if mag <= i64::MAX as u128 {
        Some(GoInt::I(mag as i64))
    } else if mag <= u64::MAX as u128 {
        Some(GoInt::U)
    } else {
        None
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-') | Some(b'+')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-') | Some(b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn num(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// go-yaml's timestamp forms, returned as Go `time.MarshalText` output
/// (RFC 3339 with trimmed nanoseconds); `None` if not a timestamp.
pub fn parse_timestamp(s: &str) -> Option<String> {
    let (y, r) = num(s, 4, 4)?;
    let r = r.strip_prefix('-')?;
    let (mo, r) = num(r, 1, 2)?;
    let r = r.strip_prefix('-')?;
    let (d, r) = num(r, 1, 2)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let date = format!("{y:04}-{mo:02}-{d:02}");
    if r.is_empty() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let sep = r.chars().next()?;
    let r = &r[sep.len_utf8()..];
    let (h, r) = num(r, 1, 2)?;
    let r = r.strip_prefix(':')?;
    let (mi, r) = num(r, 1, 2)?;
    let r = r.strip_prefix(':')?;
    let (se, mut r) = num(r, 1, 2)?;
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let mut frac = String::new();
    if let Some(f) = r.strip_prefix('.') {
        let n = f.chars().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        frac = f[..n].trim_end_matches('0').to_owned();
        r = &f[n..];
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    let zone = match sep {
        'T' | 't' => {
            if r == "Z" {
                "Z".to_owned()
            } else {
                let sign = r.chars().next()?;
                if sign != '+' && sign != '-' {
                    return None;
                }
                let (zh, zr) = num(&r[1..], 2, 2)?;
                let zr = zr.strip_prefix(':')?;
                let (zm, zr) = num(zr, 2, 2)?;
                if !zr.is_empty() || zh > 23 || zm > 59 {
                    return None;
                }
                if zh == 0 && zm == 0 {
                    "Z".to_owned()
                } else {
                    format!("{sign}{zh:02}:{zm:02}")
                }
            }
        }
        ' ' if r.is_empty() => "Z".to_owned(),
        _ => return None,
    };
    Some(format!("{date}T{h:02}:{mi:02}:{se:02}{frac}{zone}"))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

// ---------------------------------------------------------------- comments

struct Cmt {
    line: usize,
    col: usize,
    text: String,
}

/// Finds `# ...` comments outside quoted and block scalars.
fn scan_comments(
    src: &str,
    quoted: &[(usize, usize, char)],
    blocks: &[(usize, usize)],
) -> Vec<Cmt> {
    let lines: Vec<&str> = src.split('\n').collect();
    // Per line, char ranges covered by quoted scalars.
    let mut covered: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for &(line, col, q) in quoted {
        // Walk from the opening quote to its closing quote.
        let mut l = line;
        let mut c = col + 1;
        let mut start_c = col;
        'outer: while l <= lines.len() {
            let chars: Vec<char> = lines[l - 1].chars().collect();
            while c < chars.len() {
                let ch = chars[c];
                if q == '"' && ch == '\\' {
                    c += 2;
                    continue;
                }
                if ch == q {
                    if q == '\'' && chars.get(c + 1) == Some(&'\'') {
                        c += 2;
                        continue;
                    }
                    covered.entry(l).or_default().push((start_c, c + 1));
                    break 'outer;
                }
                c += 1;
            }
            covered.entry(l).or_default().push((start_c, usize::MAX));
            l += 1;
            c = 0;
            start_c = 0;
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let ln = i + 1;
        if blocks.iter().any(|&(a, b)| ln >= a && ln <= b) {
            continue;
        }
        let ranges = covered.get(&ln);
        let mut prev_ws = true;
        for (c, ch) in line.chars().enumerate() {
            let inside = ranges.is_some_and(|r| r.iter().any(|&(a, b)| c >= a && c < b));
            if ch == '#' && prev_ws && !inside {
                let text: String = line.chars().skip(c + 1).collect();
                out.push(Cmt {
                    line: ln,
                    col: c,
                    text: text.trim_end_matches('\r').to_owned(),
                });
                break;
            }
            prev_ws = ch == ' ' || ch == '\t';
        }
    }
    out
}

// ---------------------------------------------------------------- parse

enum Frame {
    Map {
        items: Vec<Item>,
        key: Option<String>,
        key_line: usize,
        flow: bool,
        anchor: usize,
    },
    Seq {
        items: Vec<Value>,
        flow: bool,
        anchor: usize,
    },
}

struct Builder {
    comments: Vec<Cmt>,
    next: usize,
    anchors: HashMap<usize, Value>,
    stack: Vec<Frame>,
    docs: Vec<Branch>,
    doc_done: bool,
}

impl Builder {
    /// Comments before (`line`, and on `line` itself when `same_line`).
    fn take_comments(&mut self, line: usize, same_line: bool, min_col: usize) -> Vec<SecretString> {
        let mut out = Vec::new();
        while let Some(c) = self.comments.get(self.next) {
            let before = c.line < line || (same_line && c.line == line);
            if !before || c.col < min_col {
                break;
            }
            out.push(SecretString::new(std::mem::take(
                &mut self.comments[self.next].text,
            )));
            self.next += 1;
        }
        out
    }

    fn flush_into_top(&mut self, line: usize, same_line: bool) {
        let comments = match self.stack.last() {
            Some(Frame::Map { .. }) | Some(Frame::Seq { .. }) => {
                self.take_comments(line, same_line, 0)
            }
            None => return,
        };
        match self.stack.last_mut() {
            Some(Frame::Map { items, .. }) => items.extend(comments.into_iter().map(Item::Comment)),
            Some(Frame::Seq { items, .. }) => {
                items.extend(comments.into_iter().map(Value::Comment))
            }
            None => {}
        }
    }

    fn attach(&mut self, v: Value, line: usize, col: usize) -> Result<(), SopsError> {
        match self.stack.last_mut() {
            None => {
                match v {
                    Value::Map(items) => self.docs.push(items),
                    Value::Null => self.docs.push(Vec::new()),
                    _ => {
                        return Err(perr(
                            line,
                            col + 1,
                            "the top level of a sops YAML document must be a mapping",
                        ));
                    }
                }
                self.doc_done = true;
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(v);
                Ok(())
            }
            Some(Frame::Map {
                items,
                key,
                key_line,
                ..
            }) => match key.take() {
                Some(k) => {
                    items.push(Item::Pair(k, v));
                    Ok(())
                }
                None => match v {
                    Value::Str(s) => {
                        *key = Some(s.expose_secret().to_owned());
                        *key_line = line;
                        Ok(())
                    }
                    _ => Err(perr(
                        line,
                        col + 1,
                        "tree contains a non-string key (sops supports string keys only; quote it)",
                    )),
                },
            },
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

/// Parses a YAML stream into one branch per document.
pub fn parse(src: &str) -> Result<Vec<Branch>, SopsError> {
    // Pass 1: events (kept) and scalar positions for the comment scan.
    let mut events = Vec::new();
    let mut quoted = Vec::new();
    let mut blocks = Vec::new();
    for ev in Parser::new_from_str(src) {
        let (e, span) =
            ev.map_err(|e| perr(e.marker().line(), e.marker().col() + 1, e.info().to_owned()))?;
        if let Event::Scalar(_, style, _, _) = &e {
            match style {
                ScalarStyle::SingleQuoted => {
                    quoted.push((span.start.line(), span.start.col(), '\''))
                }
                ScalarStyle::DoubleQuoted => {
                    quoted.push((span.start.line(), span.start.col(), '"'))
                }
                ScalarStyle::Literal | ScalarStyle::Folded => {
                    let end = if span.end.col() == 0 {
                        span.end.line().saturating_sub(1)
                    } else {
                        span.end.line()
                    };
                    blocks.push((span.start.line(), end));
                }
                ScalarStyle::Plain => {}
            }
        }
        events.push((e, span));
    }
    let src_lines: Vec<&str> = src.split('\n').collect();
    let mut b = Builder {
        comments: scan_comments(src, &quoted, &blocks),
        next: 0,
        anchors: HashMap::new(),
        stack: Vec::new(),
        docs: Vec::new(),
        doc_done: false,
    };
    for (e, span) in events {
        let (line, col) = (span.start.line(), span.start.col());
        match e {
            Event::DocumentStart(_) => b.doc_done = false,
            Event::DocumentEnd => {
                if !b.doc_done {
                    b.docs.push(Vec::new());
                }
                // Comments left in a document belong to its top level.
                if let Some(last) = b.docs.last_mut() {
                    while let Some(c) = b.comments.get(b.next) {
                        if c.line > line {
                            break;
                        }
                        last.push(Item::Comment(SecretString::new(c.text.clone())));
                        b.next += 1;
                    }
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if b.expecting_key() {
                    return Err(perr(
                        line,
                        col + 1,
                        "complex (map or list) keys are not supported",
                    ));
                }
                if b.stack.len() >= MAX_DEPTH {
                    return Err(perr(line, col + 1, "nesting too deep"));
                }
                let flow = src_lines
                    .get(line.wrapping_sub(1))
                    .and_then(|l| l.chars().nth(col))
                    .is_some_and(|c| c == '[' || c == '{');
                match b.stack.last() {
                    Some(Frame::Seq { .. }) => b.flush_into_top(line, false),
                    // A block value: comments on its key's line go before
                    // the key (`a: # note` then a nested map).
                    Some(Frame::Map {
                        key: Some(_),
                        key_line,
                        ..
                    }) if !flow => {
                        let kl = *key_line;
                        b.flush_into_top(kl, true);
                    }
                    _ => {}
                }
                b.stack.push(if matches!(e, Event::MappingStart(..)) {
                    Frame::Map {
                        items: Vec::new(),
                        key: None,
                        key_line: 0,
                        flow,
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        flow,
                        anchor,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // go-yaml's foot comments: comment lines between the end of
                // a block collection and the next token belong to the
                // innermost closing collection when indented deeper than
                // that token; otherwise they stay for the next key. A flow
                // collection takes the comment on its closing line.
                let flow = matches!(
                    b.stack.last(),
                    Some(Frame::Map { flow: true, .. }) | Some(Frame::Seq { flow: true, .. })
                );
                let (cs, at_front) = if flow {
                    (b.take_comments(line, true, 0), true)
                } else if b.stack.len() == 1 {
                    (b.take_comments(line, false, 0), false)
                } else {
                    (b.take_comments(line, false, col + 1), false)
                };
                let (v, anchor) = match b.stack.pop() {
                    Some(Frame::Map {
                        mut items,
                        key,
                        anchor,
                        ..
                    }) => {
                        if let Some(k) = key {
                            items.push(Item::Pair(k, Value::Null));
                        }
                        let cs = cs.into_iter().map(Item::Comment);
                        if at_front {
                            items.splice(0..0, cs);
                        } else {
                            items.extend(cs);
                        }
                        (Value::Map(items), anchor)
                    }
                    Some(Frame::Seq {
                        mut items, anchor, ..
                    }) => {
                        let cs = cs.into_iter().map(Value::Comment);
                        if at_front {
                            items.splice(0..0, cs);
                        } else {
                            items.extend(cs);
                        }
                        (Value::List(items), anchor)
                    }
                    None => return Err(perr(line, col + 1, "unbalanced collection end")),
                };
                if anchor != 0 {
                    b.anchors.insert(anchor, v.clone());
                }
                b.attach(v, line, col)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let key_pos = b.expecting_key();
                if key_pos {
                    b.flush_into_top(line, false);
                } else if matches!(b.stack.last(), Some(Frame::Map { .. })) {
                    // A same-line comment after `key: value` goes before
                    // the entry, as sops places it.
                    b.flush_into_top(line, true);
                } else if matches!(b.stack.last(), Some(Frame::Seq { .. })) {
                    // A same-line comment after `- item` goes before the
                    // item, as sops places it.
                    b.flush_into_top(line, true);
                }
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let v = if style == ScalarStyle::Plain && !forced_str {
                    resolve_plain(&text).map_err(|m| perr(line, col + 1, m))?
                } else {
                    Value::str(text.into_owned())
                };
                if key_pos && !matches!(v, Value::Str(_)) {
                    return Err(perr(
                        line,
                        col + 1,
                        "tree contains a non-string key (sops supports string keys only; quote it)",
                    ));
                }
                if anchor != 0 {
                    b.anchors.insert(anchor, v.clone());
                }
                b.attach(v, line, col)?;
            }
            Event::Alias(id) => {
                let v = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| perr(line, col + 1, "alias to an unknown anchor"))?;
                if b.expecting_key() && !matches!(v, Value::Str(_)) {
                    return Err(perr(line, col + 1, "tree contains a non-string key"));
                }
                b.attach(v, line, col)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    Ok(b.docs)
}

// ---------------------------------------------------------------- emit

/// go-yaml cannot print characters outside the BMP (and a few others)
/// unescaped; such strings are double-quoted with escapes.
fn yaml_printable(c: char) -> bool {
    let u = c as u32;
    c == '\n'
        || (0x20..=0x7e).contains(&u)
        || u == 0x85
        || (0xa0..=0xd7ff).contains(&u)
        || ((0xe000..=0xfffd).contains(&u) && u != 0xfeff)
}

/// Would this string read back as another type (or as a YAML 1.1 bool) if
/// written plain? go-yaml double-quotes those.
fn ambiguous(s: &str) -> bool {
    if s.is_empty() || !matches!(resolve_plain(s), Ok(Value::Str(_))) {
        return true;
    }
    const YAML11: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    YAML11.contains(&s)
}

/// Can the string be written plain (syntax-wise)?
fn plain_ok(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if s.ends_with(char::is_whitespace) || s.ends_with(':') || s == "<<" || s == "=" {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains(":\t") || s.contains("\t#") {
        return false;
    }
    s.chars().all(|c| {
        c != '\n'
            && c != '\t'
            && yaml_printable(c)
            && c != '\u{85}'
            && c != '\u{2028}'
            && c != '\u{2029}'
    })
}

fn needs_quotes(s: &str) -> bool {
    ambiguous(s) || !plain_ok(s)
}

fn double_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c if (c as u32) > 0xffff => out.push_str(&format!("\\U{:08X}", c as u32)),
            c if !yaml_printable(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// go-yaml picks single quotes when a string only needs quoting for
/// syntax and every character prints as is; double quotes otherwise.
fn quoted(s: &str, out: &mut String) {
    let single_ok = !ambiguous(s)
        && s.chars().all(|c| {
            c != '\n'
                && c != '\t'
                && c != '\r'
                && (yaml_printable(c) || c == '\u{2028}' || c == '\u{2029}')
        });
    if single_ok {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        double_quote(s, out);
    }
}

fn scalar_key(s: &str, out: &mut String) {
    if needs_quotes(s) {
        quoted(s, out);
    } else {
        out.push_str(s);
    }
}

fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars().all(|c| yaml_printable(c) && c != '\u{85}')
        && !s.lines().any(|l| l.ends_with([' ', '\t']))
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Writes a string value (after `key: ` or `- `); `ind` is the indentation
/// for continuation lines of a literal block.
fn emit_str(s: &str, ind: usize, out: &mut String) {
    if literal_ok(s) {
        let trimmed = s.trim_end_matches('\n');
        let trailing = s.len() - trimmed.len();
        out.push('|');
        match trailing {
            0 => out.push('-'),
            1 => {}
            _ => out.push('+'),
        }
        out.push('\n');
        let body = if trailing > 1 {
            &s[..s.len() - 1]
        } else {
            trimmed
        };
        for l in body.split('\n') {
            if !l.is_empty() {
                pad(out, ind);
                out.push_str(l);
            }
            out.push('\n');
        }
        // The caller adds a newline after every value; undo ours.
        out.pop();
    } else if needs_quotes(s) {
        quoted(s, out);
    } else {
        out.push_str(s);
    }
}

fn emit_scalar(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Str(s) => emit_str(s.expose_secret(), ind, out),
        Value::Bytes(b) => emit_str(&String::from_utf8_lossy(b.expose_secret()), ind, out),
        Value::Time(t) => out.push_str(t.expose_secret()),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if f.is_nan() {
                out.push_str(".nan");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" });
            } else {
                out.push_str(&format_float_go_g(*f));
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Map(m) if m.iter().all(|i| matches!(i, Item::Comment(_))) => out.push_str("{}"),
        Value::List(l) if l.iter().all(|v| matches!(v, Value::Comment(_))) => out.push_str("[]"),
        Value::Map(_) | Value::List(_) | Value::Comment(_) => {}
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Map(m) => m.iter().any(|i| matches!(i, Item::Pair(..))),
        Value::List(l) => l.iter().any(|v| !matches!(v, Value::Comment(_))),
        _ => false,
    }
}

fn emit_comment(c: &SecretString, ind: usize, out: &mut String) {
    pad(out, ind);
    out.push('#');
    out.push_str(c.expose_secret());
    out.push('\n');
}

/// Map items with keys at column `ind` and nested values at `child` (go-yaml
/// indents children of a map inside a list item from the dash, not the
/// key). `first_inline`: the first line is already positioned (after `- `).
fn emit_map(items: &[Item], ind: usize, child: usize, mut first_inline: bool, out: &mut String) {
    for item in items {
        match item {
            Item::Comment(c) => {
                if first_inline {
                    // A comment cannot follow `- ` on the same line; start
                    // the item on the next line instead.
                    out.push('\n');
                    first_inline = false;
                }
                emit_comment(c, ind, out);
            }
            Item::Pair(k, v) => {
                if !first_inline {
                    pad(out, ind);
                }
                first_inline = false;
                if k == "<<" && matches!(v, Value::Map(_)) {
                    // What sops writes for a kept merge key.
                    out.push_str("!!merge <<");
                } else {
                    scalar_key(k, out);
                }
                out.push(':');
                match v {
                    Value::Map(m) if is_block(v) => {
                        out.push('\n');
                        emit_map(m, child, child + INDENT, false, out);
                    }
                    Value::List(l) if is_block(v) => {
                        out.push('\n');
                        emit_list(l, child, out);
                    }
                    _ => {
                        out.push(' ');
                        emit_scalar(v, child, out);
                        out.push('\n');
                        emit_trailing_comments(v, child, out);
                    }
                }
            }
        }
    }
}

fn emit_trailing_comments(v: &Value, ind: usize, out: &mut String) {
    // Comments of an otherwise empty map/list are kept below it.
    match v {
        Value::Map(m) => m.iter().for_each(|i| {
            if let Item::Comment(c) = i {
                emit_comment(c, ind, out)
            }
        }),
        Value::List(l) => l.iter().for_each(|v| {
            if let Value::Comment(c) = v {
                emit_comment(c, ind, out)
            }
        }),
        _ => {}
    }
}

fn emit_list(items: &[Value], ind: usize, out: &mut String) {
    for v in items {
        if let Value::Comment(c) = v {
            emit_comment(c, ind, out);
            continue;
        }
        pad(out, ind);
        out.push_str("- ");
        match v {
            Value::Map(m) if is_block(v) => emit_map(m, ind + 2, ind + INDENT, true, out),
            Value::List(l) if is_block(v) => {
                // Nested list: first element on the dash line.
                let mut nested = String::new();
                emit_list(l, ind + 2, &mut nested);
                out.push_str(nested.trim_start_matches(' '));
            }
            _ => {
                emit_scalar(v, ind + 2, out);
                out.push('\n');
                emit_trailing_comments(v, ind + 2, out);
            }
        }
    }
}

/// Emits a list as a whole YAML document (for `--extract` of a list).
pub fn emit_list_document(items: &[Value]) -> String {
    let mut out = String::new();
    emit_list(items, 0, &mut out);
    out
}

/// Emits documents separated by `---`.
pub fn emit(docs: &[Branch]) -> Result<String, SopsError> {
    let mut out = String::new();
    for (n, d) in docs.iter().enumerate() {
        if n > 0 {
            out.push_str("---\n");
        }
        if d.iter().all(|i| matches!(i, Item::Comment(_))) {
            out.push_str("{}\n");
            for i in d {
                if let Item::Comment(c) = i {
                    emit_comment(c, 0, &mut out);
                }
            }
            continue;
        }
        emit_map(d, 0, INDENT, false, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_yaml_typing() {
        let t = |s: &str| resolve_plain(s).unwrap();
        assert_eq!(t("12345_54321"), Value::Int(1234554321));
        assert_eq!(t("0777"), Value::Int(511));
        assert_eq!(t("0x1F"), Value::Int(31));
        assert_eq!(t("0b101"), Value::Int(5));
        assert_eq!(t("-7"), Value::Int(-7));
        assert_eq!(t("1e3"), Value::Float(1000.0));
        assert_eq!(t("1."), Value::Float(1.0));
        assert_eq!(t("yes"), Value::str("yes"));
        assert_eq!(t("True"), Value::Bool(true));
        assert_eq!(t("~"), Value::Null);
        assert_eq!(t(".5"), Value::str(".5"));
        assert_eq!(t("2024-01-01"), Value::Time("2024-01-01T00:00:00Z".into()));
        assert_eq!(
            t("2006-01-02T15:04:05+07:06"),
            Value::Time("2006-01-02T15:04:05+07:06".into())
        );
        assert_eq!(
            t("2001-12-14 21:59:43.10"),
            Value::Time("2001-12-14T21:59:43.1Z".into())
        );
        assert!(resolve_plain("18446744073709551615").is_err());
        assert_eq!(t("1.2.3"), Value::str("1.2.3"));
        // A multi-byte character where the date/time separator goes.
        assert_eq!(t("2024-01-01é12:00:00"), Value::str("2024-01-01é12:00:00"));
    }

    proptest::proptest! {
        #[test]
        fn scalar_typing_never_panics(
            s in "\\PC{0,24}",
            d in "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\\PC{0,12}",
            n in "[-+]?0[xob]?[0-9a-f_]{0,20}",
        ) {
            for v in [&s, &d, &n] {
                if !v.is_empty() {
                    let _ = resolve_plain(v);
                }
                let mut out = String::new();
                emit_str(v, 4, &mut out);
            }
        }
    }

    #[test]
    fn comments_attach_to_their_map() {
        let src = "# top\na: 1\nb:\n    # inner\n    c: x # inline\n    d: y\n    # trailing inner\n# before e\ne: [1, 2]\n";
        let docs = parse(src).unwrap();
        let d = &docs[0];
        assert!(matches!(&d[0], Item::Comment(c) if c.expose_secret() == " top"));
        let Some(Value::Map(b)) = super::super::super::tree::get(d, "b") else {
            panic!("{d:?}")
        };
        assert!(matches!(&b[0], Item::Comment(c) if c.expose_secret() == " inner"));
        assert!(matches!(&b[1], Item::Comment(c) if c.expose_secret() == " inline"));
        assert!(
            matches!(b.last(), Some(Item::Comment(c)) if c.expose_secret() == " trailing inner")
        );
        assert!(matches!(&d[3], Item::Comment(c) if c.expose_secret() == " before e"));
    }

    #[test]
    fn emit_like_sops_and_reparse() {
        let src = "a: 1\nb:\n  - x\n  - k: v\n    l: w\n  - - n1\n    - n2\ns: \"123\"\nm: |\n  one\n  two\nq: 'it''s # not a comment'\nt: 2024-01-01\nf: 1234568000.0\ne: {}\nz: []\n";
        let docs = parse(src).unwrap();
        let out = emit(&docs).unwrap();
        assert_eq!(
            out,
            "a: 1\nb:\n    - x\n    - k: v\n      l: w\n    - - n1\n      - n2\ns: \"123\"\nm: |\n    one\n    two\nq: 'it''s # not a comment'\nt: 2024-01-01T00:00:00Z\nf: 1.234568e+09\ne: {}\nz: []\n"
        );
        assert_eq!(parse(&out).unwrap(), docs);
    }

    #[test]
    fn multi_document_and_errors() {
        let docs = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(parse("- 1\n").is_err());
        assert!(
            parse("1: x\n")
                .unwrap_err()
                .to_string()
                .contains("non-string key")
        );
        assert!(parse("a: [\n").is_err());
        let e = parse("a: b\n c: d\n").unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
    }

    #[test]
    fn anchors_expand_and_merge_key_is_kept() {
        let docs = parse("base: &b\n    x: 1\nc:\n    <<: *b\n    y: 2\n").unwrap();
        let c = super::super::super::tree::get(&docs[0], "c").unwrap();
        assert_eq!(c.get("<<").and_then(|m| m.get("x")), Some(&Value::Int(1)));
    }
}
