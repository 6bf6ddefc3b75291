//! The install manifests in `deploy/` are accepted by the real apiserver,
//! and the ServiceAccount gets exactly the access it needs — checked with
//! SubjectAccessReviews both ways.

use std::path::Path;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};

use crate::support::cluster::TestCluster;

const SA_USER: &str = "system:serviceaccount:sealgate-system:sealgate";

/// Applies every manifest under `deploy/<dir>` (server-side, idempotent).
pub async fn apply_dir(client: &Client, dir: &str) -> Vec<String> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("deploy dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    // Namespaces first, as kubectl would order them.
    files.sort_by_key(|p| !p.ends_with("namespace.yaml"));
    let mut applied = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let docs: Vec<DynamicObject> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs {
            let types = doc.types.clone().expect("apiVersion/kind");
            let gvk = kube::api::GroupVersionKind::try_from(&types).expect("gvk");
            let (resource, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{}: unknown kind {}", file.display(), types.kind));
            let name = doc.metadata.name.clone().expect("name");
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => Api::namespaced_with(
                    client.clone(),
                    doc.metadata.namespace.as_deref().expect("namespace"),
                    &resource,
                ),
                Scope::Cluster => Api::all_with(client.clone(), &resource),
            };
            api.patch(
                &name,
                &PatchParams::apply("sealgate-tests").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: apiserver refused {}/{name}: {e}",
                    file.display(),
                    types.kind
                )
            });
            applied.push(format!("{}/{name}", types.kind));
        }
    }
    applied
}

async fn allowed(client: &Client, attrs: ResourceAttributes) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(SA_USER.into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:sealgate-system".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(attrs),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

fn attrs(verb: &str, group: &str, resource: &str, ns: Option<&str>) -> ResourceAttributes {
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    ResourceAttributes {
        verb: Some(verb.into()),
        group: Some(group.into()),
        resource: Some(resource.into()),
        subresource: sub,
        namespace: ns.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_manifests_apply_and_grant_least_privilege() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let applied = apply_dir(&client, "controller").await;
    for expected in [
        "Namespace/sealgate-system",
        "ServiceAccount/sealgate",
        "ClusterRole/sealgate-controller",
        "Role/sealgate-leader-election",
        "Deployment/sealgate-controller",
    ] {
        assert!(
            applied.iter().any(|a| a == expected),
            "{expected} not in {applied:?}"
        );
    }

    let must = [
        attrs("list", "sealgate.dev", "externalsecrets", None),
        attrs("watch", "sealgate.dev", "sopssecrets", None),
        attrs(
            "patch",
            "sealgate.dev",
            "externalsecrets/status",
            Some("team-a"),
        ),
        attrs("patch", "", "secrets", Some("team-a")),
        attrs("create", "", "serviceaccounts/token", Some("team-a")),
        attrs(
            "patch",
            "coordination.k8s.io",
            "leases",
            Some("sealgate-system"),
        ),
        attrs("create", "events.k8s.io", "events", Some("team-a")),
        attrs("patch", "apps", "deployments", Some("team-a")),
    ];
    for a in must {
        let what = format!("{:?} {:?} {:?}", a.verb, a.resource, a.subresource);
        assert!(allowed(&client, a).await, "the controller needs {what}");
    }
    let must_not = [
        attrs(
            "patch",
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
        ),
        attrs("delete", "", "namespaces", None),
        attrs(
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
        ),
        attrs("create", "", "pods/exec", Some("team-a")),
        attrs("patch", "", "configmaps", Some("team-a")),
        attrs("delete", "apps", "deployments", Some("team-a")),
        attrs("create", "", "pods", Some("team-a")),
        attrs("delete", "sealgate.dev", "clustersecretstores", None),
    ];
    for a in must_not {
        let what = format!("{:?} {:?} {:?}", a.verb, a.resource, a.subresource);
        assert!(
            !allowed(&client, a).await,
            "the controller must not have {what}"
        );
    }

    // Applying again changes nothing (idempotent install).
    let again = apply_dir(&client, "controller").await;
    assert_eq!(applied, again);
}

/// The webhook manifests, applied server-side with `dryRun=All` and strict
/// field validation: the apiserver checks every object (schema, unknown
/// fields, admission) without storing the ValidatingWebhookConfiguration,
/// which would otherwise send every test's writes to a Service that does
/// not exist (failurePolicy Fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_manifests_are_accepted_by_the_apiserver() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    // The namespace and the controller's ServiceAccount come from deploy/controller.
    apply_dir(&client, "controller").await;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/webhook");
    let listed = std::fs::read_to_string(root.join("kustomization.yaml")).expect("kustomization");
    let mut seen = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("deploy/webhook")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    for file in files {
        let fname = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            listed.contains(&format!("- {fname}")),
            "{fname} is not listed in deploy/webhook/kustomization.yaml"
        );
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let docs: Vec<DynamicObject> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs {
            let types = doc.types.clone().expect("apiVersion/kind");
            let gvk = kube::api::GroupVersionKind::try_from(&types).expect("gvk");
            let (resource, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{}: unknown kind {}", file.display(), types.kind));
            let name = doc.metadata.name.clone().expect("name");
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => Api::namespaced_with(
                    client.clone(),
                    doc.metadata.namespace.as_deref().expect("namespace"),
                    &resource,
                ),
                Scope::Cluster => Api::all_with(client.clone(), &resource),
            };
            let params = PatchParams::apply("sealgate-tests")
                .force()
                .dry_run()
                .validation_strict();
            let echoed = api
                .patch(&name, &params, &Patch::Apply(&doc))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: apiserver refused {}/{name}: {e}",
                        file.display(),
                        types.kind
                    )
                });
            if types.kind == "ValidatingWebhookConfiguration" {
                let hooks = echoed.data["webhooks"].as_array().expect("webhooks");
                for h in hooks {
                    assert_eq!(h["sideEffects"], "None");
                    assert!(h["failurePolicy"].is_string(), "failurePolicy is explicit");
                    let excluded = h["namespaceSelector"]["matchExpressions"][0]["values"]
                        .as_array()
                        .expect("namespaceSelector values");
                    for ns in ["kube-system", "sealgate-system"] {
                        assert!(excluded.iter().any(|v| v == ns), "{ns} not excluded");
                    }
                    assert_eq!(h["clientConfig"]["service"]["path"], "/validate");
                }
            }
            seen.push(format!("{}/{name}", types.kind));
        }
    }
    for expected in [
        "ServiceAccount/sealgate-webhook",
        "ConfigMap/sealgate-webhook",
        "Deployment/sealgate-webhook",
        "Service/sealgate-webhook",
        "PodDisruptionBudget/sealgate-webhook",
        "ValidatingWebhookConfiguration/sealgate-gate",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not in {seen:?}"
        );
    }
    // Dry run: nothing was stored.
    let vwcs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(client.clone());
    assert!(vwcs.get_opt("sealgate-gate").await.expect("get").is_none());

    // The shipped webhook config parses as the webhook would load it.
    let cm = std::fs::read_to_string(root.join("configmap.yaml")).expect("configmap");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(&cm).expect("ConfigMap");
    let text = &cm.data.expect("data")["webhook.yaml"];
    let policy = sealgate::webhook::Policy::parse(text, Path::new("webhook.yaml"))
        .expect("shipped webhook config");
    assert!(policy.exempt_namespaces.contains("sealgate-system"));
    assert!(policy.sealgate_users.contains(SA_USER));
}

async fn allowed_as(client: &Client, sa: &str, attrs: ResourceAttributes) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:sealgate-system:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:sealgate-system".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(attrs),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// `deploy/gitops`: the apiserver accepts it, `sealgate gitops` itself is
/// confined to sealgate-system and may impersonate only the deployer, and
/// the deployer holds the (operator-chosen) apply rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_manifests_apply_and_grant_least_privilege() {
    let cluster = TestCluster::get();
    let client = cluster.admin().await;
    crate::crds::install(&client).await;
    let applied = apply_dir(&client, "gitops").await;
    for expected in [
        "Namespace/sealgate-system",
        "ServiceAccount/sealgate-gitops",
        "ServiceAccount/sealgate-gitops-deployer",
        "Role/sealgate-gitops",
        "RoleBinding/sealgate-gitops",
        "ClusterRole/sealgate-gitops-apply",
        "ClusterRoleBinding/sealgate-gitops-apply",
        "Deployment/sealgate-gitops",
    ] {
        assert!(
            applied.iter().any(|a| a == expected),
            "{expected} not in {applied:?}"
        );
    }
    let listed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gitops/kustomization.yaml"),
    )
    .expect("kustomization");
    for f in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "rbac.yaml",
        "deployment.yaml",
    ] {
        assert!(
            listed.contains(&format!("- {f}")),
            "{f} not in kustomization"
        );
    }
    let sys = Some("sealgate-system");
    let named = |mut a: ResourceAttributes, name: &str| {
        a.name = Some(name.into());
        a
    };
    let must = [
        attrs("watch", "sealgate.dev", "gitsyncs", sys),
        attrs("patch", "sealgate.dev", "gitsyncs/status", sys),
        attrs("get", "", "secrets", sys),
        attrs("create", "events.k8s.io", "events", sys),
        named(
            attrs("impersonate", "", "serviceaccounts", sys),
            "sealgate-gitops-deployer",
        ),
        attrs("create", "coordination.k8s.io", "leases", sys),
        named(
            attrs("patch", "coordination.k8s.io", "leases", sys),
            "sealgate-gitops",
        ),
    ];
    for a in must {
        let what = format!("{:?} {:?} {:?}", a.verb, a.resource, a.subresource);
        assert!(
            allowed_as(&client, "sealgate-gitops", a).await,
            "sealgate gitops needs {what}"
        );
    }
    let must_not = [
        attrs("list", "", "secrets", sys),
        attrs("get", "", "secrets", Some("team-a")),
        attrs("patch", "sealgate.dev", "gitsyncs", sys),
        attrs("watch", "sealgate.dev", "gitsyncs", Some("team-a")),
        named(attrs("impersonate", "", "serviceaccounts", sys), "sealgate"),
        attrs("impersonate", "", "users", None),
        attrs("patch", "apps", "deployments", Some("team-a")),
        attrs("delete", "", "namespaces", None),
        // The controller's Lease is not the GitOps loop's to take.
        named(
            attrs("patch", "coordination.k8s.io", "leases", sys),
            "sealgate-controller",
        ),
    ];
    for a in must_not {
        let what = format!("{:?} {:?} {:?}", a.verb, a.resource, a.subresource);
        assert!(
            !allowed_as(&client, "sealgate-gitops", a).await,
            "sealgate gitops must not have {what}"
        );
    }
    // The deployer: the example apply rights, and nothing beyond them.
    for a in [
        attrs("patch", "apps", "deployments", Some("team-a")),
        attrs("list", "", "configmaps", None),
        attrs("delete", "", "services", Some("team-a")),
    ] {
        let what = format!("{:?} {:?}", a.verb, a.resource);
        assert!(
            allowed_as(&client, "sealgate-gitops-deployer", a).await,
            "the deployer needs {what}"
        );
    }
    for a in [
        attrs(
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
        ),
        attrs("patch", "sealgate.dev", "gitsyncs", sys),
        attrs("create", "", "pods/exec", Some("team-a")),
    ] {
        let what = format!("{:?} {:?}", a.verb, a.resource);
        assert!(
            !allowed_as(&client, "sealgate-gitops-deployer", a).await,
            "the deployer must not have {what}"
        );
    }
    let again = apply_dir(&client, "gitops").await;
    assert_eq!(applied, again);
}
