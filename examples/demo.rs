//! `make demo`: sealgate's main job end to end on local defaults.
//!
//! Starts a local Kubernetes control plane (etcd + kube-apiserver) and an
//! OpenBao dev server (the test fixtures in `tests/support`), installs the
//! CRDs, applies the manifests in `examples/demo/`, runs the real
//! `sealgate controller` binary, and narrates: a Secret appears from
//! OpenBao, rotates when the value changes in OpenBao, a sops-encrypted
//! SopsSecret is decrypted, and a tampered one is refused while the Secret
//! keeps its content. Everything stops when it ends. Values are never
//! printed — only key names, sizes and keyed fingerprints.
//!
//! Usage: demo SEALGATE_BINARY

#[path = "../tests/support/mod.rs"]
#[allow(unused)]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use sealgate::controller::api::{ExternalSecret, SopsSecret};

const FIELD_MANAGER: &str = "sealgate-demo";

fn say(step: &str) {
    println!("\n==> {step}");
}

/// A keyed fingerprint of a value, so the demo can show "it changed"
/// without printing it (the key is random per run).
fn fingerprint(key: &[u8; 16], value: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key size");
    mac.update(value);
    mac.finalize().into_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn describe(secret: &Secret, key: &[u8; 16]) -> String {
    secret
        .data
        .as_ref()
        .map(|d| {
            d.iter()
                .map(|(k, v)| format!("{k} ({} bytes, fp {})", v.0.len(), fingerprint(key, &v.0)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn random_password() -> String {
    let mut b = [0u8; 15];
    getrandom::fill(&mut b).expect("randomness");
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

async fn apply_yaml(client: &Client, text: &str) -> anyhow::Result<()> {
    let obj: DynamicObject = serde_saphyr::from_str(text).context("parsing manifest")?;
    let types = obj.types.clone().context("apiVersion/kind")?;
    let (group, version) = types
        .api_version
        .split_once('/')
        .unwrap_or(("", types.api_version.as_str()));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: types.api_version.clone(),
        kind: types.kind.clone(),
        plural: format!("{}s", types.kind.to_lowercase()),
    };
    let ns = obj.metadata.namespace.clone().context("namespace")?;
    let name = obj.metadata.name.clone().context("name")?;
    Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &resource)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("applying {}/{name}", types.kind))?;
    println!("    applied {}/{name}", types.kind);
    Ok(())
}

async fn wait<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(v) = f().await {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

fn ready_of(status: Option<&serde_json::Value>) -> Option<(String, String, String)> {
    let conds = status?.get("conditions")?.as_array()?;
    let c = conds.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str().unwrap_or("").to_owned(),
        c["message"].as_str().unwrap_or("").to_owned(),
    ))
}

struct Controller(Child);
impl Drop for Controller {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: demo SEALGATE_BINARY")?,
    );
    let demo_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let mut fp_key = [0u8; 16];
    getrandom::fill(&mut fp_key).context("randomness")?;

    say("Starting a local control plane (etcd + kube-apiserver) and an OpenBao dev server");
    let cluster = tokio::task::spawn_blocking(support::cluster::TestCluster::get).await?;
    let bao = tokio::task::spawn_blocking(support::openbao::OpenBao::start).await?;
    println!(
        "    kube-apiserver {} · OpenBao at {}",
        cluster.version(),
        bao.addr()
    );
    let client = cluster.admin().await;

    say("Writing secret/demo/db in OpenBao (the only place the value lives)");
    let vault = bao.client();
    let mut values = BTreeMap::from([
        ("username", "app".to_owned()),
        ("password", random_password()),
    ]);
    vaultrs::kv2::set(&vault, "secret", "demo/db", &values).await?;

    say("Installing the CRDs, namespaces, the store credential and the age key");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in sealgate::cli::crds::all() {
        let name = crd.metadata.name.clone().context("CRD name")?;
        crds.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        )
        .await?;
        println!("    crd {name}");
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["demo", "sealgate-system"] {
        nss.patch(
            ns,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        )
        .await?;
    }
    let token_secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "openbao-token", "namespace": "demo"},
        "data": {"token": ByteString(bao.root_token().as_bytes().to_vec())},
    });
    Api::<Secret>::namespaced(client.clone(), "demo")
        .patch(
            "openbao-token",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(token_secret),
        )
        .await?;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let identity_text = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    let age_secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": "sealgate-system"},
        "data": {"demo.agekey": ByteString(identity_text.into_bytes())},
    });
    Api::<Secret>::namespaced(client.clone(), "sealgate-system")
        .patch(
            "sops-age",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(age_secret),
        )
        .await?;

    say("Starting `sealgate controller`");
    let log_path = std::env::temp_dir().join(format!(
        "sealgate-demo-controller-{}.log",
        std::process::id()
    ));
    let log = std::fs::File::create(&log_path)?;
    let _controller = Controller(
        Command::new(&binary)
            .args([
                "controller",
                "--log-format",
                "json",
                "--log-level",
                "info",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("POD_NAMESPACE", "sealgate-system")
            .env("POD_NAME", "sealgate-demo")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting sealgate controller")?,
    );
    println!("    logs: {}", log_path.display());

    say("Applying examples/demo/secretstore.yaml and externalsecret.yaml");
    let store = std::fs::read_to_string(demo_dir.join("secretstore.yaml"))?
        .replace("${VAULT_ADDR}", &bao.addr());
    apply_yaml(&client, &store).await?;
    apply_yaml(
        &client,
        &std::fs::read_to_string(demo_dir.join("externalsecret.yaml"))?,
    )
    .await?;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "demo");
    let started = Instant::now();
    let first = wait(
        "Secret demo/db-credentials",
        Duration::from_secs(60),
        || async { secrets.get_opt("db-credentials").await.ok().flatten() },
    )
    .await?;
    println!(
        "    Secret db-credentials appeared after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        describe(&first, &fp_key)
    );
    let es_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "demo",
        &ApiResource::erase::<ExternalSecret>(&()),
    );
    if let Ok(es) = es_api.get("db").await
        && let Some((status, reason, _)) = ready_of(es.data.get("status"))
    {
        println!("    ExternalSecret db: Ready={status} ({reason})");
    }

    say("Rotating the password in OpenBao; the Secret follows within one refresh (5 s)");
    values.insert("password", random_password());
    vaultrs::kv2::set(&vault, "secret", "demo/db", &values).await?;
    let before = first.data.clone().unwrap_or_default();
    let rotated_at = Instant::now();
    let rotated = wait("the rotated Secret", Duration::from_secs(30), || async {
        secrets
            .get_opt("db-credentials")
            .await
            .ok()
            .flatten()
            .filter(|s| s.data.clone().unwrap_or_default() != before)
    })
    .await?;
    println!(
        "    rotated after {:.1} s: {}",
        rotated_at.elapsed().as_secs_f64(),
        describe(&rotated, &fp_key)
    );

    say(
        "Encrypting a Secret manifest with `sealgate encrypt` (age) and applying it as a SopsSecret",
    );
    let plain = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-config\ntype: Opaque\nstringData:\n  api-key: {}\n",
        random_password()
    );
    let work = tempfile::tempdir()?;
    let plain_path = work.path().join("app-config.yaml");
    std::fs::write(&plain_path, plain)?;
    let out = Command::new(&binary)
        .args([
            "encrypt",
            "--age",
            &recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
        ])
        .arg(&plain_path)
        .output()?;
    if !out.status.success() {
        bail!(
            "sealgate encrypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let encrypted = String::from_utf8(out.stdout)?;
    let indented: String = encrypted.lines().map(|l| format!("    {l}\n")).collect();
    let template = std::fs::read_to_string(demo_dir.join("sopssecret.yaml"))?;
    apply_yaml(&client, &template.replace("${ENCRYPTED}\n", &indented)).await?;
    let sops_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "demo",
        &ApiResource::erase::<SopsSecret>(&()),
    );
    let app = wait(
        "Secret demo/app-config",
        Duration::from_secs(30),
        || async { secrets.get_opt("app-config").await.ok().flatten() },
    )
    .await?;
    println!(
        "    Secret app-config decrypted: {}",
        describe(&app, &fp_key)
    );

    say("Tampering with one encrypted value in the SopsSecret");
    let marker = "ENC[AES256_GCM,data:";
    let at = indented.find(marker).context("an encrypted value")? + marker.len();
    let mut tampered = indented.into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    apply_yaml(&client, &template.replace("${ENCRYPTED}\n", &tampered)).await?;
    let (status, reason, message) = wait("the refusal", Duration::from_secs(30), || async {
        let s = sops_api.get("app-config").await.ok()?;
        ready_of(s.data.get("status")).filter(|(st, _, _)| st == "False")
    })
    .await?;
    println!("    SopsSecret app-config: Ready={status} ({reason}): {message}");
    let after = secrets.get("app-config").await?;
    println!(
        "    Secret app-config unchanged: {} (resourceVersion {} → {})",
        after.data == app.data && after.metadata.resource_version == app.metadata.resource_version,
        app.metadata.resource_version.unwrap_or_default(),
        after.metadata.resource_version.unwrap_or_default()
    );

    say("Stopping the controller, OpenBao and the control plane");
    Ok(())
}
