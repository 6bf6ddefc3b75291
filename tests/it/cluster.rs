//! Proof that the Kubernetes test control plane is real: each test is a
//! round trip through `kube` against etcd + kube-apiserver.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

use crate::support::cluster::{Pki, TestCluster};
use crate::support::process::free_port;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.sealgate.dev
spec:
  group: test.sealgate.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size:
                  type: integer
                  minimum: 1
"#;

#[tokio::test]
async fn crd_from_yaml_is_established_and_validates_objects() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    let ns = cluster.namespace("crd").await;

    let crd: CustomResourceDefinition = serde_saphyr::from_str(WIDGET_CRD).expect("CRD YAML");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Server-side apply: idempotent if another test binary run installed it.
    crds.patch(
        "widgets.test.sealgate.dev",
        &PatchParams::apply("sealgate-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            crds,
            "widgets.test.sealgate.dev",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");

    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("test.sealgate.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
    let good: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.sealgate.dev/v1", "kind": "Widget",
        "metadata": {"name": "ok"}, "spec": {"size": 3}
    }))
    .unwrap();
    let created = widgets
        .create(&PostParams::default(), &good)
        .await
        .expect("create valid Widget");
    assert_eq!(created.data["spec"]["size"], 3);

    for (name, spec) in [("too-small", json!({"size": 0})), ("missing", json!({}))] {
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "test.sealgate.dev/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        match widgets.create(&PostParams::default(), &bad).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(e.message.contains("spec.size"), "{name}: {}", e.message);
            }
            other => panic!("{name}: schema-invalid Widget was not rejected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn server_side_apply_records_the_sealgate_field_manager() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("ssa").await;
    let secrets: Api<Secret> = Api::namespaced(cluster.admin().await, &ns);
    let pp = PatchParams::apply("sealgate").force();
    let apply = |value: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "labels": {"app": "demo"}},
            "stringData": {"password": value}
        })
    };
    secrets
        .patch("db", &pp, &Patch::Apply(apply("first")))
        .await
        .expect("first apply");
    let s = secrets
        .patch("db", &pp, &Patch::Apply(apply("second")))
        .await
        .expect("re-apply");
    let data = s.data.expect("data");
    assert_eq!(data["password"].0, b"second");

    let managed = s.metadata.managed_fields.expect("managedFields");
    let ours: Vec<_> = managed
        .iter()
        .filter(|m| m.manager.as_deref() == Some("sealgate"))
        .collect();
    assert_eq!(ours.len(), 1, "{managed:?}");
    assert_eq!(ours[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_string(&ours[0].fields_v1).unwrap();
    assert!(fields.contains("f:password"), "{fields}");
    assert!(fields.contains("f:app"), "{fields}");
}

#[tokio::test]
async fn a_watch_sees_create_update_and_delete() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("watch").await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.admin().await, &ns);
    let list = cms.list(&Default::default()).await.expect("list");
    let rv = list
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("watch")
        .boxed();

    let cm = |v: &str| {
        serde_json::from_value::<ConfigMap>(json!({
            "metadata": {"name": "w"}, "data": {"k": v}
        }))
        .unwrap()
    };
    cms.create(&PostParams::default(), &cm("1"))
        .await
        .expect("create");
    cms.replace("w", &PostParams::default(), &{
        let mut c = cms.get("w").await.expect("get");
        c.data = cm("2").data;
        c
    })
    .await
    .expect("update");
    cms.delete("w", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("event");
        match ev {
            WatchEvent::Added(c) => seen.push(("added", c.data.unwrap()["k"].clone())),
            WatchEvent::Modified(c) => seen.push(("modified", c.data.unwrap()["k"].clone())),
            WatchEvent::Deleted(c) => seen.push(("deleted", c.data.unwrap()["k"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    let got: Vec<(&str, &str)> = seen.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got, [("added", "1"), ("modified", "2"), ("deleted", "2")]);
}

#[tokio::test]
async fn rbac_limits_a_service_account_to_its_namespace() {
    let cluster = TestCluster::get();
    let admin = cluster.admin().await;
    let home = cluster.namespace("rbac-home").await;
    let other = cluster.namespace("rbac-other").await;

    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), &home)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": home}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &home)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");

    let token = cluster.service_account_token(&home, "reader").await;
    let sa = cluster.client_with_token(token).await;
    Api::<Secret>::namespaced(sa.clone(), &home)
        .list(&Default::default())
        .await
        .expect("SA may list Secrets in its namespace");
    match Api::<Secret>::namespaced(sa.clone(), &other)
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("expected 403 in another namespace, got {other:?}"),
    }
    // Nor may it write in its own namespace (the Role grants reads only).
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    match Api::<Secret>::namespaced(sa, &home)
        .create(&PostParams::default(), &s)
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("expected 403 on create, got {other:?}"),
    }
}

#[tokio::test]
async fn token_review_accepts_a_token_request_token() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("tokens").await;
    let token = cluster.service_account_token(&ns, "bao-auth").await;
    let reviews: Api<TokenReview> = Api::all(cluster.admin().await);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let out = reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("TokenReview");
    let status = out.status.expect("status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:bao-auth").as_str())
    );

    // A forged token is not authenticated.
    let forged = TokenReview {
        spec: TokenReviewSpec {
            token: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".to_owned(),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let out = reviews
        .create(&PostParams::default(), &forged)
        .await
        .expect("TokenReview");
    assert_ne!(out.status.and_then(|s| s.authenticated), Some(true));
}

/// Answers AdmissionReview requests: denies objects named `deny-*`.
async fn review(axum::Json(body): axum::Json<serde_json::Value>) -> axum::Json<serde_json::Value> {
    let uid = body["request"]["uid"].clone();
    let name = body["request"]["object"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let allowed = !name.starts_with("deny-");
    let mut response = json!({"uid": uid, "allowed": allowed});
    if !allowed {
        response["status"] =
            json!({"code": 403, "message": "refused by the sealgate test webhook"});
    }
    axum::Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response
    }))
}

#[tokio::test]
async fn a_validating_webhook_on_loopback_can_deny_a_secret() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = TestCluster::get();
    let admin = cluster.admin().await;
    let ns = cluster.namespace("webhook").await;
    // Label the namespace so the webhook only sees this test's objects (the
    // control plane is shared with other tests).
    Api::<Namespace>::all(admin.clone())
        .patch(
            &ns,
            &PatchParams::apply("sealgate-tests"),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"sealgate-webhook-test": ns}}
            })),
        )
        .await
        .expect("label namespace");

    let pki = Pki::new("webhook-ca");
    let (cert, key) = pki.server_cert(&[]);
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes())
        .await
        .expect("webhook TLS config");
    let port = free_port();
    let app = axum::Router::new().route("/validate", axum::routing::post(review));
    let server = tokio::spawn(
        axum_server::bind_rustls(std::net::SocketAddr::from(([127, 0, 0, 1], port)), tls)
            .serve(app.into_make_service()),
    );

    let name = format!("deny-test-{ns}");
    let vwc: k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration =
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "webhooks": [{
                "name": "deny.test.sealgate.dev",
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{port}/validate"),
                    "caBundle": base64_encode(&pki.ca_cert),
                },
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["secrets"]}],
                "namespaceSelector": {"matchLabels": {"sealgate-webhook-test": ns}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5
            }]
        }))
        .unwrap();
    let vwcs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(admin.clone());
    vwcs.create(&PostParams::default(), &vwc)
        .await
        .expect("create ValidatingWebhookConfiguration");

    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    // The apiserver picks up webhook configurations asynchronously: retry
    // until the webhook answers (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let denial = loop {
        attempt += 1;
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("deny-me-{attempt}")},
            "stringData": {"k": "v"}
        }))
        .unwrap();
        match secrets.create(&PostParams::default(), &s).await {
            Err(kube::Error::Api(e)) => break e,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => panic!("webhook never denied the Secret: {other:?}"),
        }
    };
    assert_eq!(denial.code, 403, "{denial:?}");
    assert!(
        denial
            .message
            .contains("refused by the sealgate test webhook"),
        "{}",
        denial.message
    );
    let ok: Secret = serde_json::from_value(json!({"metadata": {"name": "allow-me"}})).unwrap();
    secrets
        .create(&PostParams::default(), &ok)
        .await
        .expect("webhook allows other names");

    vwcs.delete(&name, &DeleteParams::default())
        .await
        .expect("delete webhook configuration");
    server.abort();
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn the_control_plane_runs_the_pinned_kubernetes_version() {
    let cluster = TestCluster::get();
    if std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true") {
        return;
    }
    let pinned = crate::support::tools::version("KUBERNETES_VERSION");
    assert_eq!(cluster.version(), pinned);
}
