//! Context-free detectors: known token formats, private keys, credentials in
//! URLs. They run on every scalar of a parsed document and on every line of
//! text, so a provider token is caught wherever it sits.
//!
//! Design note: each format is anchored on a documented prefix (and length
//! and charset), never on entropy alone; documentation example values and
//! obviously fake fillers are accepted. A `RegexSet` over the whole input
//! decides first which detectors can match at all, so clean files (most of
//! a repository) cost one pass.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::classify;

/// One match of a detector inside a string.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Rule id.
    pub rule: &'static str,
    /// Byte range of the secret inside the scanned string.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// Human description of what was found.
    pub what: &'static str,
}

struct TokenRule {
    rule: &'static str,
    what: &'static str,
    re: &'static str,
}

/// Token formats, anchored on their documented prefixes. Group 1, when
/// present, is the secret part.
const TOKENS: &[TokenRule] = &[
    TokenRule {
        rule: "token/aws-access-key",
        what: "AWS access key id",
        re: r"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16})\b",
    },
    TokenRule {
        rule: "token/github",
        what: "GitHub token",
        re: r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b",
    },
    TokenRule {
        rule: "token/gitlab",
        what: "GitLab token",
        re: r"\b((?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glsoat|gloas)-[A-Za-z0-9_\-]{20,}|GR1348941[A-Za-z0-9_\-]{20,})",
    },
    TokenRule {
        rule: "token/slack",
        what: "Slack token",
        re: r"\b(xox[abposr]-[0-9]{1,16}-[0-9A-Za-z\-]{10,}|xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]{20,})",
    },
    TokenRule {
        rule: "token/slack",
        what: "Slack webhook URL",
        re: r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,}/[A-Za-z0-9]{6,}/[A-Za-z0-9]{16,})",
    },
    TokenRule {
        rule: "token/stripe",
        what: "Stripe live key",
        re: r"\b((?:sk|rk)_live_[0-9A-Za-z]{20,}|whsec_[A-Za-z0-9]{32,})\b",
    },
    TokenRule {
        rule: "token/google-api-key",
        what: "Google API key",
        re: r"\b(AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)",
    },
    TokenRule {
        rule: "token/google-api-key",
        what: "Google OAuth client secret",
        re: r"\b(GOCSPX-[A-Za-z0-9_\-]{28})",
    },
    TokenRule {
        rule: "token/azure-storage",
        what: "Azure storage account key",
        re: r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
    },
    TokenRule {
        rule: "token/azure-storage",
        what: "Azure shared access key",
        re: r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{43}=)",
    },
    TokenRule {
        rule: "token/azure-storage",
        what: "Azure SAS signature",
        re: r"[?&]sv=\d{4}-\d{2}-\d{2}&[^\s'\x22]*?\bsig=([A-Za-z0-9%+/]{40,}(?:%3D|=)*)",
    },
    TokenRule {
        rule: "token/sendgrid",
        what: "SendGrid API key",
        re: r"\b(SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})\b",
    },
    TokenRule {
        rule: "token/twilio",
        what: "Twilio API key",
        re: r"\b(SK[0-9a-f]{32})\b",
    },
    TokenRule {
        rule: "token/npm",
        what: "npm access token",
        re: r"\b(npm_[A-Za-z0-9]{36})\b",
    },
    TokenRule {
        rule: "token/pypi",
        what: "PyPI upload token",
        re: r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})",
    },
    TokenRule {
        rule: "token/openai",
        what: "OpenAI API key",
        re: r"\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}T3BlbkFJ[A-Za-z0-9_\-]{16,})",
    },
    TokenRule {
        rule: "token/anthropic",
        what: "Anthropic API key",
        re: r"\b(sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{80,})",
    },
    TokenRule {
        rule: "token/hashicorp-vault",
        what: "Vault/OpenBao token",
        re: r"\b(hv[sbr]\.[A-Za-z0-9_\-]{24,})",
    },
    TokenRule {
        rule: "token/digitalocean",
        what: "DigitalOcean token",
        re: r"\b(do[por]_v1_[a-f0-9]{64})\b",
    },
    TokenRule {
        rule: "token/shopify",
        what: "Shopify token",
        re: r"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
    },
    TokenRule {
        rule: "token/databricks",
        what: "Databricks token",
        re: r"\b(dapi[a-f0-9]{32}(?:-\d)?)\b",
    },
    TokenRule {
        rule: "token/huggingface",
        what: "Hugging Face token",
        re: r"\b(hf_[A-Za-z]{34})\b",
    },
    TokenRule {
        rule: "token/grafana",
        what: "Grafana token",
        re: r"\b(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})",
    },
    TokenRule {
        rule: "token/telegram",
        what: "Telegram bot token",
        re: r"\b(\d{8,10}:AA[A-Za-z0-9_\-]{33})\b",
    },
    TokenRule {
        rule: "token/discord",
        what: "Discord webhook URL",
        re: r"(https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]{60,})",
    },
    TokenRule {
        rule: "token/azure-ad-client-secret",
        what: "Azure AD (Entra ID) client secret",
        re: r"(?:^|[^A-Za-z0-9_~.\-])([A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?:[^A-Za-z0-9_~.\-]|$)",
    },
    TokenRule {
        rule: "token/mailgun",
        what: "Mailgun API key",
        re: r"\b(key-[0-9a-f]{32})\b",
    },
    TokenRule {
        rule: "token/mailchimp",
        what: "Mailchimp API key",
        re: r"\b([0-9a-f]{32}-us[0-9]{1,2})\b",
    },
    TokenRule {
        rule: "token/newrelic",
        what: "New Relic user API key",
        re: r"\b(NRAK-[A-Z0-9]{27})\b",
    },
    TokenRule {
        rule: "token/square",
        what: "Square access token or secret",
        re: r"\b(sq0(?:atp|csp)-[0-9A-Za-z_\-]{22,43}|EAAA[A-Za-z0-9_\-]{60})\b",
    },
    TokenRule {
        rule: "token/postman",
        what: "Postman API key",
        re: r"\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
    },
    TokenRule {
        rule: "token/linear",
        what: "Linear API key",
        re: r"\b(lin_api_[A-Za-z0-9]{40})\b",
    },
    TokenRule {
        rule: "token/doppler",
        what: "Doppler token",
        re: r"\b(dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44})\b",
    },
    TokenRule {
        rule: "token/pulumi",
        what: "Pulumi access token",
        re: r"\b(pul-[a-f0-9]{40})\b",
    },
    TokenRule {
        rule: "token/hashicorp-vault",
        what: "Terraform Cloud token",
        re: r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70})",
    },
    TokenRule {
        rule: "token/alibaba",
        what: "Alibaba Cloud AccessKey id",
        re: r"\b(LTAI[A-Za-z0-9]{20})\b",
    },
    TokenRule {
        rule: "token/jwt",
        what: "JSON Web Token",
        re: r"\b(eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,})",
    },
];

struct Compiled {
    set: RegexSet,
    regexes: Vec<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let pats: Vec<&str> = TOKENS.iter().map(|t| t.re).collect();
    Compiled {
        set: RegexSet::new(&pats).expect("token regex set"),
        regexes: pats
            .iter()
            .map(|p| Regex::new(p).expect("token regex"))
            .collect(),
    }
});

/// Cheap pre-filter: does `text` contain anything a detector could report?
/// Callers skip per-value scanning of a clean file.
pub fn may_contain_secret(text: &str) -> bool {
    static KEYWORDS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"PRIVATE KEY|AGE-SECRET-KEY-1|PuTTY-User-Key-File|://[^\s/@]*:[^\s@]*@")
            .expect("keyword regex")
    });
    COMPILED.set.is_match(text) || KEYWORDS.is_match(text)
}

/// All token-format hits in `s`.
pub fn tokens(s: &str) -> Vec<Hit> {
    let c = &*COMPILED;
    let mut out = Vec::new();
    for idx in c.set.matches(s).iter() {
        let tr = &TOKENS[idx];
        for caps in c.regexes[idx].captures_iter(s) {
            let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            if is_fake_token(tr.rule, m.as_str()) {
                continue;
            }
            out.push(Hit {
                rule: tr.rule,
                start: m.start(),
                end: m.end(),
                what: tr.what,
            });
        }
    }
    out.sort_by_key(|h| h.start);
    out
}

/// The jwt.io sample token's signature: documentation, not a credential.
const JWT_IO_SAMPLE_SIG: &str = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// Documentation examples and obvious fillers (`ghp_XXXX…`, `AKIA…EXAMPLE`).
fn is_fake_token(rule: &str, tok: &str) -> bool {
    let lower = tok.to_ascii_lowercase();
    if lower.contains("example")
        || lower.contains("xxxxxxxx")
        || lower.contains("00000000")
        || lower.contains("1234567")
        || lower.contains("abcdefg")
        || lower.contains("1234-5678")
    {
        return true;
    }
    if rule == "token/jwt" && tok.ends_with(JWT_IO_SAMPLE_SIG) {
        return true;
    }
    // The random part of a real token is high-entropy; `ghp_aaaa…` or
    // `sk_live_1234567890…` sequences are fillers.
    let body = tok.rsplit(['_', '-', '.']).next().unwrap_or(tok);
    let body = if body.len() >= 16 { body } else { tok };
    classify::entropy(body) < 3.0 || is_sequential(body)
}

fn is_sequential(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b.windows(2)
            .all(|w| w[1] == w[0].wrapping_add(1) || (w[0] == b'9' && w[1] == b'0'))
}

/// A private-key block or private-key token in `s`.
pub fn private_keys(s: &str) -> Vec<Hit> {
    static PEM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----",
        )
        .expect("pem regex")
    });
    static AGE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b")
            .expect("age regex")
    });
    static PUTTY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"PuTTY-User-Key-File-\d: ").expect("putty regex"));
    let mut out = Vec::new();
    for m in PEM.find_iter(s) {
        // A real key has a body; documentation shows `...`.
        let rest = &s[m.end()..];
        let body_end = rest.find("-----END").unwrap_or(rest.len().min(8192));
        let body = &rest[..body_end];
        let b64 = body
            .replace("\\n", "")
            .bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            .count();
        if b64 >= 40 && !body.contains("...") && !body.contains('…') {
            out.push(Hit {
                rule: "key/private-key",
                start: m.start(),
                end: (m.end() + body_end).min(s.len()),
                what: "PEM private key",
            });
        }
    }
    for m in AGE.find_iter(s) {
        if !classify::is_indirection(m.as_str()) && classify::entropy(m.as_str()) > 4.0 {
            out.push(Hit {
                rule: "key/private-key",
                start: m.start(),
                end: m.end(),
                what: "age secret key",
            });
        }
    }
    for m in PUTTY.find_iter(s) {
        if s[m.end()..].contains("Private-Lines:") {
            out.push(Hit {
                rule: "key/private-key",
                start: m.start(),
                end: s.len().min(m.end() + 200),
                what: "PuTTY private key",
            });
        }
    }
    out
}

/// `scheme://user:password@host` with a literal password.
pub fn url_credentials(s: &str) -> Vec<Hit> {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://([^\s:@/'"<>{}\[\]]*):([^\s@/'"<>]{1,256})@[A-Za-z0-9.\-_\[\]]+"#,
        )
        .expect("url regex")
    });
    let mut out = Vec::new();
    for caps in URL.captures_iter(s) {
        let Some(pw) = caps.get(2) else { continue };
        let p = pw.as_str();
        let decoded = p.replace("%40", "@");
        if classify::is_indirection(&decoded)
            || p.starts_with('$')
            || p.starts_with('%')
            || (p.starts_with('{') && p.ends_with('}'))
            || p.chars().all(|c| c == '*' || c == 'x' || c == 'X')
            || [
                "pass",
                "pwd",
                "pw",
                "passwd",
                "secret",
                "pass123",
                "admin",
                "root",
                "guest",
                "test",
                "user",
                "foo",
                "bar",
                "p@ssw0rd",
                "passw0rd",
                "1234",
                "12345",
                "123456",
                "mypassword",
                "yourpassword",
                "pa55word",
                "s3cr3t",
            ]
            .contains(&p.to_ascii_lowercase().as_str())
        {
            continue;
        }
        out.push(Hit {
            rule: "url/embedded-credentials",
            start: pw.start(),
            end: pw.end(),
            what: "password embedded in a URL",
        });
    }
    out
}

/// Every context-free hit in `s`, private keys first; overlapping hits are
/// dropped so one secret yields one finding.
pub fn all(s: &str) -> Vec<Hit> {
    let mut hits = private_keys(s);
    hits.extend(tokens(s));
    hits.extend(url_credentials(s));
    let mut kept: Vec<Hit> = Vec::new();
    for h in hits {
        if !kept.iter().any(|k| h.start < k.end && k.start < h.end) {
            kept.push(h);
        }
    }
    kept.sort_by_key(|h| h.start);
    kept
}

/// An AWS secret access key candidate (40 base64 characters, mixed classes),
/// reported only next to an access key id or under an AWS-secret-named key.
pub fn aws_secret_candidates(s: &str) -> Vec<(usize, usize)> {
    static SK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^A-Za-z0-9+/])([A-Za-z0-9+/]{40})(?:[^A-Za-z0-9+/=]|$)")
            .expect("aws secret regex")
    });
    SK.captures_iter(s)
        .filter_map(|c| c.get(1))
        .filter(|m| {
            let v = m.as_str();
            v.bytes().any(|b| b.is_ascii_uppercase())
                && v.bytes().any(|b| b.is_ascii_lowercase())
                && v.bytes().any(|b| b.is_ascii_digit())
                && !v.bytes().all(|b| b.is_ascii_hexdigit())
                && classify::entropy(v) > 4.0
                && !v.to_ascii_lowercase().contains("example")
        })
        .map(|m| (m.start(), m.end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::testdata::*;

    #[test]
    fn real_formats_match() {
        let cases = [
            (AWS_ACCESS_KEY_ID, "token/aws-access-key"),
            ("ghp_R8c2Kq9LmW3zX7vB1nT5yP0sD4fG6hJ2kL9a", "token/github"),
            ("glpat-Xq3vR9tK2mB7wL5zN8cY", "token/gitlab"),
            (
                "xoxb-2931847561-8472910365-Kq9LmW3zX7vB1nT5yP0sD4fG",
                "token/slack",
            ),
            ("sk_live_4fQ9zLm2Xc8VbN1kR7tY3wPa", "token/stripe"),
            (
                "AIzaSyB3kQ9zLm2Xc8VbN1kR7tY3wPa5sD6fG7h",
                "token/google-api-key",
            ),
            ("npm_R8c2Kq9LmW3zX7vB1nT5yP0sD4fG6hJ2kL9a", "token/npm"),
        ];
        for (tok, rule) in cases {
            let hits = tokens(&format!("value: {tok}\n"));
            assert_eq!(hits.len(), 1, "{tok}");
            assert_eq!(hits[0].rule, rule);
        }
    }

    #[test]
    fn docs_examples_and_fillers_do_not_match() {
        for s in [
            AWS_DOCS_EXAMPLE_KEY_ID,
            "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ] {
            assert!(tokens(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn pem_needs_a_body() {
        assert!(private_keys(&format!("{RSA_BEGIN}\n...\n{RSA_END}")).is_empty());
        let body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
        let k = format!("{PKCS8_BEGIN}\n{body}\n{PKCS8_END}");
        assert_eq!(private_keys(&k).len(), 1);
        assert!(private_keys("-----BEGIN CERTIFICATE-----\nMIIB\n").is_empty());
        assert!(private_keys("-----BEGIN AGE ENCRYPTED FILE-----\n").is_empty());
    }

    #[test]
    fn url_passwords() {
        assert_eq!(
            url_credentials("postgres://app:Zq8-ww3LpR@db:5432/app").len(),
            1
        );
        assert_eq!(url_credentials("redis://:Zq8ww3LpR@cache:6379").len(), 1);
        assert!(url_credentials("postgres://app:${DB_PASSWORD}@db/app").is_empty());
        assert!(url_credentials("https://user:<password>@host").is_empty());
        assert!(url_credentials("https://example.com/path").is_empty());
    }
}
