//! The rule catalogue: ids, default severities and descriptions.
//!
//! Design note: one table feeds the engine (default severity), the SARIF
//! output (`tool.driver.rules`), `docs/lint.md` and the config validator, so
//! a rule cannot exist in one place and be unknown in another. Rule ids are
//! part of the public contract (configs, inline allows and baselines name
//! them) and never change meaning.

use super::Severity;

/// Static metadata about one rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, `area/name`.
    pub id: &'static str,
    /// Severity unless the config overrides it.
    pub severity: Severity,
    /// One-line description (SARIF `shortDescription`).
    pub title: &'static str,
    /// What to do about it (SARIF `help`).
    pub help: &'static str,
}

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

/// Every rule the gate knows.
pub const RULES: &[Rule] = &[
    Rule {
        id: "k8s/secret-plaintext",
        severity: E,
        title: "Kubernetes Secret with data in clear (base64 is not encryption)",
        help: "Encrypt the Secret with `sealgate encrypt`/sops, or replace it with an ExternalSecret or SealedSecret.",
    },
    Rule {
        id: "kustomize/secret-generator-plaintext",
        severity: E,
        title: "kustomize secretGenerator with literals or files in clear",
        help: "Use a sops-encrypted env file (ksops) or an ExternalSecret instead of literals.",
    },
    Rule {
        id: "k8s/configmap-credential",
        severity: E,
        title: "Credential stored in a ConfigMap",
        help: "Move the value to a Secret managed by sealgate/ESO and reference it.",
    },
    Rule {
        id: "k8s/env-literal-credential",
        severity: E,
        title: "Credential as a literal container env value",
        help: "Use env[].valueFrom.secretKeyRef instead of value.",
    },
    Rule {
        id: "k8s/annotation-credential",
        severity: E,
        title: "Credential in a metadata annotation",
        help: "Annotations are readable by anyone who can list the object; remove the credential.",
    },
    Rule {
        id: "k8s/kubeconfig-credential",
        severity: E,
        title: "kubeconfig with an embedded token, password or client key",
        help: "Use an exec credential plugin or short-lived tokens; never commit kubeconfig credentials.",
    },
    Rule {
        id: "k8s/dockerconfig-auth",
        severity: E,
        title: "Docker registry credentials (auths) in clear",
        help: "Create the pull secret from an encrypted source or a credential helper.",
    },
    Rule {
        id: "helm/values-credential",
        severity: E,
        title: "Credential in Helm values",
        help: "Use the chart's existingSecret option or a sops-encrypted values file.",
    },
    Rule {
        id: "dotenv/credential",
        severity: E,
        title: "Credential in a .env file",
        help: "Keep .env files out of Git or encrypt them with sops.",
    },
    Rule {
        id: "externalsecret/template-literal",
        severity: E,
        title: "ExternalSecret template with a literal credential",
        help: "Reference the fetched value with a {{ .key }} template instead.",
    },
    Rule {
        id: "generic/credential-literal",
        severity: E,
        title: "Credential-named key assigned a literal value",
        help: "Read the value from a secret store or an environment variable at run time.",
    },
    Rule {
        id: "sops/plaintext-leaf",
        severity: E,
        title: "sops file with a value that its rules require to be encrypted left in clear",
        help: "Re-encrypt the file with `sealgate encrypt` / `sops -e`; plaintext was added after encryption.",
    },
    Rule {
        id: "sops/missing-metadata",
        severity: E,
        title: "File that should be sops-encrypted has missing or damaged sops metadata",
        help: "Encrypt the file; a damaged sops block cannot be decrypted and proves nothing.",
    },
    Rule {
        id: "key/private-key",
        severity: E,
        title: "Private key (PEM, OpenSSH, PGP, age, PuTTY)",
        help: "Remove the key, rotate it, and store it encrypted.",
    },
    Rule {
        id: "url/embedded-credentials",
        severity: E,
        title: "Password embedded in a URL",
        help: "Pass the password separately, from a secret.",
    },
    Rule {
        id: "token/aws-access-key",
        severity: E,
        title: "AWS access key id",
        help: "Deactivate the key in IAM and use IRSA/instance roles or a secret store.",
    },
    Rule {
        id: "token/aws-secret-key",
        severity: E,
        title: "AWS secret access key",
        help: "Deactivate the key pair in IAM and rotate it.",
    },
    Rule {
        id: "token/github",
        severity: E,
        title: "GitHub token",
        help: "Revoke the token on GitHub and use a secret store.",
    },
    Rule {
        id: "token/gitlab",
        severity: E,
        title: "GitLab token",
        help: "Revoke the token in GitLab and use a secret store.",
    },
    Rule {
        id: "token/slack",
        severity: E,
        title: "Slack token or webhook URL",
        help: "Revoke the token or webhook in Slack.",
    },
    Rule {
        id: "token/stripe",
        severity: E,
        title: "Stripe live secret key",
        help: "Roll the key in the Stripe dashboard.",
    },
    Rule {
        id: "token/google-api-key",
        severity: E,
        title: "Google API key or OAuth client secret",
        help: "Delete or restrict the key in the Google Cloud console.",
    },
    Rule {
        id: "token/azure-storage",
        severity: E,
        title: "Azure storage key, shared access key or SAS signature",
        help: "Rotate the account key / revoke the SAS.",
    },
    Rule {
        id: "token/sendgrid",
        severity: E,
        title: "SendGrid API key",
        help: "Delete the key in SendGrid.",
    },
    Rule {
        id: "token/twilio",
        severity: E,
        title: "Twilio API key",
        help: "Delete the key in Twilio.",
    },
    Rule {
        id: "token/npm",
        severity: E,
        title: "npm access token",
        help: "Revoke the token on npmjs.com.",
    },
    Rule {
        id: "token/pypi",
        severity: E,
        title: "PyPI upload token",
        help: "Revoke the token on pypi.org.",
    },
    Rule {
        id: "token/openai",
        severity: E,
        title: "OpenAI API key",
        help: "Revoke the key.",
    },
    Rule {
        id: "token/anthropic",
        severity: E,
        title: "Anthropic API key",
        help: "Revoke the key.",
    },
    Rule {
        id: "token/hashicorp-vault",
        severity: E,
        title: "Vault/OpenBao or Terraform Cloud token",
        help: "Revoke the token (`vault token revoke`).",
    },
    Rule {
        id: "token/digitalocean",
        severity: E,
        title: "DigitalOcean token",
        help: "Revoke the token.",
    },
    Rule {
        id: "token/shopify",
        severity: E,
        title: "Shopify access token",
        help: "Revoke the token.",
    },
    Rule {
        id: "token/databricks",
        severity: E,
        title: "Databricks token",
        help: "Revoke the token.",
    },
    Rule {
        id: "token/huggingface",
        severity: E,
        title: "Hugging Face token",
        help: "Revoke the token.",
    },
    Rule {
        id: "token/grafana",
        severity: E,
        title: "Grafana service-account or cloud token",
        help: "Revoke the token.",
    },
    Rule {
        id: "token/telegram",
        severity: E,
        title: "Telegram bot token",
        help: "Revoke the token with BotFather.",
    },
    Rule {
        id: "token/discord",
        severity: E,
        title: "Discord webhook URL",
        help: "Delete the webhook.",
    },
    Rule {
        id: "token/jwt",
        severity: E,
        title: "JSON Web Token in a credential slot",
        help: "Tokens are bearer credentials; fetch them at run time.",
    },
    Rule {
        id: "token/jwt-unscoped",
        severity: W,
        title: "JSON Web Token outside a credential slot",
        help: "Check whether the token is still valid; test fixtures should use expired or unsigned tokens.",
    },
    Rule {
        id: "entropy/generic-assignment",
        severity: W,
        title: "High-entropy value under a key that may name a credential",
        help: "If this is a credential, move it to a secret store; otherwise allow it inline with a reason.",
    },
];

/// Looks up a rule by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}
