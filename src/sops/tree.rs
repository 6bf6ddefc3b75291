//! The ordered document tree every format is parsed into.
//!
//! Design note: sops' integrity check (the MAC) hashes leaves in document
//! order and its additional data is the key path, so the tree must keep key
//! order, duplicate keys and comments exactly as read. A `Vec` of items (not
//! a map) does that. Plaintext strings and comments are held in
//! [`SecretString`]/[`SecretBytes`], and `Debug` on [`Value`] never prints a
//! scalar, so a tree in an error or a log line cannot leak a secret.

use std::fmt;

use crate::secret::{ExposeSecret, REDACTED, SecretBytes, SecretString};

/// One YAML document, or the single document of any other format.
pub type Branch = Vec<Item>;

/// An entry of a map: a key with its value, or a comment line that sits
/// between entries (sops encrypts comments too, so they are tree items).
#[derive(Clone, PartialEq)]
pub enum Item {
    /// `key: value`.
    Pair(String, Value),
    /// A comment line (text after the comment marker).
    Comment(SecretString),
}

/// A node of the tree. Scalars carry their sops type because the type is
/// written into each `ENC[...]` value and decides the bytes under the MAC.
#[derive(Clone)]
pub enum Value {
    /// `null` / `~` / JSON `null`: never encrypted, never hashed.
    Null,
    /// A string (`type:str`).
    Str(SecretString),
    /// A 64-bit integer (`type:int`).
    Int(i64),
    /// A double (`type:float`).
    Float(f64),
    /// A boolean (`type:bool`, plaintext `True`/`False`).
    Bool(bool),
    /// A YAML timestamp (`type:time`), held as its canonical RFC 3339 text.
    Time(SecretString),
    /// Raw bytes: binary files and `type:bytes` values.
    Bytes(SecretBytes),
    /// An ordered map.
    Map(Vec<Item>),
    /// A sequence; may contain [`Value::Comment`] entries.
    List(Vec<Value>),
    /// A comment inside a sequence.
    Comment(SecretString),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Str(a), Str(b)) | (Time(a), Time(b)) | (Comment(a), Comment(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            // Bitwise so NaN equals itself in round-trip tests.
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Bool(a), Bool(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (List(a), List(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Map(items) => f.debug_tuple("Map").field(items).finish(),
            Value::List(items) => f.debug_tuple("List").field(items).finish(),
            other => write!(f, "{}({REDACTED})", other.type_name()),
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Keys are never encrypted by sops, so they are not secret.
            Item::Pair(k, v) => write!(f, "{k:?}: {v:?}"),
            Item::Comment(_) => write!(f, "Comment({REDACTED})"),
        }
    }
}

impl Value {
    /// A string value from plain text.
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(SecretString::new(s.into()))
    }

    /// The sops `type:` label of a scalar (`str`, `int`, ...); containers
    /// return a descriptive name used only in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Str(_) => "str",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Time(_) => "time",
            Value::Bytes(_) => "bytes",
            Value::Map(_) => "map",
            Value::List(_) => "list",
            Value::Comment(_) => "comment",
        }
    }

    /// The canonical plaintext bytes sops encrypts and hashes for a scalar
    /// (Go `ToBytes`): decimal ints, shortest floats without exponent,
    /// `True`/`False`. `None` for null and containers.
    pub fn to_plain_bytes(&self) -> Option<SecretBytes> {
        Some(match self {
            Value::Str(s) | Value::Time(s) | Value::Comment(s) => {
                SecretBytes::from(s.expose_secret().as_bytes())
            }
            Value::Int(i) => SecretBytes::new(i.to_string().into_bytes()),
            Value::Float(x) => SecretBytes::new(format_float_plain(*x).into_bytes()),
            Value::Bool(b) => SecretBytes::from(if *b { &b"True"[..] } else { &b"False"[..] }),
            Value::Bytes(b) => b.clone(),
            Value::Null | Value::Map(_) | Value::List(_) => return None,
        })
    }

    /// Whether this is a map or a list.
    pub fn is_container(&self) -> bool {
        matches!(self, Value::Map(_) | Value::List(_))
    }

    /// Looks a key up in a map value (first match, as sops does).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(items) => get(items, key),
            _ => None,
        }
    }
}

/// First value under `key` in a map's items.
pub fn get<'a>(items: &'a [Item], key: &str) -> Option<&'a Value> {
    items.iter().find_map(|i| match i {
        Item::Pair(k, v) if k == key => Some(v),
        _ => None,
    })
}

/// Go `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits,
/// never an exponent. Rust's `Display` has the same contract except for
/// exact ties between two shortest candidates, which Go breaks toward the
/// even digit (575655153062164.25 prints `...164.2` in Go, `...164.3` in
/// Rust); the MAC covers these bytes, so the Go choice is rebuilt here.
pub fn format_float_plain(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, exp) = shortest_digits(x);
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    let n = digits.len() as i32;
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if exp + 1 >= n {
        out.push_str(&digits);
        for _ in 0..(exp + 1 - n) {
            out.push('0');
        }
    } else {
        let (a, b) = digits.split_at((exp + 1) as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
    out
}

/// Shortest round-trip digits and decimal exponent of a finite non-zero
/// float: value = d1.d2d3... × 10^exp, with Go's tie-breaking.
fn shortest_digits(x: f64) -> (String, i32) {
    // `{:e}` prints the shortest round-trip mantissa, e.g. "1.234568e9".
    let s = format!("{:e}", x.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let last = digits.as_bytes()[digits.len() - 1] - b'0';
    if last % 2 == 1 && digits.len() > 1 {
        // Is the exact value the midpoint between this candidate and the
        // one below (or above)? Then Go takes the even neighbour.
        let exact = format!("{:.800e}", x.abs());
        let (em, ee) = exact.split_once('e').unwrap_or((&exact, "0"));
        if ee.parse::<i32>().ok() == Some(exp) {
            let ed: String = em.chars().filter(|c| c.is_ascii_digit()).collect();
            let ed = ed.trim_end_matches('0');
            let head = &digits[..digits.len() - 1];
            for alt in [last - 1, last + 1] {
                if alt > 9 {
                    continue;
                }
                let mid = format!("{head}{}5", last.min(alt));
                let cand = format!("{head}{alt}");
                let back: Option<f64> = format!("{}.{}e{exp}", &cand[..1], &cand[1..]).parse().ok();
                if ed == mid && back == Some(x.abs()) {
                    digits = cand;
                    break;
                }
            }
        }
    }
    (digits, exp)
}

fn format_exp(neg: bool, digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs().to_string();
    for _ in e.len()..min_exp_digits {
        out.push('0');
    }
    out.push_str(&e);
    out
}

/// Go `FormatFloat(v, 'g', -1, 64)` as go-yaml emits floats:
/// `1234568000` → `1.234568e+09`, `1.5` → `1.5`, `1.0` → `1`.
pub fn format_float_go_g(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format_float_plain(x);
    }
    let (digits, exp) = shortest_digits(x);
    // strconv: for shortest output the switch to %e happens at exp < -4 or
    // exp >= 6, whatever the digit count.
    if !(-4..6).contains(&exp) {
        return format_exp(x < 0.0, &digits, exp, 2);
    }
    format_float_plain(x)
}

/// Go `encoding/json` float text: `'f'` form between 1e-6 and 1e21,
/// otherwise `'e'` with a minimal exponent (`1e+21`, `1e-7`).
pub fn format_float_json(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format_float_plain(x);
    }
    let a = x.abs();
    if !(1e-6..1e21).contains(&a) {
        let (digits, exp) = shortest_digits(x);
        return format_exp(x < 0.0, &digits, exp, 1);
    }
    format_float_plain(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_formats_match_go() {
        assert_eq!(format_float_plain(1234568000.0), "1234568000");
        assert_eq!(format_float_plain(1.0), "1");
        assert_eq!(format_float_plain(0.0000001), "0.0000001");
        assert_eq!(format_float_go_g(1234568000.0), "1.234568e+09");
        assert_eq!(format_float_go_g(1.5), "1.5");
        assert_eq!(format_float_go_g(1.0), "1");
        assert_eq!(format_float_go_g(100000.0), "100000");
        assert_eq!(format_float_go_g(1e6), "1e+06");
        assert_eq!(format_float_go_g(0.0001), "0.0001");
        assert_eq!(format_float_go_g(0.00001), "1e-05");
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(1e-7), "1e-7");
        assert_eq!(format_float_json(25.4), "25.4");
        // Exact tie between two shortest candidates (the double nearest to
        // this literal is exactly ...164.25): Go takes the even digit.
        assert_eq!(format_float_plain(575655153062164.2), "575655153062164.2");
        assert_eq!(
            format_float_go_g(575655153062164.2),
            "5.756551530621642e+14"
        );
        assert_eq!(format_float_plain(-12.5), "-12.5");
        assert_eq!(format_float_plain(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn debug_of_tree_is_redacted() {
        let v = Value::Map(vec![
            Item::Pair("password".into(), Value::str("hunter2")),
            Item::Comment("secret note".into()),
            Item::Pair("n".into(), Value::Int(424242)),
        ]);
        let d = format!("{v:?}");
        assert!(!d.contains("hunter2") && !d.contains("secret note") && !d.contains("424242"));
        assert!(d.contains("password"));
    }
}
