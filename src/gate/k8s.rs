//! The structural pass over parsed YAML/JSON documents: Kubernetes objects
//! by kind, kustomize, kubeconfig, Docker config, Helm values, sops.
//!
//! Design note: a plaintext `Secret` is refused by kind, not by entropy (a
//! low-entropy password is still a password); `data` is base64-decoded and
//! what it holds is named in the message. Objects whose job is to keep
//! secrets out of Git (SealedSecret, ExternalSecret, SecretStore) are
//! accepted, except where a literal credential hides in an ExternalSecret
//! template. Every other object gets the generic walk: env literals,
//! annotations and credential-named keys, plus the token detectors on every
//! scalar.

use base64::Engine as _;

use super::classify::{self, KeyClass};
use super::text::{self, Mode};
use super::yaml::{Node, Style, Value, parse_documents};
use super::{Ctx, ObjectRef, Site, detect, sops};

/// Subtrees that name or point at secrets kept elsewhere.
const REFERENCE_KEYS: &[&str] = &[
    "secretKeyRef",
    "configMapKeyRef",
    "secretRef",
    "valueFrom",
    "remoteRef",
    "secretStoreRef",
    "dataFrom",
    "imagePullSecrets",
    "existingSecret",
    "envFrom",
    "sourceRef",
    "tokenSecretRef",
    "passwordSecretRef",
];

/// Secret/secretGenerator keys that name identities or locations, not
/// credentials: reported only if their value holds a detectable secret
/// (e.g. a URL with a password).
const IDENTITY_KEYS: &[&str] = &[
    "username",
    "user",
    "login",
    "email",
    "host",
    "hostname",
    "port",
    "database",
    "dbname",
    "db",
    "namespace",
    "region",
    "endpoint",
    "url",
    "uri",
    "server",
    "accountname",
    "account",
    "clientid",
    "tenantid",
    "tenant",
    "projectid",
    "project",
    "bucket",
    "cluster",
    "name",
    "scheme",
    "protocol",
    "sslmode",
    "driver",
    "caCrt",
    "cacrt",
    "tlscrt",
];

fn identity_key(key: &str) -> bool {
    IDENTITY_KEYS.contains(&classify::normalise_key(key).as_str())
}

/// Scans every document of a file (or the single object given).
pub fn scan_documents(ctx: &mut Ctx<'_>, docs: &[Node], text: &str) {
    let any_sops = docs.iter().any(sops::has_metadata);
    text::set_code_file(ctx.path);
    let values_file = is_values_file(ctx.path);
    let has_aws_id = text.contains("AKIA") || text.contains("ASIA");
    // Objects handed over without text are always fully checked.
    let may = text.is_empty() || detect::may_contain_secret(text);
    let mut w = Walker {
        has_aws_id,
        values_file,
        may,
        secret_map: false,
        force_strong: false,
        crypto_map: false,
    };
    for doc in docs {
        if sops::has_metadata(doc) {
            sops::check_document(ctx, doc);
            continue;
        }
        w.document(ctx, doc, None);
    }
    if ctx.path != "<object>" {
        sops::demand_encryption(ctx, any_sops);
    }
}

fn is_values_file(path: &str) -> bool {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    name.contains("values") && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Appends a key to a field path in place (see [`join`]).
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        use std::fmt::Write;
        let _ = write!(path, "[{key:?}]");
    }
}

/// Joins a field path: `a.b`, or `a["tls.key"]` for keys with odd characters.
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

struct Walker {
    has_aws_id: bool,
    values_file: bool,
    /// Whether any context-free detector can match anywhere in the file.
    may: bool,
    /// The map being walked sits under a key that holds secrets by name
    /// (`secrets:`, `credentials:`, `secretEnv:`).
    secret_map: bool,
    /// The scalar being checked is a direct child of such a map.
    force_strong: bool,
    /// The map being walked sits under a key naming a cryptographic or API
    /// context (`Jwt`, `signing`, `hmac`, `api`), where a child `key` is a
    /// credential.
    crypto_map: bool,
}

fn is_crypto_context(key: &str) -> bool {
    let k = classify::normalise_key(key);
    [
        "jwt",
        "signing",
        "hmac",
        "encryption",
        "cipher",
        "session",
        "cookie",
        "api",
        "oauth",
        "oidc",
        "webhook",
        "crypto",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Keys whose map values are credentials whatever the child keys are called
/// (`secrets: {SENTRY_DSN: …}` in Helm values).
fn is_secret_container(key: &str) -> bool {
    matches!(
        classify::normalise_key(key).as_str(),
        "secrets"
            | "secret"
            | "credentials"
            | "creds"
            | "secretenv"
            | "secretenvvars"
            | "extrasecretenvvars"
            | "secretdata"
            | "envsecrets"
            | "sensitive"
            | "secretvalues"
    )
}

fn object_ref(doc: &Node) -> Option<ObjectRef> {
    let kind = doc.get("kind")?.as_str()?.to_owned();
    let api_version = doc.get("apiVersion")?.as_str()?.to_owned();
    let meta = doc.get("metadata");
    let s = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Node::as_str)
            .map(str::to_owned)
    };
    Some(ObjectRef {
        api_version,
        kind,
        namespace: s("namespace"),
        name: s("name"),
    })
}

impl Walker {
    fn document(&mut self, ctx: &mut Ctx<'_>, doc: &Node, shift: Option<usize>) {
        let _ = shift;
        let Some(obj) = object_ref(doc) else {
            self.plain_document(ctx, doc);
            return;
        };
        let o = Some(obj.clone());
        if let Some(ann) = doc.at(&["metadata", "annotations"]) {
            self.annotations(ctx, ann, &o);
        }
        match obj.kind.as_str() {
            "List" => {
                for it in doc.get("items").map(Node::items).unwrap_or(&[]) {
                    if sops::has_metadata(it) {
                        sops::check_document(ctx, it);
                    } else {
                        self.document(ctx, it, None);
                    }
                }
            }
            "Secret" => self.secret(ctx, doc, &o),
            "ConfigMap" => self.configmap(ctx, doc, &o),
            "SealedSecret"
            | "SecretStore"
            | "ClusterSecretStore"
            | "PushSecret"
            | "ClusterPushSecret"
            | "SopsSecret"
            | "CustomResourceDefinition" => {}
            "ExternalSecret" | "ClusterExternalSecret" => self.external_secret(ctx, doc, &o),
            "Config" if doc.get("users").is_some() => self.kubeconfig(ctx, doc, &o),
            "Kustomization" if obj.api_version.starts_with("kustomize.config") => {
                self.kustomization(ctx, doc, &o)
            }
            "HelmRelease" => {
                for (k, v) in doc.pairs() {
                    if k.as_str() == Some("spec") {
                        for (sk, sv) in v.pairs() {
                            let Some(skey) = sk.as_str() else { continue };
                            let rule = if skey == "values" {
                                "helm/values-credential"
                            } else {
                                "generic/credential-literal"
                            };
                            self.walk(ctx, sv, &join("spec", skey), Some(skey), &o, rule);
                        }
                    }
                }
            }
            "Application" | "ApplicationSet" if obj.api_version.contains("argoproj") => {
                self.argo_app(ctx, doc, &o)
            }
            _ => self.object_body(ctx, doc, &o, "generic/credential-literal"),
        }
    }

    fn object_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        doc: &Node,
        o: &Option<ObjectRef>,
        rule: &'static str,
    ) {
        for (k, v) in doc.pairs() {
            let Some(key) = k.as_str() else { continue };
            if matches!(key, "apiVersion" | "kind" | "metadata") {
                continue;
            }
            self.walk(ctx, v, key, Some(key), o, rule);
        }
    }

    fn plain_document(&mut self, ctx: &mut Ctx<'_>, doc: &Node) {
        if doc.get("secretGenerator").is_some() || doc.get("configMapGenerator").is_some() {
            self.kustomization(ctx, doc, &None);
        } else if matches!(doc.get("auths").map(|n| &n.value), Some(Value::Map(_))) {
            self.docker_config(ctx, doc, "", &None, None);
        } else if doc.get("users").is_some() && doc.get("clusters").is_some() {
            self.kubeconfig(ctx, doc, &None);
        } else {
            let rule = if self.values_file {
                "helm/values-credential"
            } else {
                "generic/credential-literal"
            };
            self.walk(ctx, doc, "", None, &None, rule);
        }
    }

    /// Generic recursive walk.
    fn walk(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &Node,
        field: &str,
        key: Option<&str>,
        o: &Option<ObjectRef>,
        rule: &'static str,
    ) {
        let mut buf = field.to_owned();
        self.walk_buf(ctx, node, &mut buf, key, o, rule);
    }

    /// The recursive walk; `field` is one buffer extended and truncated in
    /// place, so visiting a node allocates no path string.
    fn walk_buf(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &Node,
        field: &mut String,
        key: Option<&str>,
        o: &Option<ObjectRef>,
        rule: &'static str,
    ) {
        match &node.value {
            Value::Map(pairs) => {
                let at_metadata = field.ends_with("metadata");
                let at_root = field.is_empty();
                let container = self.secret_map;
                let crypto = self.crypto_map;
                for (k, v) in pairs {
                    let Some(kk) = k.as_str() else { continue };
                    if REFERENCE_KEYS.contains(&kk) {
                        continue;
                    }
                    let prev = self.secret_map;
                    let prev_crypto = self.crypto_map;
                    let is_map = matches!(v.value, Value::Map(_));
                    self.secret_map = is_map && is_secret_container(kk);
                    self.crypto_map = is_map && is_crypto_context(kk);
                    let scalar = matches!(v.value, Value::Scalar(..));
                    self.force_strong = scalar
                        && (container && !identity_key(kk)
                            || crypto
                                && matches!(classify::normalise_key(kk).as_str(), "key" | "value"));
                    let len = field.len();
                    push_key(field, kk);
                    if kk == "env" && matches!(v.value, Value::Seq(_)) {
                        self.env_list(ctx, v, field, o);
                    } else if kk == "annotations" && at_metadata {
                        self.annotations_at(ctx, v, field, o);
                    } else if kk == "metadata" && at_root {
                    } else {
                        self.walk_buf(ctx, v, field, Some(kk), o, rule);
                    }
                    field.truncate(len);
                    self.secret_map = prev;
                    self.crypto_map = prev_crypto;
                    self.force_strong = false;
                }
            }
            Value::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    let len = field.len();
                    use std::fmt::Write;
                    let _ = write!(field, "[{i}]");
                    self.walk_buf(ctx, it, field, key, o, rule);
                    field.truncate(len);
                }
            }
            Value::Scalar(s, style) => self.value(ctx, node, s, *style, field, key, o, rule),
            Value::Alias => {}
        }
    }

    fn site(node: &Node, offset: usize, field: &str, o: &Option<ObjectRef>) -> Site {
        Site {
            line: node.line,
            col: if node.line == 0 { 0 } else { node.col + offset },
            object: o.clone(),
            field: (!field.is_empty()).then(|| field.to_owned()),
        }
    }

    /// Checks one scalar value.
    #[allow(clippy::too_many_arguments)]
    fn value(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &Node,
        s: &str,
        style: Style,
        field: &str,
        key: Option<&str>,
        o: &Option<ObjectRef>,
        rule: &'static str,
    ) {
        if s.trim().contains('\n') {
            self.embedded(ctx, node, s, style, field, o, rule);
            return;
        }
        // Fast path for the common case: nothing any rule below could use.
        if !self.may
            && !self.force_strong
            && !self.has_aws_id
            && s.len() < 60
            && !s.contains('=')
            && !s.contains(" -")
            && !s.contains('\'')
            && key.is_none_or(|k| classify::classify_key(k) == KeyClass::None)
        {
            return;
        }
        let q = usize::from(style == Style::Quoted);
        let mut found = false;
        let hits = if self.may { detect::all(s) } else { Vec::new() };
        for h in hits {
            let r = if h.rule == "token/jwt" {
                let strong = key.is_some_and(|k| classify::classify_key(k) != KeyClass::None);
                if strong {
                    "token/jwt"
                } else {
                    "token/jwt-unscoped"
                }
            } else {
                h.rule
            };
            let site = Self::site(node, h.start + q, field, o);
            ctx.emit(r, &site, &s[h.start..h.end], h.what.to_owned());
            found = true;
        }
        if found {
            return;
        }
        if let Some(what) = decoded_secret(s) {
            let site = Self::site(node, q, field, o);
            ctx.emit(
                "key/private-key",
                &site,
                s,
                format!("base64 value decodes to a {what}"),
            );
            return;
        }
        let site = Self::site(node, q, field, o);
        if let Some(k) = key {
            text::check_assignment(ctx, Mode::Embedded(rule), k, s, &site, self.has_aws_id);
            if classify::classify_key(k) != KeyClass::None {
                return;
            }
            if self.force_strong && classify::is_literal_credential(s) {
                ctx.emit(
                    rule,
                    &site,
                    s,
                    format!(
                        "`{k}` in a credential context (`secrets:`, `jwt:`…) is a literal value"
                    ),
                );
                return;
            }
        }
        if self.has_aws_id {
            let t = s.trim();
            if t.len() == 40 && !detect::aws_secret_candidates(t).is_empty() {
                ctx.emit(
                    "token/aws-secret-key",
                    &site,
                    t,
                    "AWS secret access key next to an access key id".to_owned(),
                );
                return;
            }
        }
        if (s.contains('=') || s.contains(" -") || s.contains("'"))
            && text::CRED_HINT.is_match(s)
            && let Some(a) = text::assignment(s, Mode::Embedded(rule))
        {
            {
                let site = Self::site(node, a.value_col + q, field, o);
                text::check_assignment(
                    ctx,
                    Mode::Embedded(rule),
                    a.key,
                    a.value,
                    &site,
                    self.has_aws_id,
                );
            }
        }
    }

    /// Multi-line values: embedded files (ConfigMap data, values strings,
    /// inline patches) are line-scanned with positions mapped back.
    #[allow(clippy::too_many_arguments)]
    fn embedded(
        &mut self,
        ctx: &mut Ctx<'_>,
        node: &Node,
        s: &str,
        style: Style,
        field: &str,
        o: &Option<ObjectRef>,
        rule: &'static str,
    ) {
        let (line, col) = (node.line, node.col);
        let map = move |l: usize, c: usize| -> (usize, usize) {
            if line == 0 {
                return (0, 0);
            }
            match style {
                Style::Block => (line + l, col + c),
                Style::Plain => (line + l, if l == 0 { col + c } else { c + 1 }),
                Style::Quoted => (line, col + 1 + c),
            }
        };
        let site = Self::site(node, 0, field, o);
        text::scan_lines(ctx, s, Mode::Embedded(rule), &map, &site, &[]);
    }

    fn env_list(&mut self, ctx: &mut Ctx<'_>, list: &Node, field: &str, o: &Option<ObjectRef>) {
        for (i, item) in list.items().iter().enumerate() {
            let f = format!("{field}[{i}]");
            let Some(name) = item.get("name").and_then(Node::as_str) else {
                self.walk(ctx, item, &f, None, o, "k8s/env-literal-credential");
                continue;
            };
            if let Some(v) = item.get("value")
                && let Some(s) = v.as_str()
            {
                {
                    let style = match v.value {
                        Value::Scalar(_, st) => st,
                        _ => Style::Plain,
                    };
                    self.value(
                        ctx,
                        v,
                        s,
                        style,
                        &join(&f, "value"),
                        Some(name),
                        o,
                        "k8s/env-literal-credential",
                    );
                }
            }
        }
    }

    fn annotations(&mut self, ctx: &mut Ctx<'_>, ann: &Node, o: &Option<ObjectRef>) {
        self.annotations_at(ctx, ann, "metadata.annotations", o);
    }

    fn annotations_at(
        &mut self,
        ctx: &mut Ctx<'_>,
        ann: &Node,
        field: &str,
        o: &Option<ObjectRef>,
    ) {
        for (k, v) in ann.pairs() {
            let (Some(key), Some(val)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            let f = join(field, key);
            if key.contains("checksum") {
                continue;
            }
            if key == "kubectl.kubernetes.io/last-applied-configuration" {
                // The whole object, as JSON: a Secret applied with kubectl
                // leaves its data here even after the Secret is converted.
                if let Ok(docs) = parse_documents(val) {
                    for d in docs {
                        let d = relocate(d, v.line, v.col);
                        self.document(ctx, &d, None);
                    }
                }
                continue;
            }
            let style = match v.value {
                Value::Scalar(_, st) => st,
                _ => Style::Plain,
            };
            self.value(
                ctx,
                v,
                val,
                style,
                &f,
                Some(key),
                o,
                "k8s/annotation-credential",
            );
        }
    }

    fn secret(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        for section in ["data", "stringData"] {
            let Some(map) = doc.get(section) else {
                continue;
            };
            for (k, v) in map.pairs() {
                let (Some(key), Some(val)) = (k.as_str(), v.as_str()) else {
                    continue;
                };
                let field = join(section, key);
                let site = Self::site(v, 0, &field, o);
                let t = val.trim();
                if t.is_empty() {
                    continue;
                }
                let (what, shown) = if section == "data" {
                    let compact: String = t.split_whitespace().collect();
                    match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
                        Ok(bytes) if bytes.is_empty() => continue,
                        Ok(bytes) => {
                            let dec = String::from_utf8_lossy(&bytes);
                            if is_public_material(&dec)
                                || classify::is_indirection(&dec)
                                || identity_key(key) && detect::all(&dec).is_empty()
                            {
                                continue;
                            }
                            (describe(&dec, true), t)
                        }
                        Err(_) => ("not valid base64, still plaintext".to_owned(), t),
                    }
                } else {
                    if classify::is_indirection(t)
                        || is_public_material(t)
                        || identity_key(key) && detect::all(t).is_empty()
                    {
                        continue;
                    }
                    (describe(t, false), t)
                };
                ctx.emit(
                    "k8s/secret-plaintext",
                    &site,
                    shown,
                    format!("Secret `{section}.{key}` in clear ({what})"),
                );
            }
        }
        // Anything else (e.g. a bogus top-level field) still gets detectors.
        for (k, v) in doc.pairs() {
            let Some(key) = k.as_str() else { continue };
            if !matches!(
                key,
                "apiVersion" | "kind" | "metadata" | "data" | "stringData" | "type"
            ) {
                self.walk(ctx, v, key, Some(key), o, "generic/credential-literal");
            }
        }
    }

    fn configmap(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        if let Some(bin) = doc.get("binaryData") {
            for (k, v) in bin.pairs() {
                let (Some(key), Some(val)) = (k.as_str(), v.as_str()) else {
                    continue;
                };
                if let Some(what) = decoded_secret(val) {
                    let site = Self::site(v, 0, &join("binaryData", key), o);
                    ctx.emit(
                        "key/private-key",
                        &site,
                        val,
                        format!("ConfigMap binaryData decodes to a {what}"),
                    );
                }
            }
        }
        if let Some(data) = doc.get("data") {
            self.walk(ctx, data, "data", None, o, "k8s/configmap-credential");
        }
    }

    fn external_secret(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        for section in ["data", "stringData"] {
            let Some(map) = doc.at(&["spec", "target", "template", section]) else {
                continue;
            };
            let base = format!("spec.target.template.{section}");
            for (k, v) in map.pairs() {
                let (Some(key), Some(val)) = (k.as_str(), v.as_str()) else {
                    continue;
                };
                let style = match v.value {
                    Value::Scalar(_, st) => st,
                    _ => Style::Plain,
                };
                let f = join(&base, key);
                self.value(
                    ctx,
                    v,
                    val,
                    style,
                    &f,
                    Some(key),
                    o,
                    "externalsecret/template-literal",
                );
            }
        }
    }

    fn kubeconfig(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        for (i, u) in doc
            .get("users")
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let Some(user) = u.get("user") else { continue };
            let base = format!("users[{i}].user");
            let check = |ctx: &mut Ctx<'_>, n: &Node, field: String, decode: bool| {
                let Some(val) = n.as_str() else { return };
                if classify::is_indirection(val) {
                    return;
                }
                let what = if decode && decoded_secret(val).is_some() {
                    " (decodes to a private key)"
                } else {
                    ""
                };
                let site = Self::site(n, 0, &field, o);
                ctx.emit(
                    "k8s/kubeconfig-credential",
                    &site,
                    val,
                    format!("kubeconfig credential `{field}`{what}"),
                );
            };
            for (k, dec) in [
                ("token", false),
                ("password", false),
                ("client-key-data", true),
            ] {
                if let Some(n) = user.get(k) {
                    check(ctx, n, join(&base, k), dec);
                }
            }
            if let Some(cfg) = user.at(&["auth-provider", "config"]) {
                for k in ["id-token", "refresh-token", "client-secret", "access-token"] {
                    if let Some(n) = cfg.get(k) {
                        check(
                            ctx,
                            n,
                            join(&format!("{base}.auth-provider.config"), k),
                            false,
                        );
                    }
                }
            }
        }
    }

    fn docker_config(
        &mut self,
        ctx: &mut Ctx<'_>,
        doc: &Node,
        base: &str,
        o: &Option<ObjectRef>,
        line: Option<usize>,
    ) {
        let Some(auths) = doc.get("auths") else {
            return;
        };
        for (reg, entry) in auths.pairs() {
            let r = reg.as_str().unwrap_or("?");
            for k in ["auth", "password", "identitytoken", "registrytoken"] {
                let Some(n) = entry.get(k) else { continue };
                let Some(val) = n.as_str().filter(|v| !classify::is_indirection(v)) else {
                    continue;
                };
                let field = join(&join(&join(base, "auths"), r), k);
                let mut site = Self::site(n, 0, &field, o);
                if let Some(l) = line {
                    site.line = l;
                }
                ctx.emit(
                    "k8s/dockerconfig-auth",
                    &site,
                    val,
                    format!("registry credential for `{r}` in clear"),
                );
            }
        }
    }

    fn kustomization(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        for (gi, gen_) in doc
            .get("secretGenerator")
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let base = format!("secretGenerator[{gi}]");
            for (li, lit) in gen_
                .get("literals")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let Some(s) = lit.as_str() else { continue };
                let (k, v) = s.split_once('=').unwrap_or(("", s));
                if classify::is_indirection(v) || identity_key(k) && detect::all(v).is_empty() {
                    continue;
                }
                let site = Self::site(lit, k.len() + 1, &format!("{base}.literals[{li}]"), o);
                ctx.emit(
                    "kustomize/secret-generator-plaintext",
                    &site,
                    v,
                    format!("secretGenerator literal `{k}` in clear"),
                );
            }
            for list in ["envs", "files", "env"] {
                let Some(n) = gen_.get(list) else { continue };
                let entries: Vec<&Node> = match &n.value {
                    Value::Seq(items) => items.iter().collect(),
                    Value::Scalar(..) => vec![n],
                    _ => vec![],
                };
                for (fi, e) in entries.into_iter().enumerate() {
                    let Some(s) = e.as_str() else { continue };
                    let file = s.split_once('=').map_or(s, |(_, f)| f);
                    if !file_in_clear(ctx, file) {
                        continue;
                    }
                    let site = Self::site(e, 0, &format!("{base}.{list}[{fi}]"), o);
                    ctx.emit(
                        "kustomize/secret-generator-plaintext",
                        &site,
                        file,
                        format!("secretGenerator reads `{file}`, which is not sops-encrypted"),
                    );
                }
            }
        }
        for (gi, gen_) in doc
            .get("configMapGenerator")
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            for (li, lit) in gen_
                .get("literals")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let Some((k, v)) = lit.as_str().and_then(|s| s.split_once('=')) else {
                    continue;
                };
                let site = Self::site(
                    lit,
                    k.len() + 1,
                    &format!("configMapGenerator[{gi}].literals[{li}]"),
                    o,
                );
                text::check_assignment(
                    ctx,
                    Mode::Embedded("k8s/configmap-credential"),
                    k,
                    v,
                    &site,
                    self.has_aws_id,
                );
            }
        }
        for (k, v) in doc.pairs() {
            let Some(key) = k.as_str() else { continue };
            if !matches!(
                key,
                "secretGenerator" | "configMapGenerator" | "apiVersion" | "kind"
            ) {
                self.walk(ctx, v, key, Some(key), o, "generic/credential-literal");
            }
        }
    }

    fn argo_app(&mut self, ctx: &mut Ctx<'_>, doc: &Node, o: &Option<ObjectRef>) {
        let mut sources: Vec<(String, &Node)> = Vec::new();
        if let Some(s) = doc.at(&["spec", "source"]) {
            sources.push(("spec.source".to_owned(), s));
        }
        for (i, s) in doc
            .at(&["spec", "sources"])
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            sources.push((format!("spec.sources[{i}]"), s));
        }
        if let Some(s) = doc.at(&["spec", "template", "spec", "source"]) {
            sources.push(("spec.template.spec.source".to_owned(), s));
        }
        for (base, src) in sources {
            let Some(helm) = src.get("helm") else {
                continue;
            };
            let hb = format!("{base}.helm");
            if let Some(v) = helm.get("values")
                && let Some(s) = v.as_str()
            {
                {
                    match parse_documents(s) {
                        Ok(docs) => {
                            for d in docs {
                                let d = relocate(d, v.line.saturating_sub(1), 0);
                                self.walk(
                                    ctx,
                                    &d,
                                    &join(&hb, "values"),
                                    None,
                                    o,
                                    "helm/values-credential",
                                );
                            }
                        }
                        Err(_) => self.embedded(
                            ctx,
                            v,
                            s,
                            Style::Block,
                            &join(&hb, "values"),
                            o,
                            "helm/values-credential",
                        ),
                    }
                }
            }
            if let Some(v) = helm.get("valuesObject") {
                self.walk(
                    ctx,
                    v,
                    &join(&hb, "valuesObject"),
                    None,
                    o,
                    "helm/values-credential",
                );
            }
            for (i, p) in helm
                .get("parameters")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                if let (Some(name), Some(v)) =
                    (p.get("name").and_then(Node::as_str), p.get("value"))
                    && let Some(s) = v.as_str()
                {
                    {
                        let f = format!("{hb}.parameters[{i}].value");
                        self.value(
                            ctx,
                            v,
                            s,
                            Style::Plain,
                            &f,
                            Some(name),
                            o,
                            "helm/values-credential",
                        );
                    }
                }
            }
        }
        self.object_body(ctx, doc, o, "generic/credential-literal");
    }
}

/// Whether the file a kustomize generator reads is committed in clear and
/// not already reported on its own (a `.env` or properties file with a
/// credential is reported where the value is; a raw `password.txt` can only
/// be reported here).
fn file_in_clear(ctx: &Ctx<'_>, file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    if lower.contains(".enc.") || lower.contains(".sops.") || lower.ends_with(".enc") {
        return false;
    }
    let Some(dir) = &ctx.opts.base_dir else {
        return true;
    };
    match std::fs::read(dir.join(file)) {
        Ok(bytes) => {
            let t = String::from_utf8_lossy(&bytes);
            if t.trim().is_empty()
                || t.contains("sops_mac=")
                || t.contains("\nsops:")
                || t.contains("\"sops\":")
            {
                return false;
            }
            super::check_file(file, &bytes, &super::Options::default())
                .findings
                .is_empty()
        }
        // Not committed next to the kustomization (generated in CI): nothing
        // in clear here.
        Err(_) => false,
    }
}

/// Shifts every position of a tree parsed from a string value to where that
/// value sits in the file.
fn relocate(mut n: Node, line: usize, col: usize) -> Node {
    fn go(n: &mut Node, line: usize, col: usize) {
        if line == 0 {
            n.line = 0;
            n.col = 0;
        } else {
            n.line += line;
            if col > 0 {
                n.line = line;
                n.col += col;
            }
        }
        match &mut n.value {
            Value::Map(p) => {
                for (k, v) in p {
                    go(k, line, col);
                    go(v, line, col);
                }
            }
            Value::Seq(items) => {
                for it in items {
                    go(it, line, col);
                }
            }
            _ => {}
        }
    }
    go(&mut n, line, col);
    n
}

/// Certificates and public keys only: public material, accepted.
fn is_public_material(s: &str) -> bool {
    (s.contains("-----BEGIN CERTIFICATE-----") || s.contains("-----BEGIN PUBLIC KEY-----"))
        && !s.contains("PRIVATE KEY")
        || s.starts_with("ssh-ed25519 ")
        || s.starts_with("ssh-rsa ")
        || s.starts_with("ecdsa-sha2-")
        || s.starts_with("age1") && !s.contains(' ') && s.len() == 62
}

/// Names what a Secret value holds, for the message.
fn describe(s: &str, decoded: bool) -> String {
    let prefix = if decoded { "base64 decodes to " } else { "" };
    if !detect::private_keys(s).is_empty() {
        return format!("{prefix}a private key");
    }
    if let Some(h) = detect::tokens(s).first() {
        return format!("{prefix}a {}", h.what);
    }
    if s.contains("\"auths\"") {
        return format!("{prefix}Docker registry credentials");
    }
    if !detect::url_credentials(s).is_empty() {
        return format!("{prefix}a URL with a password");
    }
    if decoded {
        "base64 is not encryption".to_owned()
    } else {
        "stringData is not encrypted".to_owned()
    }
}

/// A long base64 value that decodes to a private key (a `caBundle`,
/// `binaryData`, a `tls.key` in values). Decoding is bounded.
fn decoded_secret(s: &str) -> Option<&'static str> {
    let t = s.trim();
    if t.len() < 60
        || t.len() > 1 << 20
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let dec = String::from_utf8_lossy(&bytes);
    detect::private_keys(&dec).first().map(|h| h.what)
}
