//! Unit tests of the engine as a whole: one input per rule and per accepted
//! kind, asserting rule id, position and field path.

use super::*;

fn scan(path: &str, text: &str) -> Report {
    check_file(path, text.as_bytes(), &Options::default())
}

fn rules_of(r: &Report) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn secret_string_data_refused_with_identity_and_field() {
    let r = scan(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: Winter-river-Orange50\n",
    );
    assert_eq!(r.findings.len(), 1, "{r:?}");
    let f = &r.findings[0];
    assert_eq!(f.rule, "k8s/secret-plaintext");
    assert_eq!((f.line, f.column), (7, 13));
    assert_eq!(f.field.as_deref(), Some("stringData.password"));
    let o = f.object.as_ref().unwrap();
    assert_eq!(
        (o.kind.as_str(), o.namespace.as_deref(), o.name.as_deref()),
        ("Secret", Some("prod"), Some("db"))
    );
    assert_eq!(f.preview, "Wint…(21 chars)");
}

#[test]
fn secret_data_is_decoded_and_inner_key_named() {
    use base64::Engine as _;
    let pem = format!(
        "{}\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n{}\n",
        testdata::RSA_BEGIN,
        testdata::RSA_END
    );
    let b = base64::engine::general_purpose::STANDARD.encode(pem);
    let r = scan(
        "s.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\ndata:\n  tls.key: {b}\n  ca.crt: {}\n",
            base64::engine::general_purpose::STANDARD
                .encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        ),
    );
    assert_eq!(rules_of(&r), ["k8s/secret-plaintext"], "{r:?}");
    assert!(
        r.findings[0].message.contains("private key"),
        "{}",
        r.findings[0].message
    );
    assert_eq!(r.findings[0].field.as_deref(), Some("data[\"tls.key\"]"));
}

#[test]
fn empty_and_sa_token_secrets_are_fine() {
    let r = scan(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ntype: kubernetes.io/service-account-token\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\ndata: {}\n",
    );
    assert!(r.findings.is_empty(), "{r:?}");
}

#[test]
fn list_items_and_json_secrets() {
    let r = scan(
        "l.json",
        r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"token":"abcdefgh12345"}}]}"#,
    );
    assert_eq!(rules_of(&r), ["k8s/secret-plaintext"]);
}

#[test]
fn env_configmap_annotation_rules() {
    let r = scan(
        "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    example.com/api-token: Qw9rT5yU1iO3pA7s\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env:\n        - name: DB_PASSWORD\n          value: Winter-river-Orange50\n        - name: DB_HOST\n          value: db\n        - name: API_KEY\n          valueFrom:\n            secretKeyRef: {name: x, key: y}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  SMTP_PASSWORD: mailpass-2024x\n  app.properties: |\n    db.url=jdbc:x\n    db.password=Sup3rS3cretValue\n",
    );
    let got: Vec<(&str, usize, Option<&str>)> = r
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.line, f.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "k8s/annotation-credential",
                6,
                Some("metadata.annotations[\"example.com/api-token\"]")
            ),
            (
                "k8s/env-literal-credential",
                14,
                Some("spec.template.spec.containers[0].env[0].value")
            ),
            ("k8s/configmap-credential", 25, Some("data.SMTP_PASSWORD")),
            (
                "k8s/configmap-credential",
                28,
                Some("data[\"app.properties\"]")
            ),
        ],
        "{r:#?}"
    );
}

#[test]
fn tokens_anywhere() {
    let r = scan(
        "scripts/deploy.sh",
        "#!/bin/sh\ncurl -H 'Authorization: token ghp_R8c2Kq9LmW3zX7vB1nT5yP0sD4fG6hJ2kL9a' https://api.github.com\n",
    );
    assert_eq!(rules_of(&r), ["token/github"]);
    assert_eq!((r.findings[0].line, r.findings[0].column), (2, 31));
}

#[test]
fn aws_pair() {
    let r = scan(
        ".env",
        &format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY=k9Xq2Lr7Tb4Wn8Vz1Mc5Hy3Gd6Fs0Ja2Pe7Qo4Ru\n",
            testdata::AWS_ACCESS_KEY_ID
        ),
    );
    assert_eq!(
        rules_of(&r),
        ["token/aws-access-key", "token/aws-secret-key"],
        "{r:?}"
    );
}

#[test]
fn accepted_kinds_have_no_findings() {
    let docs = [
        (
            "sealed.yaml",
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: x}\nspec:\n  encryptedData:\n    password: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq\n",
        ),
        (
            "es.yaml",
            "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {name: x}\nspec:\n  target:\n    template:\n      data:\n        url: \"postgres://app:{{ .password }}@db/app\"\n  data:\n  - secretKey: password\n    remoteRef: {key: prod/db, property: password}\n",
        ),
        (
            "d.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    checksum/config: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nspec:\n  containers:\n  - name: a\n    image: nginx@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    env:\n    - name: DB_PASSWORD\n      value: ${DB_PASSWORD}\n    - name: TOKEN\n      value: $(TOKEN)\n    - name: REQUEST_ID\n      value: 123e4567-e89b-12d3-a456-426614174000\n",
        ),
        (
            "values.yaml",
            "auth:\n  existingSecret: db-creds\n  passwordKey: password\n  password: \"\"\nadminPassword: \"{{ .Values.x }}\"\nvault: <path:secret/data/db#password>\n",
        ),
        (
            ".sops.yaml",
            "creation_rules:\n  - path_regex: .*\\.enc\\.yaml$\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
        ),
        (
            "keys.yaml",
            "recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\nssh: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host\ncert: |\n  -----BEGIN CERTIFICATE-----\n  MIIBszCCAVmgAwIBAgIUQ\n  -----END CERTIFICATE-----\naws: AWS_DOCS_EXAMPLE\n",
        ),
    ];
    for (p, t) in docs {
        // The documented AWS example key is spliced in from testdata.
        let t = t.replace("AWS_DOCS_EXAMPLE", testdata::AWS_DOCS_EXAMPLE_KEY_ID);
        let r = scan(p, &t);
        assert!(r.findings.is_empty(), "{p}: {r:#?}");
    }
}

#[test]
fn sops_plaintext_leaf_and_damaged_metadata() {
    let enc = "ENC[AES256_GCM,data:Zm9v,iv:YWJj,tag:ZGVm,type:str]";
    let good = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  password: {enc}\nsops:\n  age:\n  - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n    enc: x\n  mac: {enc}\n  encrypted_regex: ^(data|stringData)$\n  version: 3.11.0\n"
    );
    assert!(scan("s.enc.yaml", &good).findings.is_empty());
    let leaked = good.replace(
        "stringData:\n",
        "stringData:\n  token: added-later-in-clear\n",
    );
    let r = scan("s.enc.yaml", &leaked);
    assert_eq!(rules_of(&r), ["sops/plaintext-leaf"]);
    assert_eq!(r.findings[0].field.as_deref(), Some("stringData.token"));
    let damaged = good.replace(&format!("  mac: {enc}\n"), "");
    assert_eq!(
        rules_of(&scan("s.enc.yaml", &damaged)),
        ["sops/missing-metadata"]
    );
    let missing = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n";
    assert_eq!(
        rules_of(&scan("app.enc.yaml", missing)),
        ["sops/missing-metadata"]
    );
}

#[test]
fn kustomize_literals() {
    let r = scan(
        "kustomization.yaml",
        "secretGenerator:\n- name: db\n  literals:\n  - username=app\n  - password=Winter-river-Orange50\n  envs:\n  - db.env\n",
    );
    // The password literal and the env file in clear; `username=app` names
    // an identity, not a credential.
    let got: Vec<(usize, &str)> = r
        .findings
        .iter()
        .map(|f| (f.line, f.rule.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (5, "kustomize/secret-generator-plaintext"),
            (7, "kustomize/secret-generator-plaintext")
        ],
        "{r:#?}"
    );
}

#[test]
fn broken_yaml_falls_back_to_lines() {
    let r = scan(
        "broken.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n\tname: x\nstringData:\n  password: Winter-river-Orange50\n  key: [unclosed\n",
    );
    assert!(r.notes.iter().any(|n| n.kind == "scan/unparseable"));
    assert!(rules_of(&r).contains(&"k8s/secret-plaintext"), "{r:#?}");
}

#[test]
fn one_odd_character_never_silences_a_dotenv() {
    let r = scan(
        ".env",
        "RATIO=50%\nSECRET_KEY=Winter-river-Orange50\nX=\u{fffd}\n",
    );
    assert_eq!(rules_of(&r), ["dotenv/credential"]);
    let mut bytes = b"A=\xff\xfe\n".to_vec();
    bytes.extend_from_slice(b"DB_PASSWORD=Winter-river-Orange50\n");
    let r = check_file(".env", &bytes, &Options::default());
    assert_eq!(rules_of(&r), ["dotenv/credential"]);
}

#[test]
fn inline_allow_needs_rule_and_reason() {
    let r = scan(
        ".env",
        "# sealgate:allow dotenv/credential local dev only\nDB_PASSWORD=Winter-river-Orange50\nAPI_TOKEN=Winter-river-Orange51 # sealgate:allow dotenv/credential\n",
    );
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].line, 3);
}

#[test]
fn check_object_reports_field_paths() {
    let obj = serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"stringData":{"password":"Winter-river-Orange50"}});
    let r = check_object(&obj, &Options::default());
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].field.as_deref(), Some("stringData.password"));
    assert_eq!(r.findings[0].line, 0);
}

#[test]
fn fingerprints_ignore_line_moves_but_not_values() {
    let a = scan(".env", "DB_PASSWORD=Winter-river-Orange50\n");
    let b = scan(".env", "\n\nX=1\nDB_PASSWORD=Winter-river-Orange50\n");
    let c = scan(".env", "DB_PASSWORD=Winter-river-Orange51\n");
    assert_eq!(a.findings[0].fingerprint, b.findings[0].fingerprint);
    assert_ne!(a.findings[0].fingerprint, c.findings[0].fingerprint);
}

#[test]
fn credentials_in_common_config_and_script_formats() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "terraform.tfvars",
            "region = \"eu-west-1\"\ndb_password = \"Tr0ub4dor-and-3\"\n",
            2,
        ),
        (
            "settings.py",
            "X = 1\nDATABASES = {'default': {'PASSWORD': 'Winter-river-Orange50'}}\n",
            2,
        ),
        (
            "wp-config.php",
            "<?php\ndefine('DB_PASSWORD', 'Wp-Pa55word-Here');\n",
            2,
        ),
        (
            "settings.xml",
            "<server>\n<password>Nx-Depl0y-2024</password></server>\n",
            2,
        ),
        (
            "ci.yml",
            "steps:\n  - run: curl -u admin:Zx9Lm2Qw7Er4 https://nexus.example.com\n",
            2,
        ),
        (
            "ci.sh",
            "set -e\ndocker login -u ci -p Dock3r-L0gin-Pw registry.example.com\n",
            2,
        ),
        (
            ".npmrc",
            "x=1\n//npm.internal/:_authToken=3f9a0c2e-5b7d-4c1e-9f8a-2b6d4e8c0a1f\n",
            2,
        ),
        (
            "Dockerfile",
            "FROM alpine\nENV API_TOKEN=Dockerf1le-T0ken-Value\n",
            2,
        ),
        (
            "credentials",
            "[default]\naws_secret_access_key = k9Xq2Lr7Tb4Wn8Vz1Mc5Hy3Gd6Fs0Ja2Pe7Qo4Ru\n",
            2,
        ),
    ];
    for (path, text, line) in cases {
        let r = scan(path, text);
        assert_eq!(
            r.findings.iter().map(|f| f.line).collect::<Vec<_>>(),
            [*line],
            "{path}: {r:#?}"
        );
    }
}

#[test]
fn references_and_indirections_in_manifests_are_accepted() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  DB_PASSWORD_FILE: /run/secrets/db\n  password_hash: $2y$10$abcdefghijklmnopqrstuv1234567890ABCDEFGHIJKLMNO\n  TOKEN_ENDPOINT: https://auth.example.com/token\n  API_KEY_SECRET: app-api-key\n  token: \"<TOKEN>\"\n  apiToken: \"${API_TOKEN:-}\"\n  clientSecret: \"#{CLIENT_SECRET}#\"\n  dbPassword: '%DB_PASSWORD%'\n  secret: \"@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/db)\"\n  pw: \"{env:DB_PW}\"\n  mail: \"{cipher}AQA9f8e7d6c5b4a3\"\n";
    assert!(scan("cm.yaml", cm).findings.is_empty());
    let env = "SESSION_SECRET=${SESSION_SECRET}\nDATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\nJWT_SECRET=\nSTRIPE_PUBLISHABLE_KEY=pk_live_51H8xAbCdEfGhIjKlMnOpQrStUvWxYz\nTOKEN_TTL=3600\n";
    assert!(
        scan(".env", env).findings.is_empty(),
        "{:#?}",
        scan(".env", env)
    );
    let go = "var password = flag.String(\"password\", \"\", \"db password\")\nfunc f() { token := os.Getenv(\"TOKEN\") }\nAPI_KEY = os.environ[\"API_KEY\"]\n";
    assert!(
        scan("main.go", go).findings.is_empty(),
        "{:#?}",
        scan("main.go", go)
    );
}

#[test]
fn base64_starting_with_a_slash_is_not_a_path() {
    let r = scan(
        "app.yml",
        "signing_key: /fYLsKQEJwz79ril9YYhFxJxrc/zKphsJ8wmkn87rY93\nstatic_dir: /var/www/static\npassword_file: /run/secrets/db\n",
    );
    assert_eq!(rules_of(&r), ["generic/credential-literal"], "{r:#?}");
}

#[test]
fn maps_of_secrets_and_netrc() {
    let r = scan(
        "values.yaml",
        "secrets:\n  SENTRY_DSN_KEY_X: Zq8wL3pR9tK2mB7vX4cY\n  sentry: Winter-river-Orange50\n  username: app\n  external: true\nimage:\n  tag: v1.2.3\n",
    );
    assert_eq!(
        r.findings.iter().map(|f| f.line).collect::<Vec<_>>(),
        [2, 3],
        "{r:#?}"
    );
    let r = scan(
        ".netrc",
        "machine api.example.com login ci password Winter-river-Orange50\n",
    );
    assert_eq!(r.findings.len(), 1, "{r:#?}");
}

#[test]
fn cli_set_flags_context_keys_and_argo_references() {
    let r = scan(
        "deploy.sh",
        "helm upgrade app ./chart --set postgresql.auth.password=H3lm-Set-Pw\nkubectl create secret generic db --from-literal=password=Kubectl-Lit-Pw1\nPGPASSWORD=Pg-Env-Passw0rd psql -h db -U app\n",
    );
    assert_eq!(
        r.findings
            .iter()
            .map(|f| (f.line, f.preview.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "…(11 chars)"),
            (2, "Kube…(15 chars)"),
            (3, "Pg-E…(15 chars)")
        ],
        "{r:#?}"
    );
    let r = scan(
        "appsettings.json",
        "{\"Jwt\": {\"Key\": \"c2VjcmV0LWtleS1mb3Itand0LXNpZ25pbmctMjAyNA==\", \"Issuer\": \"app\"}}",
    );
    assert_eq!(r.findings.len(), 1, "{r:#?}");
    let r = scan(
        "argocd-cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata:\n  oidc.config: |\n    clientSecret: $oidc.okta.clientSecret\n",
    );
    assert!(r.findings.is_empty(), "{r:#?}");
}

#[test]
fn env_pairs_in_unparseable_templates() {
    let r = scan(
        "templates/deployment.yaml",
        "spec:\n  replicas: {{ .Values.replicas }}\n  template:\n    spec:\n      containers:\n      - name: app\n        env:\n        - name: DB_PASSWORD\n          value: \"Winter-river-Orange50\"\n        - name: API_TOKEN\n          value: {{ .Values.token | quote }}\n{{- if .Values.x }}\n",
    );
    assert_eq!(
        r.findings.iter().map(|f| f.line).collect::<Vec<_>>(),
        [9],
        "{r:#?}"
    );
}

#[test]
fn json_without_a_json_name_is_parsed() {
    let r = scan(
        "ops/.dockerconfigjson",
        "{\"auths\": {\"registry.example.com\": {\"auth\": \"Y2k6V2ludGVyLXJpdmVyLU9yYW5nZTUw\"}}}\n",
    );
    assert_eq!(rules_of(&r), ["k8s/dockerconfig-auth"], "{r:#?}");
}
