//! The decision logic on hand-built AdmissionReviews, shaped like the ones
//! kube-apiserver sends (the integration tests in `tests/it/webhook.rs` use
//! the real apiserver).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::config::Policy;
use super::review::{AllowReason, Outcome, ReviewError, review};

/// A value the gate must refuse in a Secret; assembled so the source file
/// itself holds no credential-shaped literal.
fn planted() -> String {
    format!("{}-{}-{}", "Planted", "unit", "Zq81vXr4Lm")
}

fn secret(ns: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns, "labels": labels},
        "stringData": {"password": planted()},
    })
}

fn review_of(op: &str, ns: &str, object: Value, extra: Value) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap_or("Secret").to_owned();
    let mut req = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "secrets"},
        "name": object["metadata"]["name"],
        "namespace": ns,
        "operation": op,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": object,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req,
    }))
    .expect("json")
}

fn outcome(body: &[u8], policy: &Policy) -> (Outcome, Value) {
    let r = review(body, policy).expect("answerable");
    assert_eq!(r.response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r.response["kind"], "AdmissionReview");
    assert_eq!(
        r.response["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    let text = r.response.to_string();
    assert!(!text.contains(&planted()), "value leaked: {text}");
    assert!(!text.contains("Plan"), "preview leaked: {text}");
    (r.outcome, r.response)
}

#[test]
fn plaintext_secret_is_denied_naming_object_field_and_rule() {
    let body = review_of("CREATE", "team-a", secret("team-a", json!({})), json!({}));
    let (o, resp) = outcome(&body, &Policy::default());
    assert_eq!(
        o,
        Outcome::Denied(vec![(
            "stringData.password".to_owned(),
            "k8s/secret-plaintext".to_owned()
        )])
    );
    let msg = resp["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(msg.contains("Secret team-a/db"), "{msg}");
    assert!(msg.contains("stringData.password"), "{msg}");
    assert!(msg.contains("k8s/secret-plaintext"), "{msg}");
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["status"]["code"], 403);
}

#[test]
fn clean_configmap_and_deletes_are_admitted() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}, "data": {"LOG_LEVEL": "info", "DB_HOST": "db"}});
    let (o, resp) = outcome(
        &review_of("CREATE", "team-a", cm, json!({})),
        &Policy::default(),
    );
    assert_eq!(o, Outcome::Allowed(AllowReason::Clean));
    assert_eq!(resp["response"]["allowed"], true);
    let del = review_of(
        "DELETE",
        "team-a",
        secret("team-a", json!({})),
        json!({"object": null}),
    );
    assert_eq!(
        outcome(&del, &Policy::default()).0,
        Outcome::Allowed(AllowReason::NotAWrite)
    );
}

#[test]
fn exemptions_namespace_label_and_sealgate_writes() {
    let mut policy = Policy::default();
    policy.exempt_namespaces.insert("legacy".into());
    policy
        .exempt_labels
        .insert("sealgate.dev/gate".into(), "skip".into());
    let ns = review_of("CREATE", "legacy", secret("legacy", json!({})), json!({}));
    assert_eq!(
        outcome(&ns, &policy).0,
        Outcome::Allowed(AllowReason::ExemptNamespace)
    );
    let lab = review_of(
        "CREATE",
        "team-a",
        secret("team-a", json!({"sealgate.dev/gate": "skip"})),
        json!({}),
    );
    assert_eq!(
        outcome(&lab, &policy).0,
        Outcome::Allowed(AllowReason::ExemptLabel)
    );
    // Another label value does not exempt.
    let other = review_of(
        "CREATE",
        "team-a",
        secret("team-a", json!({"sealgate.dev/gate": "yes"})),
        json!({}),
    );
    assert!(matches!(outcome(&other, &policy).0, Outcome::Denied(_)));

    let ssa = json!({"operation": "CREATE", "options": {
        "apiVersion": "meta.k8s.io/v1", "kind": "PatchOptions", "fieldManager": "sealgate"}});
    let body = review_of("CREATE", "team-a", secret("team-a", json!({})), ssa.clone());
    assert_eq!(
        outcome(&body, &policy).0,
        Outcome::Allowed(AllowReason::SealgateWrite)
    );
    // With sealgate_users set, the field manager alone is not enough.
    policy
        .sealgate_users
        .insert("system:serviceaccount:sealgate-system:sealgate".into());
    assert!(matches!(outcome(&body, &policy).0, Outcome::Denied(_)));
    let mut as_sa = ssa;
    as_sa["userInfo"] = json!({"username": "system:serviceaccount:sealgate-system:sealgate"});
    let body = review_of("CREATE", "team-a", secret("team-a", json!({})), as_sa);
    assert_eq!(
        outcome(&body, &policy).0,
        Outcome::Allowed(AllowReason::SealgateWrite)
    );
}

#[test]
fn update_keeping_a_stored_value_warns_but_a_new_value_is_denied() {
    let old = secret("team-a", json!({}));
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    let body = review_of(
        "UPDATE",
        "team-a",
        relabelled,
        json!({"oldObject": old.clone()}),
    );
    let (o, resp) = outcome(&body, &Policy::default());
    assert_eq!(o, Outcome::Allowed(AllowReason::Clean));
    let w = resp["response"]["warnings"][0].as_str().expect("warning");
    assert!(
        w.contains("stringData.password") && w.contains("predates"),
        "{w}"
    );

    // The same edit of a Secret sealgate writes to: no warning, its values
    // are expected there.
    let mut managed_old = old.clone();
    managed_old["metadata"]["managedFields"] =
        json!([{"manager": "sealgate", "operation": "Apply", "apiVersion": "v1"}]);
    let mut managed_new = managed_old.clone();
    managed_new["metadata"]["labels"] = json!({"team": "a"});
    let body = review_of(
        "UPDATE",
        "team-a",
        managed_new,
        json!({"oldObject": managed_old}),
    );
    let (o, resp) = outcome(&body, &Policy::default());
    assert_eq!(o, Outcome::Allowed(AllowReason::Clean));
    assert!(resp["response"].get("warnings").is_none(), "{resp}");

    let mut changed = old.clone();
    changed["stringData"]["password"] = json!(format!("{}-changed", planted()));
    let body = review_of("UPDATE", "team-a", changed, json!({"oldObject": old}));
    let r = review(&body, &Policy::default()).expect("answerable");
    assert!(matches!(r.outcome, Outcome::Denied(_)));
    assert!(!r.response.to_string().contains("changed"));
}

#[test]
fn workloads_with_literal_credentials_are_denied() {
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx",
            "env": [{"name": "DB_PASSWORD", "value": planted()}]}]}}}});
    let (o, resp) = outcome(
        &review_of("CREATE", "team-a", dep, json!({})),
        &Policy::default(),
    );
    assert_eq!(
        o,
        Outcome::Denied(vec![(
            "spec.template.spec.containers[0].env[0].value".to_owned(),
            "k8s/env-literal-credential".to_owned()
        )])
    );
    let msg = resp["response"]["status"]["message"].as_str().expect("msg");
    assert!(msg.contains("Deployment team-a/web"), "{msg}");
}

#[test]
fn malformed_reviews_fail_closed() {
    let p = Policy::default();
    assert!(matches!(
        review(b"not json", &p),
        Err(ReviewError::NotJson { .. })
    ));
    assert!(matches!(
        review(br#"{"apiVersion":"v1","kind":"Pod"}"#, &p),
        Err(ReviewError::WrongType)
    ));
    assert!(matches!(
        review(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            &p
        ),
        Err(ReviewError::MissingUid)
    ));
    // A uid but a broken request: an explicit denial, no serde text (it
    // would quote the offending value).
    let body = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u1","operation":"{}"}}}}"#,
        planted()
    );
    let r = review(body.as_bytes(), &p).expect("answerable");
    assert!(matches!(r.outcome, Outcome::Malformed(_)));
    assert_eq!(r.response["response"]["allowed"], false);
    assert!(!r.response.to_string().contains(&planted()));
    // CREATE without an object.
    let body = review_of(
        "CREATE",
        "team-a",
        secret("team-a", json!({})),
        json!({"object": null}),
    );
    let r = review(&body, &p).expect("answerable");
    assert!(
        matches!(r.outcome, Outcome::Malformed(_)),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.response["response"]["allowed"], false);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9:/._-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("CREATE"),
            Just("UPDATE"),
            Just("admission.k8s.io/v1"),
            Just("AdmissionReview"),
            Just("Secret")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("request".to_owned()),
                        Just("uid".to_owned()),
                        Just("object".to_owned()),
                        Just("oldObject".to_owned()),
                        Just("metadata".to_owned()),
                        Just("kind".to_owned()),
                        Just("operation".to_owned()),
                        Just("options".to_owned()),
                        Just("stringData".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = review(&body, &Policy::default());
    }

    #[test]
    fn mutated_reviews_never_panic_and_never_allow_without_a_uid(v in arb_json(), op in 0usize..3) {
        let base = review_of("CREATE", "team-a", secret("team-a", json!({})), json!({}));
        let mut doc: Value = serde_json::from_slice(&base).expect("base");
        match op {
            0 => doc["request"]["object"] = v,
            1 => doc["request"] = v,
            _ => doc = v,
        }
        let body = serde_json::to_vec(&doc).expect("json");
        if let Ok(r) = review(&body, &Policy::default()) {
            prop_assert!(r.response["response"]["uid"].is_string());
            if r.response["response"]["allowed"] == true {
                prop_assert!(matches!(r.outcome, Outcome::Allowed(_)));
            }
        }
    }
}
