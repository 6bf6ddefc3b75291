//! Classifiers shared by every rule: is this key credential-named, is this
//! value a literal or an indirection, how random does it look.
//!
//! Design note: most false alarms in peer tools sit on GitOps constructs a
//! classifier can recognise deterministically (templating placeholders,
//! references to other objects, sops ciphertext, hashes). These functions are
//! the single place that knowledge lives, so the structural walk and the line
//! scanner agree.

use std::sync::LazyLock;

use regex::Regex;

/// How strongly a key name says "the value is a credential".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyClass {
    /// Not credential-named.
    None,
    /// Loosely credential-named (`*Key`, `salt`, `cookie`): only a random-
    /// looking value is reported, and only as a warning.
    Weak,
    /// Credential-named (`password`, `token`, `apiKey`, `clientSecret`…): any
    /// literal value is a finding.
    Strong,
}

/// Suffixes (on the normalised key) that make a credential-sounding key a
/// reference, a setting or metadata rather than the credential itself.
const NON_CREDENTIAL_SUFFIXES: &[&str] = &[
    "name",
    "names",
    "ref",
    "refs",
    "reference",
    "file",
    "files",
    "filepath",
    "filename",
    "path",
    "paths",
    "dir",
    "directory",
    "url",
    "uri",
    "urls",
    "endpoint",
    "env",
    "envvar",
    "var",
    "variable",
    "field",
    "policy",
    "length",
    "minlength",
    "ttl",
    "expiry",
    "expiration",
    "expires",
    "expiresat",
    "enabled",
    "enable",
    "disabled",
    "required",
    "type",
    "types",
    "mode",
    "format",
    "version",
    "keyid",
    "hash",
    "sha",
    "sha256",
    "digest",
    "checksum",
    "header",
    "headername",
    "limit",
    "count",
    "size",
    "max",
    "min",
    "timeout",
    "interval",
    "duration",
    "lifetime",
    "rotation",
    "algorithm",
    "alg",
    "method",
    "provider",
    "providers",
    "source",
    "store",
    "backend",
    "mount",
    "engine",
    "role",
    "issuer",
    "audience",
    "scope",
    "scopes",
    "prefix",
    "suffix",
    "encoding",
    "generator",
    "charset",
    "rotate",
    "secretkeyref",
    "passwordkey",
    "usernamekey",
    "tokenkey",
    "userkey",
    "passwordsecret",
    "tokensecret",
    "existingsecret",
    "secretstore",
    "secretsmanager",
    "manager",
    "keyvault",
    "keystore",
    "truststore",
    "authentication",
    "authorization",
    "authenticator",
    "authmethod",
    "tokenizer",
    "tokens",
    "description",
    "help",
    "label",
    "annotation",
    "annotations",
    "selector",
    "template",
    "regex",
    "pattern",
    "location",
    "class",
    "kind",
    "id",
    "ids",
    "user",
    "username",
    "login",
    "email",
    "secrets",
    "seconds",
    "secs",
    "minutes",
    "mins",
    "hours",
    "days",
    "millis",
    "ms",
    "namespace",
    "namespaces",
    "group",
    "owner",
    "labels",
    "service",
    "host",
    "hostname",
    "port",
    "server",
    "address",
    "mountpath",
    "volume",
    "container",
    "image",
    "configmap",
    "certificate",
    "cert",
    "crt",
    "pub",
    "public",
    "sid",
];

/// Keys that are never credentials even though they contain a word that is.
const NON_CREDENTIAL_KEYS: &[&str] = &[
    "publishablekey",
    "stripepublishablekey",
    "automountserviceaccounttoken",
    "serviceaccounttoken",
    "imagepullsecrets",
    "secretkeyref",
    "secretref",
    "secretname",
    "secretstoreref",
    "passwordauthentication",
    "passwordless",
    "tokenreview",
    "bypass",
    "compass",
    "keys",
    "key",
    "publickey",
    "pubkey",
    "sshpublickey",
    "primarykey",
    "foreignkey",
    "sortkey",
    "partitionkey",
    "cachekey",
    "hashkey",
    "routingkey",
    "idempotencykey",
    "monkey",
    "turkey",
    "hotkey",
    "keyboard",
    "keyring",
];

const STRONG_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "apisecret",
    "accesskey",
    "secretkey",
    "privatekey",
    "credential",
    "creds",
    "authkey",
    "authtoken",
    "connectionstring",
    "connstring",
    "connstr",
    "erlangcookie",
    "masterkey",
    "encryptionkey",
    "signingkey",
    "hmackey",
    "sharedkey",
    "accountkey",
    "sasl",
    "htpasswd",
    "bearer",
];

/// Lower-cases and strips everything but ASCII letters and digits, so
/// `DB_PASSWORD`, `dbPassword` and `db-password` compare equal. Only the part
/// after the last `/` counts (annotation keys carry a DNS prefix).
pub fn normalise_key(key: &str) -> String {
    let last = key.rsplit('/').next().unwrap_or(key);
    last.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Substrings without which no key classifies as credential-like; also
/// used on whole files to skip the structural pass when nothing could fire.
pub static KEY_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)pass|secret|token|key|cred|auth|salt|cookie|sig|seed|pwd|pw|conn|bearer|sasl")
        .expect("key hint regex")
});

/// Classifies a key name.
pub fn classify_key(key: &str) -> KeyClass {
    // Fast path: most keys (`name`, `image`, `labels`) contain none of the
    // words any class needs; one multi-substring search, no allocation.
    if !KEY_HINT.is_match(key) {
        return KeyClass::None;
    }
    let k = normalise_key(key);
    if k.is_empty()
        || NON_CREDENTIAL_KEYS.contains(&k.as_str())
        || k.contains("publishable")
        || k.contains("public")
        || k.contains("fingerprint")
    {
        return KeyClass::None;
    }
    if NON_CREDENTIAL_SUFFIXES.iter().any(|s| k.ends_with(s)) {
        // `apiKeyName`, `passwordFile`, `tokenUrl`: about a credential, not one.
        // Exception: `*pass` suffixes handled below never reach here.
        return KeyClass::None;
    }
    if STRONG_WORDS.iter().any(|w| k.contains(w))
        || k.ends_with("pass")
        || k.ends_with("pwd")
        || k == "pw"
        || k.ends_with("pw") && key.contains(['_', '-'])
    {
        return KeyClass::Strong;
    }
    if k.ends_with("key")
        || k.contains("auth")
        || k.contains("salt")
        || k.contains("cookie")
        || k.contains("signature")
        || k.ends_with("seed")
    {
        return KeyClass::Weak;
    }
    KeyClass::None
}

static PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "changeit",
    "replaceme",
    "todo",
    "tbd",
    "fixme",
    "placeholder",
    "redacted",
    "example",
    "sample",
    "dummy",
    "none",
    "null",
    "nil",
    "undefined",
    "notset",
    "unset",
    "secret",
    "password",
    "token",
    "apikey",
    "xxx",
    "hidden",
    "masked",
    "omitted",
    "empty",
    "default",
    "required",
    "optional",
    "bearer",
    "basic",
    "oauth",
    "oauth2",
    "jwt",
    "plain",
    "disabled",
    "enabled",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
];

static PLACEHOLDER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^(?:",
        r"\$[A-Za-z_][A-Za-z0-9_.:\-]*",         // $VAR, Argo CD $secret:key refs
        r"|<[^<>]*>",                              // <your-token>, <path:...>
        r"|%\(?[A-Za-z_]*\)?s",                  // %s, %(name)s
        r"|(?:your|insert|enter|put|add|fill|my)[-_ .]?.*(?:here|password|passwd|token|key|secret|value|pass)",
        r"|(?:some|test|fake|mock|foo|bar)[-_]?(?:password|passwd|token|secret|key|value|pass)",
        r"|(?:change|replace|update|set)[-_ .]?(?:me|it|this)(?:[-_ .].*)?",
        r"|%[A-Za-z_][A-Za-z0-9_.]*%",             // %VAR% (Windows, Octopus)
        r"|\{[A-Za-z_][A-Za-z0-9_.:\-]*\}",       // {password}, {env:X}
        r"|__[A-Za-z0-9_]+__|@@[A-Za-z0-9_]+@@",   // __TOKEN__ substitution markers
        r"|\[\[.*\]\]",                            // [[ .Env.X ]]
        r"|[*]+|[x]+|[.]+|[-]+|[_]+|[#]+|[0]+|[?]+",
        r")$"
    ))
    .expect("placeholder regex")
});

static REFERENCE_PREFIXES: &[&str] = &[
    "enc[",
    "{cipher}",
    "$ansible_vault",
    "vault:v1:",
    "ref+",
    "vault:",
    "vault://",
    "awssm:",
    "awssm://",
    "awsssm:",
    "sm://",
    "gcpsm://",
    "azkv:",
    "azurekeyvault://",
    "op://",
    "bw:",
    "doppler:",
    "arn:aws:secretsmanager:",
    "arn:aws:ssm:",
    "arn:aws:kms:",
    "secret://",
    "file://",
    "env://",
    "k8s://",
    "secretref:",
    "@microsoft.keyvault(",
    "pk_live_",
    "pk_test_",
];

/// Whether `v` is a placeholder, a template, a reference to a secret stored
/// elsewhere, or ciphertext: anything that is not the credential itself.
pub fn is_indirection(v: &str) -> bool {
    let t = v.trim().trim_matches(|c| c == '"' || c == '\'');
    if t.is_empty() {
        return true;
    }
    if t.contains("${")
        || t.contains("$(")
        || t.contains("{{")
        || t.contains("}}")
        || t.contains("<%")
        || t.contains("#{")
        || t.contains("((")
        || t.contains("%{")
    {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    if REFERENCE_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    if lower.starts_with("projects/") && lower.contains("/secrets/") {
        return true;
    }
    if lower.contains("example") {
        return true;
    }
    let squashed: String = lower.chars().filter(char::is_ascii_alphanumeric).collect();
    if PLACEHOLDER_WORDS.contains(&squashed.as_str()) {
        return true;
    }
    // Filler runs are typed in one case (`xxxx`, `XXXX`); a mixed-case run
    // inside a random token is not a placeholder.
    if t.contains("xxxx") || t.contains("XXXX") || t.contains("****") || t.contains("....") {
        return true;
    }
    PLACEHOLDER_RE.is_match(t)
}

/// Whether `v` is a setting rather than a secret: a boolean, a number, a
/// duration, a path, a URL without credentials, an env-var name, prose.
pub fn is_non_secret_literal(v: &str) -> bool {
    let t = v.trim();
    if t.parse::<f64>().is_ok() {
        return true;
    }
    static DURATION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\d+(?:ms|s|m|h|d|w|y)$|^(?:\d+[hms])+$").expect("duration regex")
    });
    if DURATION.is_match(t) {
        return true;
    }
    if t.starts_with('/')
        || t.starts_with("./")
        || t.starts_with("../")
        || t.starts_with("~/")
        || t.starts_with("C:\\")
    {
        // Base64 can start with `/`: a long segment mixing upper case, lower
        // case and digits is random data, not a directory name.
        let random_segment = t.split(['/', '\\']).any(|seg| {
            seg.len() >= 12
                && seg.bytes().any(|b| b.is_ascii_uppercase())
                && seg.bytes().any(|b| b.is_ascii_lowercase())
                && seg.bytes().any(|b| b.is_ascii_digit())
        });
        return !t.contains(' ') && !random_segment;
    }
    static REL_PATH: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-z0-9_.\-]+(?:/[a-z0-9_.\-]+)+/?$").expect("path regex"));
    if REL_PATH.is_match(t) {
        return true;
    }
    if (t.starts_with("http://") || t.starts_with("https://")) && !t.contains('@') {
        return true;
    }
    static ENV_NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$").expect("env regex"));
    if ENV_NAME.is_match(t) {
        return true;
    }
    // A Kubernetes object name that names a secret (`app-api-key`,
    // `db-credentials`): a reference, not the value.
    static K8S_NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:[-.][a-z0-9]+)+$").expect("k8s name regex"));
    if K8S_NAME.is_match(t)
        && ["secret", "key", "token", "cred", "password", "tls", "auth"]
            .iter()
            .any(|w| t.contains(w))
    {
        return true;
    }
    // Prose: three or more words of letters (descriptions, help texts).
    let words = t.split_whitespace().count();
    if words >= 3
        && t.split_whitespace().all(|w| {
            w.chars()
                .all(|c| c.is_alphabetic() || ",.;:'()-".contains(c))
        })
    {
        return true;
    }
    false
}

/// A literal under a credential-named key that should be reported.
pub fn is_literal_credential(v: &str) -> bool {
    let t = v.trim();
    t.chars().count() >= 6 && !is_indirection(t) && !is_non_secret_literal(t)
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether `v` looks randomly generated, with thresholds per charset
/// (documented in docs/lint.md): hex ≥ 3.0 bits/char over ≥ 20 chars,
/// base64/alphanumeric ≥ 3.7 over ≥ 16 chars with letters and digits mixed,
/// other printable text ≥ 3.5 over ≥ 12 chars.
pub fn looks_random(v: &str) -> bool {
    let t = v.trim();
    let len = t.len();
    if !(12..=1024).contains(&len)
        || t.contains(' ')
        || is_indirection(t)
        || is_uuid(t)
        || is_non_secret_literal(t)
    {
        return false;
    }
    let h = entropy(t);
    let hex = t.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        // 40/64 hex characters are digests, git SHAs and PGP fingerprints
        // far more often than keys; credential-named keys still catch keys.
        return len >= 20 && h >= 3.0 && len != 40 && len != 64;
    }
    let b64 = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b));
    let has_digit = t.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = t.bytes().any(|b| b.is_ascii_alphabetic());
    if b64 {
        return len >= 16 && h >= 3.7 && has_digit && has_alpha;
    }
    h >= 3.5
}

/// Canonical UUID text (8-4-4-4-12 hex).
pub fn is_uuid(v: &str) -> bool {
    static UUID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
            .expect("uuid regex")
    });
    UUID.is_match(v.trim())
}

/// Redacted preview: the first four characters, an ellipsis and the length —
/// and no characters at all for values shorter than 12, where four would
/// give away too large a share.
pub fn preview(v: &str) -> String {
    let n = v.chars().count();
    if n >= 12 {
        let head: String = v.chars().take(4).collect();
        format!("{head}…({n} chars)")
    } else {
        format!("…({n} chars)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for k in [
            "password",
            "DB_PASSWORD",
            "dbPassword",
            "api_key",
            "apiKey",
            "clientSecret",
            "GITHUB_TOKEN",
            "aws_secret_access_key",
            "SMTP_PASS",
            "erlangCookie",
            "connectionString",
            "example.com/api-token",
        ] {
            assert_eq!(classify_key(k), KeyClass::Strong, "{k}");
        }
        for k in [
            "existingSecret",
            "secretName",
            "passwordFile",
            "DB_PASSWORD_FILE",
            "tokenUrl",
            "passwordKey",
            "secretKeyRef",
            "image",
            "name",
            "automountServiceAccountToken",
            "max_tokens",
            "publicKey",
        ] {
            assert_eq!(classify_key(k), KeyClass::None, "{k}");
        }
        assert_eq!(classify_key("license_key"), KeyClass::Weak);
    }

    #[test]
    fn indirections() {
        for v in [
            "${DB_PASSWORD}",
            "$(cat /run/secret)",
            "{{ .Values.password }}",
            "<path:secret/data/db#password>",
            "ref+vault://secret/db#/password",
            "ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]",
            "changeme",
            "REPLACE_ME",
            "<your-token>",
            "********",
            "your-password-here",
            "$DB_PASSWORD",
            "",
        ] {
            assert!(is_indirection(v), "{v}");
        }
        for v in ["Winter-river-Orange50", "hunter2hunter2", "p4ss!word"] {
            assert!(!is_indirection(v), "{v}");
            assert!(is_literal_credential(v), "{v}");
        }
        for v in ["/var/run/secrets/db", "true", "3600", "30s", "DB_PASSWORD"] {
            assert!(!is_literal_credential(v), "{v}");
        }
    }

    #[test]
    fn randomness() {
        assert!(looks_random("9fK2xQ7LmB4zR8tW1vY6"));
        assert!(!looks_random("aaaaaaaaaaaaaaaaaaaa"));
        assert!(!looks_random("123e4567-e89b-12d3-a456-426614174000"));
    }

    #[test]
    fn preview_never_shows_whole_short_values() {
        assert_eq!(preview("hunter2"), "…(7 chars)");
        assert_eq!(preview("ghp_0123456789abcdef"), "ghp_…(20 chars)");
    }
}
