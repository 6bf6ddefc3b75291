//! JSON store: an order- and duplicate-preserving reader and a writer that
//! matches sops' output (Go `json.Indent` with a TAB, Go string escaping).
//!
//! Design note: serde_json's map types would either reorder or merge
//! duplicate keys, and key order is part of the MAC, so this is a small
//! hand-written recursive-descent parser with a depth limit (untrusted
//! input must not overflow the stack).

use super::super::error::SopsError;
use super::super::tree::{Branch, Item, Value, format_float_json};
use crate::secret::ExposeSecret;

const MAX_DEPTH: usize = 256;

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn err(&self, msg: impl Into<String>) -> SopsError {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        SopsError::Parse {
            format: "json",
            line,
            column: col,
            message: msg.into(),
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), SopsError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected `{}`", c as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SopsError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.ws();
        match self.peek() {
            Some(b'{') => Ok(Value::Map(self.object(depth)?)),
            Some(b'[') => {
                self.i += 1;
                let mut list = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Value::List(list));
                }
                loop {
                    list.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(list));
                        }
                        _ => return Err(self.err("expected `,` or `]`")),
                    }
                }
            }
            Some(b'"') => Ok(Value::str(self.string()?)),
            Some(b't') => self.lit("true", Value::Bool(true)),
            Some(b'f') => self.lit("false", Value::Bool(false)),
            Some(b'n') => self.lit("null", Value::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn lit(&mut self, word: &str, v: Value) -> Result<Value, SopsError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value, SopsError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            p.i - s
        };
        let int_digits = digits(self);
        if int_digits == 0 || (int_digits > 1 && self.s[self.i - int_digits] == b'0') {
            return Err(self.err("invalid number"));
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integral = false;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e') | Some(b'E')) {
            self.i += 1;
            integral = false;
            if matches!(self.peek(), Some(b'+') | Some(b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let text =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("invalid number"))?;
        if integral && let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        text.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| self.err("invalid number"))
    }

    fn hex4(&mut self) -> Result<u32, SopsError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let h = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SopsError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                c if c < 0x20 => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in string"))
    }

    fn object(&mut self, depth: usize) -> Result<Vec<Item>, SopsError> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(items);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let k = self.string()?;
            self.expect(b':')?;
            let v = self.value(depth + 1)?;
            items.push(Item::Pair(k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }
}

/// Parses a JSON document whose top level must be an object.
pub fn parse(input: &str) -> Result<Branch, SopsError> {
    let mut p = P {
        s: input.as_bytes(),
        i: 0,
    };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(p.err("the top level of a sops JSON document must be an object"));
    }
    let items = p.object(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing data after the JSON document"));
    }
    Ok(items)
}

/// Go `json.Marshal` string escaping.
pub fn quote(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", ch as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn emit_value(v: &Value, depth: usize, out: &mut String) -> Result<(), SopsError> {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push('\t');
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Str(s) | Value::Time(s) => quote(s.expose_secret(), out),
        Value::Bytes(b) => quote(&String::from_utf8_lossy(b.expose_secret()), out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(SopsError::Unrepresentable {
                    format: "json",
                    message: "NaN or infinity cannot be written as JSON".into(),
                });
            }
            out.push_str(&format_float_json(*f))
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Comment(_) => {}
        Value::List(l) => {
            let l: Vec<&Value> = l
                .iter()
                .filter(|v| !matches!(v, Value::Comment(_)))
                .collect();
            if l.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (n, e) in l.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                emit_value(e, depth + 1, out)?;
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Map(items) => emit_map(items, depth, out)?,
    }
    Ok(())
}

fn emit_map(items: &[Item], depth: usize, out: &mut String) -> Result<(), SopsError> {
    let pairs: Vec<(&String, &Value)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair(k, v) => Some((k, v)),
            Item::Comment(_) => None, // JSON has no comments
        })
        .collect();
    if pairs.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push('{');
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('\n');
        for _ in 0..=depth {
            out.push('\t');
        }
        quote(k, out);
        out.push_str(": ");
        emit_value(v, depth + 1, out)?;
    }
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
    out.push('}');
    Ok(())
}

/// Emits any value (an extracted list) with the same layout, newline at end.
pub fn emit_fragment(v: &Value) -> Result<String, SopsError> {
    let mut out = String::new();
    emit_value(v, 0, &mut out)?;
    out.push('\n');
    Ok(out)
}

/// Emits a document the way sops' JSON store does (TAB indent, newline at end).
pub fn emit(branch: &Branch) -> Result<String, SopsError> {
    let mut out = String::new();
    emit_map(branch, 0, &mut out)?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_duplicates_and_types_survive() {
        let src = "{\"b\": 1, \"a\": [1.5, true, null, \"x<y\"], \"b\": {}, \"e\": []}";
        let t = parse(src).unwrap();
        let out = emit(&t).unwrap();
        assert_eq!(
            out,
            "{\n\t\"b\": 1,\n\t\"a\": [\n\t\t1.5,\n\t\ttrue,\n\t\tnull,\n\t\t\"x\\u003cy\"\n\t],\n\t\"b\": {},\n\t\"e\": []\n}\n"
        );
        assert_eq!(parse(&out).unwrap(), t);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("{\n  \"a\": tru\n}").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(parse("[1]").is_err());
        assert!(parse("{} x").is_err());
        let deep = "{\"a\":".to_string() + &"[".repeat(10_000);
        assert!(parse(&deep).is_err());
    }
}
