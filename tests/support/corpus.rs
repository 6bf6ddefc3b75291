//! A labelled corpus generator: a realistic GitOps repository (manifests,
//! kustomize overlays, Helm values, HelmReleases, Argo CD apps, sops files,
//! SealedSecrets, ExternalSecrets, .env files, scripts, docs) with planted
//! secrets of every rule and look-alike decoys of every accepted kind.
//!
//! Design note: deterministic (SplitMix64 from a seed) so a failing accuracy
//! figure can be reproduced; every planted secret is recorded as a label
//! (path, line, kind) at the line where a reviewer would point; decoys are
//! unlabelled, so any finding on them counts against precision. Shared by
//! the accuracy test (tests/it/corpus.rs) and the benchmark generator
//! (examples/gen_corpus.rs) through `#[path]`.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// Deterministic PRNG (SplitMix64); no dependency, stable across platforms.
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Random string over `charset`.
    pub fn string(&mut self, charset: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| charset[self.below(charset.len())] as char)
            .collect()
    }
    /// Picks one item.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";
const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const WORDS: &[&str] = &[
    "winter", "river", "orange", "falcon", "copper", "meadow", "silent", "harbor", "violet",
    "tiger", "maple", "cobalt", "ember", "glacier", "lantern", "pepper", "quartz", "saddle",
];
const APPS: &[&str] = &[
    "billing",
    "checkout",
    "catalog",
    "auth",
    "search",
    "orders",
    "payments",
    "gateway",
    "inventory",
    "notifier",
    "reports",
    "profile",
];
const ENVS: &[&str] = &["dev", "staging", "prod"];

/// A labelled secret location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    /// Path relative to the corpus root.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What was planted (for per-kind recall reports).
    pub kind: &'static str,
}

/// Generated corpus: files and labels.
#[derive(Default)]
pub struct Corpus {
    /// Path → content.
    pub files: BTreeMap<String, String>,
    /// Planted secrets.
    pub labels: Vec<Label>,
    /// Every full secret value planted (for leak tests).
    pub planted_values: Vec<String>,
}

struct File {
    lines: Vec<String>,
    labels: Vec<(usize, &'static str)>,
}

impl File {
    fn new() -> File {
        File {
            lines: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn push(&mut self, l: impl Into<String>) -> &mut Self {
        for part in l.into().split('\n') {
            self.lines.push(part.to_owned());
        }
        self
    }
    /// Pushes a line and labels it.
    fn plant(&mut self, kind: &'static str, l: impl Into<String>) -> &mut Self {
        let line = self.lines.len() + 1;
        self.labels.push((line, kind));
        self.push(l)
    }
}

impl Corpus {
    fn add(&mut self, path: String, f: File) {
        for (line, kind) in f.labels {
            self.labels.push(Label {
                path: path.clone(),
                line,
                kind,
            });
        }
        let mut text = f.lines.join("\n");
        text.push('\n');
        self.files.insert(path, text);
    }
}

fn b64(data: &[u8]) -> String {
    const T: &[u8] = B64;
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Gen {
    rng: Rng,
    c: Corpus,
}

impl Gen {
    fn password(&mut self) -> String {
        let a = *self.rng.pick(WORDS);
        let b = *self.rng.pick(WORDS);
        let n = self.rng.below(90) + 10;
        let v = match self.rng.below(3) {
            0 => {
                let mut c = b.to_owned();
                c[..1].make_ascii_uppercase();
                format!("{a}-{c}{n}!")
            }
            1 => {
                let n = 16 + self.rng.below(12);
                self.rng.string(ALNUM, n)
            }
            _ => format!("{}{}#{}", a, n, self.rng.string(ALNUM, 8)),
        };
        self.c.planted_values.push(v.clone());
        v
    }
    fn tok(&mut self, v: String) -> String {
        self.c.planted_values.push(v.clone());
        v
    }
    fn pem(&mut self, kind: &str) -> String {
        let mut s = format!("-----BEGIN {kind}PRIVATE KEY-----\n");
        let body = self.rng.string(B64, 64 * 6);
        for chunk in body.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            s.push('\n');
        }
        s.push_str(&format!("-----END {kind}PRIVATE KEY-----"));
        self.c.planted_values.push(body);
        s
    }
    fn aws_id(&mut self) -> String {
        let v = format!("AKIA{}", self.rng.string(UPPER_NUM, 16));
        self.tok(v)
    }
    fn aws_secret(&mut self) -> String {
        let v = self.rng.string(B64, 40);
        self.tok(v)
    }
    fn token(&mut self, kind: &str) -> String {
        let v = match kind {
            "github" => format!("ghp_{}", self.rng.string(ALNUM, 36)),
            "github-fine" => format!(
                "github_pat_{}_{}",
                self.rng.string(ALNUM, 22),
                self.rng.string(ALNUM, 59)
            ),
            "gitlab" => format!("glpat-{}", self.rng.string(ALNUM, 20)),
            "slack" => format!(
                "xoxb-{}-{}-{}",
                self.rng.string(b"0123456789", 11),
                self.rng.string(b"0123456789", 12),
                self.rng.string(ALNUM, 24)
            ),
            "slack-webhook" => format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                self.rng.string(UPPER_NUM, 8),
                self.rng.string(UPPER_NUM, 8),
                self.rng.string(ALNUM, 24)
            ),
            "stripe" => format!("sk_live_{}", self.rng.string(ALNUM, 24)),
            "google" => format!("AIza{}", self.rng.string(ALNUM, 35)),
            "azure" => format!(
                "DefaultEndpointsProtocol=https;AccountName=st{};AccountKey={}==;EndpointSuffix=core.windows.net",
                self.rng.string(b"abcdefghijklmnopqrstuvwxyz", 8),
                self.rng.string(B64, 86)
            ),
            "sendgrid" => format!(
                "SG.{}.{}",
                self.rng.string(ALNUM, 22),
                self.rng.string(ALNUM, 43)
            ),
            "npm" => format!("npm_{}", self.rng.string(ALNUM, 36)),
            "age" => format!(
                "AGE-SECRET-KEY-1{}",
                self.rng.string(BECH32, 58).to_uppercase()
            ),
            "jwt" => format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                self.rng.string(ALNUM, 40),
                self.rng.string(ALNUM, 43)
            ),
            _ => self.rng.string(ALNUM, 32),
        };
        self.tok(v)
    }
    fn uuid(&mut self) -> String {
        let h = self.rng.string(HEX, 32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
    fn enc(&mut self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
            self.rng.string(B64, 24),
            self.rng.string(B64, 43) + "=",
            self.rng.string(B64, 22) + "=="
        )
    }
    fn recipient(&mut self) -> String {
        format!("age1{}", self.rng.string(BECH32, 58))
    }
    fn cert(&mut self) -> String {
        let mut s = "-----BEGIN CERTIFICATE-----\n".to_owned();
        for _ in 0..5 {
            s.push_str(&self.rng.string(B64, 64));
            s.push('\n');
        }
        s.push_str("-----END CERTIFICATE-----");
        s
    }
    fn indent(s: &str, n: usize) -> String {
        let pad = " ".repeat(n);
        s.lines()
            .map(|l| format!("{pad}{l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    // ---------------------------------------------------------------- planted

    fn secret_manifest(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        let pw = self.password();
        let variant = i % 4;
        if variant == 3 {
            // JSON, as `kubectl get -o json` writes it.
            f.push("{")
                .push("  \"apiVersion\": \"v1\",")
                .push("  \"kind\": \"Secret\",");
            f.push(format!(
                "  \"metadata\": {{\"name\": \"{app}-db\", \"namespace\": \"{app}\"}},"
            ));
            f.push("  \"data\": {");
            f.plant(
                "k8s-secret-json",
                format!("    \"password\": \"{}\"", b64(pw.as_bytes())),
            );
            f.push("  }").push("}");
            self.c.add(format!("{dir}/{app}-secret-{i}.json"), f);
            return;
        }
        if variant == 2 {
            f.push(format!("# Source: {app}/templates/configmap.yaml"));
            f.push(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  LOG_LEVEL: info",
            );
            f.push("---")
                .push(format!("# Source: {app}/templates/secret.yaml"));
        }
        f.push("apiVersion: v1")
            .push("kind: Secret")
            .push("metadata:");
        f.push(format!("  name: {app}-credentials"))
            .push(format!("  namespace: {app}"));
        f.push("type: Opaque");
        if variant == 0 {
            f.push("stringData:");
            f.push("  username: app");
            f.plant("k8s-secret-stringdata", format!("  password: \"{pw}\""));
            let user = format!("{app}_user");
            f.plant(
                "k8s-secret-stringdata",
                format!(
                    "  DATABASE_URL: postgres://{user}:{}@db.{app}.svc:5432/{app}",
                    self.password()
                ),
            );
        } else {
            f.push("data:");
            f.plant(
                "k8s-secret-data",
                format!("  password: {}", b64(pw.as_bytes())),
            );
            let key = self.pem("RSA ");
            f.plant(
                "k8s-secret-data-pem",
                format!("  tls.key: {}", b64(key.as_bytes())),
            );
        }
        self.c.add(format!("{dir}/{app}-secret-{i}.yaml"), f);
    }

    fn list_secret(&mut self, dir: &str, app: &str) {
        let mut f = File::new();
        f.push("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: api\n  stringData:");
        let t = self.token("github");
        f.plant("k8s-list-secret", format!("    GITHUB_TOKEN: {t}"));
        self.c.add(format!("{dir}/{app}-list.yaml"), f);
    }

    fn kustomize(&mut self, dir: &str, app: &str) {
        let mut f = File::new();
        f.push("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization");
        f.push(format!("namespace: {app}\nresources:\n- ../../base\nsecretGenerator:\n- name: {app}-db\n  literals:\n  - username=app"));
        let pw = self.password();
        f.plant("kustomize-literal", format!("  - password={pw}"));
        f.push("  envs:\n  - secrets.env\n- name: {app}-api\n  files:".replace("{app}", app));
        f.plant("kustomize-files", "  - token=api-token.txt");
        f.push("configMapGenerator:\n- name: settings\n  literals:\n  - LOG_LEVEL=debug");
        self.c.add(format!("{dir}/kustomization.yaml"), f);
        let mut e = File::new();
        let pw2 = self.password();
        e.plant("dotenv", format!("DB_PASSWORD={pw2}"));
        e.push("DB_HOST=db");
        self.c.add(format!("{dir}/secrets.env"), e);
        let mut t = File::new();
        let tok = self.password();
        t.push(tok);
        self.c.add(format!("{dir}/api-token.txt"), t);
    }

    fn deployment(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        f.push("apiVersion: apps/v1\nkind: Deployment\nmetadata:");
        f.push(format!("  name: {app}\n  namespace: {app}\n  annotations:"));
        let digest = self.rng.string(HEX, 64);
        f.push(format!("    checksum/config: {digest}"));
        if i.is_multiple_of(3) {
            let t = self.password();
            f.plant(
                "annotation",
                format!("    {app}.example.io/api-token: \"{t}\""),
            );
        }
        f.push("spec:\n  replicas: 2\n  template:\n    metadata:\n      labels:");
        f.push(format!(
            "        app: {app}\n    spec:\n      containers:\n      - name: {app}"
        ));
        f.push(format!(
            "        image: registry.local/{app}@sha256:{}",
            self.rng.string(HEX, 64)
        ));
        f.push("        env:\n        - name: LOG_LEVEL\n          value: info");
        f.push(format!(
            "        - name: REQUEST_NAMESPACE\n          value: {}",
            self.uuid()
        ));
        f.push("        - name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef:");
        f.push(format!(
            "              name: {app}-db\n              key: password"
        ));
        match i % 4 {
            0 => {
                f.push("        - name: API_KEY");
                let v = self.password();
                f.plant("env-literal", format!("          value: \"{v}\""));
            }
            1 => {
                f.push("        - name: STRIPE_SECRET_KEY");
                let v = self.token("stripe");
                f.plant("token-stripe", format!("          value: {v}"));
            }
            2 => {
                f.push("        - name: SLACK_WEBHOOK");
                let v = self.token("slack-webhook");
                f.plant("token-slack-webhook", format!("          value: {v}"));
            }
            _ => {
                f.push("        - name: REDIS_URL");
                let v = self.password();
                f.plant(
                    "url-credentials",
                    format!("          value: redis://:{v}@redis:6379/0"),
                );
            }
        }
        f.push("        - name: TOKEN_FROM_ENV\n          value: $(UPSTREAM_TOKEN)");
        f.push(format!(
            "        envFrom:\n        - secretRef:\n            name: {app}-env"
        ));
        self.c.add(format!("{dir}/{app}-deployment-{i}.yaml"), f);
    }

    fn configmap(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        f.push(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-config\ndata:"
        ));
        f.push("  LOG_LEVEL: info\n  FEATURE_X: \"true\"");
        match i % 3 {
            0 => {
                let v = self.password();
                f.plant("configmap-key", format!("  SMTP_PASSWORD: \"{v}\""));
            }
            1 => {
                f.push("  application.properties: |\n    server.port=8080\n    spring.datasource.url=jdbc:postgresql://db:5432/app");
                let v = self.password();
                f.plant(
                    "configmap-embedded",
                    format!("    spring.datasource.password={v}"),
                );
            }
            _ => {
                let v = self.token("sendgrid");
                f.plant("token-sendgrid", format!("  SENDGRID_API_KEY: {v}"));
            }
        }
        f.push("  ca.crt: |");
        let cert = self.cert();
        f.push(Self::indent(&cert, 4));
        self.c.add(format!("{dir}/{app}-configmap-{i}.yaml"), f);
    }

    fn values(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        f.push(format!(
            "replicaCount: 2\nimage:\n  repository: registry.local/{app}\n  tag: {}",
            self.rng.string(HEX, 40)
        ));
        f.push("postgresql:\n  auth:\n    username: app\n    existingSecret: \"\"\n    passwordKey: password");
        let pw = self.password();
        f.plant("helm-values", format!("    postgresPassword: {pw}"));
        if i.is_multiple_of(2) {
            f.push("rabbitmq:\n  auth:");
            let c = self.rng.string(ALNUM, 32);
            let c = self.tok(c);
            f.plant("helm-values", format!("    erlangCookie: {c}"));
        } else {
            f.push("redis:\n  auth:\n    existingSecret: redis-auth\n    existingSecretPasswordKey: redis-password");
            let g = self.token("google");
            f.plant(
                "token-google",
                format!("maps:\n  apiKey: {g}").replace("maps:\n", "maps:\n"),
            );
            // The label above is on the `maps:` line; fix it to the key line.
            if let Some(l) = f.labels.last_mut() {
                l.0 += 1;
            }
        }
        f.push("ingress:\n  enabled: true\n  tls:\n  - secretName: web-tls\n    hosts: [web.example.com]");
        self.c.add(format!("{dir}/values-{}.yaml", ENVS[i % 3]), f);
    }

    fn helmrelease(&mut self, dir: &str, app: &str) {
        let mut f = File::new();
        f.push(format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {app}\n  namespace: {app}\nspec:\n  interval: 10m\n  chart:\n    spec:\n      chart: {app}\n      sourceRef:\n        kind: HelmRepository\n        name: charts\n  values:\n    auth:"));
        let pw = self.password();
        f.plant("helmrelease-values", format!("      adminPassword: {pw}"));
        f.push("  valuesFrom:\n  - kind: Secret\n    name: extra-values");
        self.c.add(format!("{dir}/helmrelease-{app}.yaml"), f);
    }

    fn kubeconfig(&mut self, dir: &str) {
        let mut f = File::new();
        f.push("apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://10.0.0.1:6443");
        f.push(format!(
            "    certificate-authority-data: {}",
            b64(self.cert().as_bytes())
        ));
        f.push("users:\n- name: ci\n  user:");
        let t = self.token("jwt");
        f.plant("kubeconfig-token", format!("    token: {t}"));
        f.push("- name: admin\n  user:");
        let k = self.pem("EC ");
        f.plant(
            "kubeconfig-client-key",
            format!("    client-key-data: {}", b64(k.as_bytes())),
        );
        f.push(
            "contexts:\n- name: prod\n  context: {cluster: prod, user: ci}\ncurrent-context: prod",
        );
        self.c.add(format!("{dir}/kubeconfig"), f);
    }

    fn dockerconfig(&mut self, dir: &str) {
        let mut f = File::new();
        let pw = self.password();
        let auth = b64(format!("ci:{pw}").as_bytes());
        f.push("{\n  \"auths\": {\n    \"registry.example.com\": {");
        f.plant("dockerconfig", format!("      \"auth\": \"{auth}\""));
        f.push("    }\n  }\n}");
        self.c.add(format!("{dir}/docker-config.json"), f);
    }

    fn external_secret_literal(&mut self, dir: &str, app: &str) {
        let mut f = File::new();
        f.push(format!("apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata:\n  name: {app}\nspec:\n  secretStoreRef:\n    name: vault\n    kind: ClusterSecretStore\n  target:\n    template:\n      data:\n        username: \"{{{{ .username }}}}\""));
        let pw = self.password();
        f.plant(
            "externalsecret-template",
            format!("        password: \"{pw}\""),
        );
        f.push("  data:\n  - secretKey: username\n    remoteRef:\n      key: prod/db\n      property: username");
        self.c
            .add(format!("{dir}/{app}-externalsecret-literal.yaml"), f);
    }

    fn sops_leaks(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        f.push(format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {app}-sops\ntype: Opaque\nstringData:"
        ));
        let e = self.enc();
        f.push(format!("  password: {e}"));
        let sops_line = if i.is_multiple_of(2) {
            let pw = self.password();
            f.plant("sops-plaintext-leaf", format!("  api_token: {pw}"));
            None
        } else {
            Some(f.lines.len() + 1)
        };
        f.push("sops:\n  age:");
        let r = self.recipient();
        f.push(format!("  - recipient: {r}\n    enc: |\n      -----BEGIN AGE ENCRYPTED FILE-----\n      {}\n      -----END AGE ENCRYPTED FILE-----", self.rng.string(B64, 60)));
        f.push("  lastmodified: \"2026-11-01T10:00:00Z\"");
        if sops_line.is_none() {
            let m = self.enc();
            f.push(format!("  mac: {m}"));
        } else if let Some(l) = sops_line {
            f.labels.push((l, "sops-damaged"));
        }
        f.push("  encrypted_regex: ^(data|stringData)$\n  version: 3.11.0");
        self.c.add(format!("{dir}/{app}-secret-{i}.enc.yaml"), f);
        // A file the name says is encrypted, committed in clear.
        let mut g = File::new();
        g.plant("sops-missing-metadata", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-plain\ndata:\n  LOG_LEVEL: info"));
        self.c.add(format!("{dir}/{app}-settings-{i}.sops.yaml"), g);
    }

    fn dotenv(&mut self, dir: &str, i: usize) {
        let mut f = File::new();
        f.push(
            "# local development settings\nAPP_ENV=development\nDISCOUNT=50%\nDB_HOST=localhost",
        );
        let pw = self.password();
        f.plant("dotenv", format!("DB_PASSWORD={pw}"));
        let s = self.rng.string(ALNUM, 48);
        let s = self.tok(s);
        f.plant("dotenv", format!("SECRET_KEY=\"{s}\""));
        let (id, sk) = (self.aws_id(), self.aws_secret());
        f.plant("token-aws-id", format!("AWS_ACCESS_KEY_ID={id}"));
        f.plant("token-aws-secret", format!("AWS_SECRET_ACCESS_KEY={sk}"));
        if i.is_multiple_of(2) {
            let t = self.token("gitlab");
            f.plant("token-gitlab", format!("GITLAB_TOKEN={t}"));
        } else {
            let t = self.token("github-fine");
            f.plant("token-github-fine", format!("GH_PAT={t}"));
        }
        f.push("REDIS_URL=redis://localhost:6379");
        let name = if i == 0 {
            ".env".to_owned()
        } else {
            format!(".env.{}", ENVS[i % 3])
        };
        self.c.add(format!("{dir}/{name}"), f);
    }

    fn script(&mut self, dir: &str, i: usize) {
        let mut f = File::new();
        f.push("#!/usr/bin/env bash\nset -euo pipefail\n# deploy helper");
        f.push("REGISTRY=registry.example.com\nexport KUBECONFIG=\"${HOME}/.kube/config\"");
        match i % 5 {
            0 => {
                let t = self.token("slack");
                f.plant("token-slack", format!("export SLACK_BOT_TOKEN={t}"));
            }
            1 => {
                let pw = self.password();
                f.plant(
                    "script-flag",
                    format!("mysql -h db -u root --password='{pw}' -e 'select 1'"),
                );
            }
            2 => {
                let t = self.token("npm");
                f.plant(
                    "token-npm",
                    format!("echo \"//registry.npmjs.org/:_authToken={t}\" > ~/.npmrc"),
                );
            }
            3 => {
                let az = self.token("azure");
                f.plant(
                    "token-azure",
                    format!("export AZURE_STORAGE_CONNECTION_STRING=\"{az}\""),
                );
            }
            _ => {
                let pw = self.password();
                f.plant("script-assignment", format!("export API_TOKEN=\"{pw}\""));
            }
        }
        f.push("kubectl apply -k overlays/prod\necho done");
        self.c.add(format!("{dir}/deploy-{i}.sh"), f);
    }

    fn keys(&mut self, dir: &str, i: usize) {
        let mut f = File::new();
        match i % 3 {
            0 => {
                let k = self.pem("OPENSSH ");
                let first = k.lines().next().unwrap_or("").to_owned();
                f.plant("pem-openssh", first);
                for l in k.lines().skip(1) {
                    f.push(l);
                }
                self.c.add(format!("{dir}/deploy-key-{i}"), f);
            }
            1 => {
                f.push("# created: 2026-10-01T10:00:00Z");
                let r = self.recipient();
                f.push(format!("# public key: {r}"));
                let k = self.token("age");
                f.plant("age-key", k);
                self.c.add(format!("{dir}/age-{i}.agekey"), f);
            }
            _ => {
                f.push("{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo-project\",");
                let k = self.pem("");
                let esc = k.replace('\n', "\\n");
                f.plant("pem-json", format!("  \"private_key\": \"{esc}\","));
                f.push(format!("  \"client_email\": \"ci@demo-project.iam.gserviceaccount.com\",\n  \"client_id\": \"{}\"\n}}", self.rng.string(b"0123456789", 21)));
                self.c.add(format!("{dir}/sa-{i}.json"), f);
            }
        }
    }

    fn app_config(&mut self, dir: &str, app: &str, i: usize) {
        let mut f = File::new();
        f.push(format!(
            "server:\n  port: 8080\n  host: 0.0.0.0\nservice: {app}\nlogging:\n  level: info"
        ));
        f.push("oauth:\n  client_id: web-frontend");
        let s = self.rng.string(ALNUM, 40);
        let s = self.tok(s);
        f.plant("generic-credential", format!("  client_secret: {s}"));
        let sig = self.rng.string(B64, 44);
        let sig = self.tok(sig);
        f.plant("entropy", format!("signing_key: {sig}"));
        let j = self.token("jwt");
        f.plant(
            "token-jwt",
            format!("upstream:\n  auth_token: {j}").replacen("upstream:\n", "upstream:\n", 1),
        );
        if let Some(l) = f.labels.last_mut() {
            l.0 += 1;
        }
        self.c.add(format!("{dir}/{app}-config-{i}.yml"), f);
    }

    fn argo_app(&mut self, dir: &str, app: &str) {
        let mut f = File::new();
        f.push(format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://charts.example.com\n    chart: {app}\n    targetRevision: 1.2.3\n    helm:\n      values: |\n        replicaCount: 2\n        auth:"));
        let pw = self.password();
        f.plant("argo-helm-values", format!("          password: {pw}"));
        f.push(format!(
            "  destination:\n    server: https://kubernetes.default.svc\n    namespace: {app}"
        ));
        self.c.add(format!("{dir}/argo-{app}.yaml"), f);
    }

    // ----------------------------------------------------------------- decoys

    fn decoys(&mut self, dir: &str, app: &str, i: usize) {
        // A sops-encrypted Secret.
        let mut f = File::new();
        f.push(format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {app}-enc\ntype: Opaque\nstringData:"
        ));
        for k in ["password", "api_token", "DATABASE_URL"] {
            let e = self.enc();
            f.push(format!("  {k}: {e}"));
        }
        let r = self.recipient();
        f.push(format!("sops:\n  age:\n  - recipient: {r}\n    enc: |\n      -----BEGIN AGE ENCRYPTED FILE-----\n      {}\n      -----END AGE ENCRYPTED FILE-----", self.rng.string(B64, 60)));
        let m = self.enc();
        f.push(format!("  lastmodified: \"2026-11-01T10:00:00Z\"\n  mac: {m}\n  encrypted_regex: ^(data|stringData)$\n  version: 3.11.0"));
        self.c.add(format!("{dir}/{app}-db-{i}.enc.yaml"), f);

        // sops dotenv.
        let mut f = File::new();
        for k in ["DB_PASSWORD", "API_KEY"] {
            let e = self.enc();
            f.push(format!("{k}={e}"));
        }
        let m = self.enc();
        let r = self.recipient();
        f.push(format!(
            "sops_age__list_0__map_recipient={r}\nsops_mac={m}\nsops_version=3.11.0"
        ));
        self.c.add(format!("{dir}/{app}-{i}.enc.env"), f);

        // SealedSecret.
        let mut f = File::new();
        f.push(format!("apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: {app}-sealed\n  namespace: {app}\nspec:\n  encryptedData:"));
        for k in ["password", "token"] {
            f.push(format!("    {k}: Ag{}", self.rng.string(B64, 300)));
        }
        f.push(format!(
            "  template:\n    metadata:\n      name: {app}-sealed\n    type: Opaque"
        ));
        self.c.add(format!("{dir}/{app}-sealedsecret-{i}.yaml"), f);

        // ExternalSecret with templates.
        let mut f = File::new();
        f.push(format!("apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata:\n  name: {app}-es\nspec:\n  refreshInterval: 1h\n  secretStoreRef:\n    name: vault\n    kind: ClusterSecretStore\n  target:\n    template:\n      data:\n        DATABASE_URL: \"postgres://app:{{{{ .password }}}}@db:5432/app\"\n        password: \"{{{{ .password }}}}\"\n  data:\n  - secretKey: password\n    remoteRef:\n      key: prod/{app}/db\n      property: password\n  dataFrom:\n  - extract:\n      key: prod/{app}/extra"));
        self.c
            .add(format!("{dir}/{app}-externalsecret-{i}.yaml"), f);

        // Empty and service-account-token Secrets, placeholder Secret.
        let mut f = File::new();
        f.push(format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {app}-sa-token\n  annotations:\n    kubernetes.io/service-account.name: {app}\ntype: kubernetes.io/service-account-token\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {app}-empty\ndata: {{}}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {app}-envsubst\nstringData:\n  password: ${{DB_PASSWORD}}\n  token: <path:secret/data/{app}#token>"));
        self.c.add(format!("{dir}/{app}-secrets-safe-{i}.yaml"), f);

        // Values with references, placeholders, digests, UUIDs, public keys.
        let mut f = File::new();
        f.push(format!(
            "global:\n  imageRegistry: registry.local\n  revision: {}\n  requestId: {}",
            self.rng.string(HEX, 40),
            self.uuid()
        ));
        f.push("auth:\n  existingSecret: app-credentials\n  existingSecretPasswordKey: password\n  password: \"\"\n  adminPassword: \"{{ .Values.global.adminPassword }}\"\n  apiToken: REPLACE_ME\n  clientSecret: <your-client-secret>\n  rootPassword: changeme");
        f.push(format!("ssh:\n  knownHosts: github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{}\n  publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} deploy@ci", self.rng.string(B64, 43), self.rng.string(B64, 43)));
        let r = self.recipient();
        f.push(format!("sops:\n  recipient: {r}"));
        f.push(format!(
            "image:\n  digest: sha256:{}",
            self.rng.string(HEX, 64)
        ));
        f.push("docs:\n  awsKeyExample: AKIAIOSFODNN7EXAMPLE\n  awsSecretExample: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n  jwtExample: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
        f.push("database:\n  url: postgres://app:${DB_PASSWORD}@db:5432/app\n  passwordFile: /var/run/secrets/db/password\n  tokenUrl: https://auth.example.com/oauth/token");
        self.c.add(format!("{dir}/values-decoy-{i}.yaml"), f);

        // .env.example with placeholders.
        let mut f = File::new();
        f.push("DB_PASSWORD=\nAPI_TOKEN=your-api-token-here\nSECRET_KEY=changeme\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nDATABASE_URL=postgres://user:password@localhost:5432/app");
        self.c.add(format!("{dir}/.env.example"), f);

        // A Helm template that does not parse as YAML.
        let mut f = File::new();
        f.push("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"app.fullname\" . }}\nstringData:\n{{- range $k, $v := .Values.secrets }}\n  {{ $k }}: {{ $v | quote }}\n{{- end }}");
        self.c.add(format!("{dir}/templates/secret-{i}.yaml"), f);

        // Certificate ConfigMap, checksums, Chart.lock.
        let mut f = File::new();
        let cert = self.cert();
        f.push(format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: trust-bundle\n  annotations:\n    checksum/secret: {}\ndata:\n  ca.crt: |", self.rng.string(HEX, 64)));
        f.push(Self::indent(&cert, 4));
        f.push(format!(
            "  build-id: {}\n  token-ttl: 3600s\n  password-policy: strong",
            self.uuid()
        ));
        self.c.add(format!("{dir}/trust-bundle-{i}.yaml"), f);
        let mut f = File::new();
        f.push(format!("dependencies:\n- name: postgresql\n  repository: https://charts.bitnami.com/bitnami\n  version: 15.5.0\ndigest: sha256:{}\ngenerated: \"2026-10-01T10:00:00Z\"", self.rng.string(HEX, 64)));
        self.c.add(format!("{dir}/Chart-{i}.lock"), f);

        // Docs with truncated keys and placeholders.
        let mut f = File::new();
        f.push("# Setup\n\nCreate the secret:\n\n```sh\nkubectl create secret generic db --from-literal=password=<password>\n```\n\nA key looks like:\n\n```\n-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n```\n\nSet `API_TOKEN=${API_TOKEN}` in CI.");
        self.c.add(format!("{dir}/README-{i}.md"), f);
    }
}

impl Gen {
    /// Bulky clean content (rendered manifests, a dashboard) so a benchmark
    /// corpus has realistic file sizes; no secrets, many look-alikes.
    fn bulk(&mut self, dir: &str, app: &str, kib: usize) {
        let mut f = File::new();
        let mut n = 0;
        while f.lines.iter().map(|l| l.len() + 1).sum::<usize>() < kib * 1024 / 2 {
            f.push(format!("---\n# Source: {app}/templates/deployment-{n}.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}-{n}\n  labels:\n    app.kubernetes.io/name: {app}\n    helm.sh/chart: {app}-1.{n}.0\n  annotations:\n    checksum/config: {}\nspec:\n  template:\n    spec:\n      containers:\n      - name: main\n        image: registry.local/{app}@sha256:{}\n        env:\n        - name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef: {{name: {app}-db, key: password}}\n        - name: TRACE_ID\n          value: {}\n        - name: FEATURE_FLAGS\n          value: \"search,checkout,recommendations\"\n        resources:\n          limits: {{cpu: 500m, memory: 256Mi}}", self.rng.string(HEX, 64), self.rng.string(HEX, 64), self.uuid()));
            n += 1;
        }
        self.c.add(format!("{dir}/rendered-{app}.yaml"), f);
        let mut f = File::new();
        f.push("{\n  \"dashboard\": {\n    \"panels\": [");
        let mut i = 0;
        while f.lines.iter().map(|l| l.len() + 1).sum::<usize>() < kib * 1024 / 2 {
            f.push(format!("      {{\"id\": {i}, \"type\": \"timeseries\", \"title\": \"{app} latency {i}\", \"datasource\": {{\"uid\": \"{}\"}}, \"targets\": [{{\"expr\": \"histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{{app=\\\"{app}\\\"}}[5m])) by (le))\", \"refId\": \"A\"}}]}},", self.rng.string(ALNUM, 9)));
            i += 1;
        }
        f.push("      {\"id\": -1}\n    ]\n  }\n}");
        self.c.add(format!("{dir}/dashboard-{app}.json"), f);
    }
}

/// Generates a corpus with `apps` applications (each adds ~30 files).
pub fn generate(seed: u64, apps: usize) -> Corpus {
    generate_with_bulk(seed, apps, 0)
}

/// Like [`generate`], plus about `bulk_kib` KiB of clean bulk files per app.
pub fn generate_with_bulk(seed: u64, apps: usize, bulk_kib: usize) -> Corpus {
    let mut g = Gen {
        rng: Rng::new(seed),
        c: Corpus::default(),
    };
    for n in 0..apps {
        let app = format!("{}{}", APPS[n % APPS.len()], n / APPS.len());
        let env = ENVS[n % ENVS.len()];
        let base = format!("apps/{app}");
        let ov = format!("apps/{app}/overlays/{env}");
        g.secret_manifest(&base, &app, n);
        if n.is_multiple_of(3) {
            g.list_secret(&base, &app);
        }
        g.kustomize(&ov, &app);
        g.deployment(&base, &app, n);
        g.configmap(&base, &app, n);
        g.values(&format!("charts/{app}"), &app, n);
        g.helmrelease(&format!("clusters/{env}"), &app);
        if n.is_multiple_of(4) {
            g.kubeconfig(&format!("ops/{app}"));
            g.dockerconfig(&format!("ops/{app}"));
        }
        g.external_secret_literal(&base, &app);
        g.sops_leaks(&format!("secrets/{env}"), &app, n);
        g.dotenv(&format!("services/{app}"), n);
        g.script(&format!("scripts/{app}"), n);
        g.keys(&format!("ops/{app}/keys"), n);
        g.app_config(&format!("services/{app}"), &app, n);
        if n.is_multiple_of(2) {
            g.argo_app(&format!("argocd/{env}"), &app);
        }
        g.decoys(&format!("apps/{app}/safe"), &app, n);
        if bulk_kib > 0 {
            g.bulk(&format!("rendered/{app}"), &app, bulk_kib);
        }
    }
    g.c
}

/// Recall/precision of `findings` (path, line) against the labels.
pub struct Score {
    /// Labels found / labels.
    pub recall: f64,
    /// Findings on labelled lines / findings (distinct path+line).
    pub precision: f64,
    /// Labels missed.
    pub missed: Vec<Label>,
    /// Findings on unlabelled lines.
    pub false_positives: Vec<(String, usize)>,
}

/// Scores findings against labels at line granularity.
pub fn score(corpus: &Corpus, findings: &[(String, usize)]) -> Score {
    use std::collections::BTreeSet;
    let labelled: BTreeSet<(&str, usize)> = corpus
        .labels
        .iter()
        .map(|l| (l.path.as_str(), l.line))
        .collect();
    let found: BTreeSet<(&str, usize)> = findings.iter().map(|(p, l)| (p.as_str(), *l)).collect();
    let missed: Vec<Label> = corpus
        .labels
        .iter()
        .filter(|l| !found.contains(&(l.path.as_str(), l.line)))
        .cloned()
        .collect();
    let fps: Vec<(String, usize)> = found
        .iter()
        .filter(|f| !labelled.contains(f))
        .map(|(p, l)| ((*p).to_owned(), *l))
        .collect();
    let tp = found.len() - fps.len();
    Score {
        recall: 1.0 - missed.len() as f64 / corpus.labels.len().max(1) as f64,
        precision: if found.is_empty() {
            1.0
        } else {
            tp as f64 / found.len() as f64
        },
        missed,
        false_positives: fps,
    }
}
