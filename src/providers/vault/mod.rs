//! Vault / OpenBao: KV v1 and v2, dynamic (leased) secrets from any engine,
//! lease renewal and revocation, and the client's own authentication.
//!
//! Design note: one [`VaultProvider`] per store. It logs in once, keeps the
//! token in a [`SecretString`], renews it before it expires and logs in
//! again when renewal fails or the server calls the token invalid. Every
//! call goes through [`VaultProvider::call`], which owns that policy and
//! the mapping of HTTP failures to [`ProviderError`] variants.
//!
//! OpenBao 2.x speaks the Vault API; both are tested through the same code
//! (the harness runs a real `bao server -dev`).

mod endpoints;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustify::endpoint::Endpoint;
use tokio::sync::RwLock;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{
    Fetched, FindQuery, Lease, Metadata, Provider, ProviderError, Reference, SecretValue,
    error_chain, shape,
};
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

/// KV engine version of the configured mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvVersion {
    /// Unversioned KV.
    V1,
    /// Versioned KV (the default mount of a dev server).
    #[default]
    V2,
}

/// How the provider authenticates. Credentials are held wrapped.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token given directly (dev, CI, or a token from a Kubernetes Secret).
    Token(SecretString),
    /// AppRole: role id + secret id.
    AppRole {
        /// Auth mount (default `approle`).
        mount: String,
        /// Role id (not secret by itself, still not logged).
        role_id: String,
        /// Secret id.
        secret_id: SecretString,
    },
    /// Kubernetes auth: a ServiceAccount JWT exchanged for a token.
    Kubernetes {
        /// Auth mount (default `kubernetes`).
        mount: String,
        /// Vault role bound to the ServiceAccount.
        role: String,
        /// The ServiceAccount token.
        jwt: SecretString,
    },
    /// JWT/OIDC auth with a JWT from any issuer Vault trusts.
    Jwt {
        /// Auth mount (default `jwt`).
        mount: String,
        /// Vault role.
        role: String,
        /// The JWT.
        jwt: SecretString,
    },
}

/// Everything a Vault store needs.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Store name, used in errors and metrics.
    pub store: String,
    /// Server URL, `https://vault.example:8200`.
    pub address: String,
    /// Enterprise/OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM files of CAs to trust for the server certificate.
    pub ca_certs: Vec<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI)
    /// when it differs from the host in `address` — e.g. connecting by IP
    /// or through a tunnel to a server whose certificate names its DNS name.
    pub tls_server_name: Option<String>,
    /// KV mount path (`secret`).
    pub kv_mount: String,
    /// KV engine version of that mount.
    pub kv_version: KvVersion,
    /// Timeout of each HTTP call.
    pub timeout: Duration,
    /// Authentication method.
    pub auth: VaultAuth,
}

impl VaultConfig {
    /// A config with defaults for everything but address and auth.
    pub fn new(store: impl Into<String>, address: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            store: store.into(),
            address: address.into(),
            namespace: None,
            ca_certs: Vec::new(),
            tls_server_name: None,
            kv_mount: "secret".to_owned(),
            kv_version: KvVersion::V2,
            timeout: Duration::from_secs(10),
            auth,
        }
    }
}

/// The client token and when to renew it.
struct Session {
    client: Arc<VaultClient>,
    /// `None` for tokens that never expire (root, or TTL 0).
    renew_at: Option<Instant>,
    renewable: bool,
}

/// A Vault/OpenBao store.
pub struct VaultProvider {
    config: VaultConfig,
    session: RwLock<Session>,
}

impl std::fmt::Debug for VaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // VaultClient's own Debug prints the token; never delegate to it.
        f.debug_struct("VaultProvider")
            .field("store", &self.config.store)
            .field("address", &self.config.address)
            .finish_non_exhaustive()
    }
}

impl VaultProvider {
    /// Builds the client and authenticates, so a misconfigured store fails
    /// here (status `Ready=False`) rather than on the first secret.
    pub async fn connect(config: VaultConfig) -> Result<Self, ProviderError> {
        let session = login(&config).await?;
        Ok(Self {
            config,
            session: RwLock::new(session),
        })
    }

    /// The server address this store talks to; sops `hc_vault` entries are
    /// unwrapped through a store only when they name this same server, so a
    /// file can never make the controller send its token elsewhere.
    pub fn address(&self) -> &str {
        &self.config.address
    }

    /// Transit-decrypts a sops data key (`enc` of an `hc_vault` entry) with
    /// this store's session. Returns the raw data key.
    pub async fn transit_unwrap(
        &self,
        engine_path: &str,
        key_name: &str,
        ciphertext: &str,
    ) -> Result<SecretBytes, ProviderError> {
        let what = format!("{engine_path}/keys/{key_name}");
        let plaintext = self
            .call(&what, |c| async move {
                vaultrs::transit::data::decrypt(&*c, engine_path, key_name, ciphertext, None)
                    .await
                    .map(|r| SecretString::new(r.plaintext))
            })
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(plaintext.expose_secret())
            .map(SecretBytes::new)
            .map_err(|_| ProviderError::Invalid {
                store: self.config.store.clone(),
                key: what,
                detail: "Transit returned a plaintext that is not base64".into(),
            })
    }

    /// Checks the current token against the server (`auth/token/lookup-self`)
    /// without reading any secret: what `sealgate store check` reports.
    pub async fn check(&self) -> Result<(), ProviderError> {
        self.call("", |c| async move {
            vaultrs::token::lookup_self(&*c).await.map(|_| ())
        })
        .await
    }

    fn err(&self, key: &str, e: ClientError) -> ProviderError {
        map_error(&self.config.store, key, e)
    }

    /// Runs `op` with a fresh-enough client, renewing or re-authenticating
    /// first when due, and once more after a re-login if the server
    /// rejected the token.
    async fn call<T, F, Fut>(&self, key: &str, op: F) -> Result<T, ProviderError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.refresh_token_if_due().await?;
        let client = self.client().await?;
        match op(client).await {
            Ok(v) => Ok(v),
            Err(e) => match self.err(key, e) {
                ProviderError::Unauthenticated { .. }
                    if !matches!(self.config.auth, VaultAuth::Token(_)) =>
                {
                    *self.session.write().await = login(&self.config).await?;
                    op(self.client().await?).await.map_err(|e| self.err(key, e))
                }
                other => Err(other),
            },
        }
    }

    /// The authenticated client; shared, so calls reuse its connection pool.
    async fn client(&self) -> Result<Arc<VaultClient>, ProviderError> {
        Ok(Arc::clone(&self.session.read().await.client))
    }

    async fn refresh_token_if_due(&self) -> Result<(), ProviderError> {
        let due = {
            let s = self.session.read().await;
            s.renew_at.is_some_and(|t| Instant::now() >= t)
        };
        if !due {
            return Ok(());
        }
        let mut s = self.session.write().await;
        if s.renew_at.is_none_or(|t| Instant::now() < t) {
            return Ok(()); // another task renewed meanwhile
        }
        if s.renewable {
            match vaultrs::token::renew_self(&*s.client, None).await {
                Ok(auth) => {
                    s.renew_at = renew_deadline(auth.lease_duration);
                    s.renewable = auth.renewable;
                    tracing::debug!(store = %self.config.store, ttl = auth.lease_duration, "renewed vault token");
                    return Ok(());
                }
                Err(e) => {
                    tracing::info!(store = %self.config.store, error = %e, "token renewal failed; logging in again");
                }
            }
        }
        *s = login(&self.config).await?;
        Ok(())
    }

    /// Reads a KV secret (v1 or v2 per the store config).
    async fn fetch_kv(&self, r: &Reference) -> Result<Fetched, ProviderError> {
        let mount = self.config.kv_mount.clone();
        let mut meta = Metadata::now();
        let data = match self.config.kv_version {
            KvVersion::V2 => {
                let version = match &r.version {
                    None => None,
                    Some(v) => Some(v.parse::<u64>().map_err(|_| ProviderError::Invalid {
                        store: self.config.store.clone(),
                        key: r.key.clone(),
                        detail: format!("KV v2 version must be a number, got {v:?}"),
                    })?),
                };
                let path = r.key.clone();
                let resp = self
                    .call(&r.key, |c| {
                        let (mount, path) = (mount.clone(), path.clone());
                        async move {
                            let ep = vaultrs::api::kv2::requests::ReadSecretRequest::builder()
                                .mount(mount)
                                .path(path)
                                .version(version)
                                .build()
                                .map_err(|e| ClientError::RestClientError {
                                    source: rustify::errors::ClientError::EndpointBuildError {
                                        source: e.into(),
                                    },
                                })?;
                            vaultrs::api::exec_with_result(&*c, ep).await
                        }
                    })
                    .await?;
                meta.version = Some(resp.metadata.version.to_string());
                if let Some(custom) = resp.metadata.custom_metadata {
                    meta.labels = custom.into_iter().collect();
                }
                if resp.data.is_null() {
                    // A deleted (soft) version reads as null data.
                    return Err(ProviderError::NotFound {
                        store: self.config.store.clone(),
                        key: r.key.clone(),
                        detail: format!("version {} is deleted", resp.metadata.version),
                    });
                }
                resp.data
            }
            KvVersion::V1 => {
                if r.version.is_some() {
                    return Err(ProviderError::Invalid {
                        store: self.config.store.clone(),
                        key: r.key.clone(),
                        detail: "KV v1 has no versions".into(),
                    });
                }
                let path = format!("{}/{}", mount, r.key.trim_start_matches('/'));
                let resp = self.read_any(&r.key, &path).await?;
                resp.data.unwrap_or(serde_json::Value::Null)
            }
        };
        let value = SecretValue::Map(json_object_to_map(&self.config.store, &r.key, data)?);
        Ok(Fetched {
            value: shape(&self.config.store, r, value)?,
            meta,
        })
    }

    async fn read_any(
        &self,
        key: &str,
        path: &str,
    ) -> Result<endpoints::LeasedResponse, ProviderError> {
        let path = path.trim_start_matches('/').to_owned();
        self.call(key, |c| {
            let path = path.clone();
            async move { exec_full(&c, endpoints::ReadAny { path }).await }
        })
        .await
    }

    /// Issues a dynamic secret from any engine path (`database/creds/app`,
    /// `aws/creds/deploy`), keeping its lease for renewal and revocation.
    pub async fn issue(&self, r: &Reference) -> Result<Fetched, ProviderError> {
        let resp = self.read_any(&r.key, &r.key).await?;
        let mut meta = Metadata::now();
        if !resp.lease_id.is_empty() {
            meta.lease = Some(Lease {
                id: resp.lease_id,
                duration: Duration::from_secs(resp.lease_duration),
                renewable: resp.renewable,
            });
        }
        let data = resp.data.unwrap_or(serde_json::Value::Null);
        let value = SecretValue::Map(json_object_to_map(&self.config.store, &r.key, data)?);
        Ok(Fetched {
            value: shape(&self.config.store, r, value)?,
            meta,
        })
    }

    /// Extends a lease; returns it with the duration actually granted
    /// (which stops growing once max TTL is near: the caller then re-issues).
    pub async fn renew(
        &self,
        lease: &Lease,
        increment: Option<Duration>,
    ) -> Result<Lease, ProviderError> {
        let id = lease.id.clone();
        let resp = self
            .call(&lease.id, |c| {
                let lease_id = id.clone();
                async move {
                    let renew = endpoints::RenewLease {
                        lease_id,
                        increment: increment.map(|d| d.as_secs()),
                    };
                    exec_full(&c, renew).await
                }
            })
            .await?;
        Ok(Lease {
            id: if resp.lease_id.is_empty() {
                lease.id.clone()
            } else {
                resp.lease_id
            },
            duration: Duration::from_secs(resp.lease_duration),
            renewable: resp.renewable,
        })
    }

    /// Revokes a lease now; the backend deletes the credential (e.g. drops
    /// the PostgreSQL role).
    pub async fn revoke(&self, lease: &Lease) -> Result<(), ProviderError> {
        let id = lease.id.clone();
        self.call(&lease.id, |c| {
            let lease_id = id.clone();
            async move {
                endpoints::RevokeLease { lease_id }
                    .with_middleware(c.middle())
                    .exec(c.http())
                    .await
                    .map(|_| ())
                    .map_err(|e| ClientError::RestClientError { source: e })
            }
        })
        .await
    }
}

#[async_trait::async_trait]
impl Provider for VaultProvider {
    fn store(&self) -> &str {
        &self.config.store
    }

    async fn fetch(&self, reference: &Reference) -> Result<Fetched, ProviderError> {
        self.fetch_kv(reference).await
    }

    /// Lists the KV mount below `query.path` depth-first, then reads every
    /// matching name (tags are KV v2 custom metadata).
    async fn find(&self, query: &FindQuery) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        let mount = self.config.kv_mount.clone();
        let root = query
            .path
            .as_deref()
            .unwrap_or("")
            .trim_matches('/')
            .to_owned();
        let mut folders = vec![if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        }];
        let mut names = Vec::new();
        while let Some(folder) = folders.pop() {
            let keys = self
                .call(&folder, |c| {
                    let (mount, folder) = (mount.clone(), folder.clone());
                    let v2 = self.config.kv_version == KvVersion::V2;
                    async move {
                        if v2 {
                            vaultrs::kv2::list(&*c, &mount, &folder).await
                        } else {
                            vaultrs::kv1::list(&*c, &mount, &folder)
                                .await
                                .map(|r| r.data.keys)
                        }
                    }
                })
                .await;
            let keys = match keys {
                Ok(k) => k,
                // An empty folder (or a missing path) lists as 404.
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            for k in keys {
                let full = format!("{folder}{k}");
                if k.ends_with('/') {
                    folders.push(full);
                } else if query.matches_name(&full) {
                    names.push(full);
                    if names.len() > super::FIND_LIMIT {
                        return Err(super::too_many(&self.config.store, query));
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for name in names {
            let f = self.fetch_kv(&Reference::key(name.clone())).await?;
            if query.matches_tags(&f.meta.labels) {
                out.insert(name, f);
            }
        }
        Ok(out)
    }
}

/// Runs one of our own endpoints with the client's token and namespace and
/// parses the whole response envelope (lease fields included).
async fn exec_full<E: Endpoint>(c: &VaultClient, endpoint: E) -> Result<E::Response, ClientError> {
    endpoint
        .with_middleware(c.middle())
        .exec(c.http())
        .await
        .map_err(|e| ClientError::RestClientError { source: e })?
        .parse()
        .map_err(|e| ClientError::RestClientError { source: e })
}

/// Renew when two thirds of the TTL have passed.
fn renew_deadline(ttl_secs: u64) -> Option<Instant> {
    (ttl_secs > 0).then(|| Instant::now() + Duration::from_secs(ttl_secs * 2 / 3))
}

fn build_client(config: &VaultConfig, token: &str) -> Result<VaultClient, ProviderError> {
    let mut b = VaultClientSettingsBuilder::default();
    b.address(config.address.as_str())
        .token(token)
        .timeout(Some(config.timeout))
        .ca_certs(
            config
                .ca_certs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        );
    if let Some(ns) = &config.namespace {
        b.namespace(Some(ns.clone()));
    }
    let settings = b.build().map_err(|e| ProviderError::Invalid {
        store: config.store.clone(),
        key: String::new(),
        detail: format!("vault client settings: {e}"),
    })?;
    let mut client = VaultClient::new(settings).map_err(|e| map_error(&config.store, "", e))?;
    if let Some(name) = &config.tls_server_name {
        client.http = server_name_client(config, name)?;
    }
    Ok(client)
}

/// An HTTP client that connects to `config.address` but addresses (SNI,
/// certificate check, Host header) `name`: the URL uses `name` and DNS for
/// it is overridden to the address's host.
fn server_name_client(
    config: &VaultConfig,
    name: &str,
) -> Result<rustify::clients::reqwest::Client, ProviderError> {
    let invalid = |detail: String| ProviderError::Invalid {
        store: config.store.clone(),
        key: String::new(),
        detail,
    };
    let url = reqwest::Url::parse(&config.address)
        .map_err(|e| invalid(format!("vault address {:?}: {e}", config.address)))?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid("vault address has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(8200);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ProviderError::Unavailable {
            store: config.store.clone(),
            detail: format!("cannot resolve {host}"),
        })?;
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_rustls()
        .resolve(name, target)
        .timeout(config.timeout);
    let mut certs = Vec::new();
    for path in &config.ca_certs {
        let pem =
            std::fs::read(path).map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
        certs.extend(
            reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?,
        );
    }
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs);
    }
    let http = builder
        .build()
        .map_err(|e| invalid(format!("HTTP client: {e}")))?;
    let mut base = url.clone();
    base.set_host(Some(name))
        .map_err(|e| invalid(format!("tls server name {name:?}: {e}")))?;
    let base = base.as_str().trim_end_matches('/').to_owned();
    Ok(rustify::clients::reqwest::Client::new(&base, http))
}

async fn login(config: &VaultConfig) -> Result<Session, ProviderError> {
    let anon = build_client(config, "")?;
    let auth = match &config.auth {
        VaultAuth::Token(t) => {
            let client = build_client(config, t.expose_secret())?;
            // Learn the TTL so renewal happens on time; a failure here is
            // the authentication check.
            let info = vaultrs::token::lookup_self(&client)
                .await
                .map_err(|e| map_login_error(&config.store, e))?;
            return Ok(Session {
                client: Arc::new(client),
                renew_at: renew_deadline(info.ttl),
                renewable: info.renewable.unwrap_or(false),
            });
        }
        VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } => vaultrs::auth::approle::login(&anon, mount, role_id, secret_id.expose_secret()).await,
        VaultAuth::Kubernetes { mount, role, jwt } => {
            vaultrs::auth::kubernetes::login(&anon, mount, role, jwt.expose_secret()).await
        }
        VaultAuth::Jwt { mount, role, jwt } => {
            vaultrs::auth::oidc::login(&anon, mount, jwt.expose_secret(), Some(role.clone())).await
        }
    }
    .map_err(|e| map_login_error(&config.store, e))?;
    tracing::debug!(store = %config.store, ttl = auth.lease_duration, "logged in to vault");
    // vaultrs returns the token as a plain String; wrap it at once.
    let token = SecretString::new(auth.client_token);
    Ok(Session {
        client: Arc::new(build_client(config, token.expose_secret())?),
        renew_at: renew_deadline(auth.lease_duration),
        renewable: auth.renewable,
    })
}

fn map_login_error(store: &str, e: ClientError) -> ProviderError {
    match map_error(store, "", e) {
        // A refused login is an authentication problem whatever the code.
        ProviderError::PermissionDenied { detail, .. } | ProviderError::Invalid { detail, .. } => {
            ProviderError::Unauthenticated {
                store: store.to_owned(),
                detail,
            }
        }
        other => other,
    }
}

/// Maps a vaultrs error to what the controller acts on. Details come from
/// the server's error list or the transport error chain, never bodies.
fn map_error(store: &str, key: &str, e: ClientError) -> ProviderError {
    let (store, key) = (store.to_owned(), key.to_owned());
    match e {
        ClientError::APIError { code, errors } => {
            let detail = if errors.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {}", errors.join("; "))
            };
            let lower = detail.to_lowercase();
            match code {
                404 => ProviderError::NotFound { store, key, detail },
                401 => ProviderError::Unauthenticated { store, detail },
                403 if lower.contains("invalid token") || lower.contains("token expired") => {
                    ProviderError::Unauthenticated { store, detail }
                }
                403 => ProviderError::PermissionDenied { store, key, detail },
                429 => ProviderError::Throttled { store, detail },
                400 | 405 | 409 | 412 => ProviderError::Invalid { store, key, detail },
                _ => ProviderError::Unavailable { store, detail },
            }
        }
        ClientError::RestClientError { source } => {
            use rustify::errors::ClientError as R;
            match source {
                R::ServerResponseError { code: 404, .. } => ProviderError::NotFound {
                    store,
                    key,
                    detail: "HTTP 404".into(),
                },
                R::ServerResponseError { code, content } => {
                    // Re-parse Vault's {"errors": [...]} for the message.
                    let errors = content
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                        .and_then(|v| v.get("errors").cloned())
                        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                        .unwrap_or_default();
                    map_error(&store, &key, ClientError::APIError { code, errors })
                }
                other => ProviderError::Unavailable {
                    store,
                    detail: error_chain(&other),
                },
            }
        }
        ClientError::ResponseDataEmptyError | ClientError::ResponseEmptyError => {
            ProviderError::NotFound {
                store,
                key,
                detail: "the server returned no data".into(),
            }
        }
        other => ProviderError::Unavailable {
            store,
            detail: error_chain(&other),
        },
    }
}

/// Converts a KV payload (a JSON object) to a map of wrapped values.
fn json_object_to_map(
    store: &str,
    key: &str,
    data: serde_json::Value,
) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
    match data {
        serde_json::Value::Object(m) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let b = super::property::json_leaf(&v);
                (k, b)
            })
            .collect()),
        serde_json::Value::Null => Err(ProviderError::NotFound {
            store: store.to_owned(),
            key: key.to_owned(),
            detail: "the secret has no data".into(),
        }),
        _ => Err(ProviderError::Invalid {
            store: store.to_owned(),
            key: key.to_owned(),
            detail: "the secret's data is not a JSON object".into(),
        }),
    }
}

/// What the backend knows about a lease (`sys/leases/lookup`): enough for a
/// restarted controller to resume renewing it instead of issuing anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease as it stands: `duration` is the time left now.
    pub lease: Lease,
    /// When the lease was created.
    pub issue_time: Option<std::time::SystemTime>,
    /// When it ends unless renewed.
    pub expire_time: Option<std::time::SystemTime>,
    /// The last successful renewal, if any.
    pub last_renewal: Option<std::time::SystemTime>,
}

impl VaultProvider {
    /// Looks a lease up without renewing it. A lease that was revoked or
    /// has expired answers `Invalid`/`NotFound` (Vault says "invalid
    /// lease" with HTTP 400).
    pub async fn lookup(&self, lease_id: &str) -> Result<LeaseInfo, ProviderError> {
        let id = lease_id.to_owned();
        let resp = self
            .call(lease_id, |c| {
                let lease_id = id.clone();
                async move { exec_full(&c, endpoints::LookupLease { lease_id }).await }
            })
            .await?;
        let d = resp.data;
        let time = |s: &Option<String>| {
            s.as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(std::time::SystemTime::from)
        };
        Ok(LeaseInfo {
            lease: Lease {
                id: if d.id.is_empty() {
                    lease_id.to_owned()
                } else {
                    d.id.clone()
                },
                duration: Duration::from_secs(d.ttl),
                renewable: d.renewable,
            },
            issue_time: time(&d.issue_time),
            expire_time: time(&d.expire_time),
            last_renewal: time(&d.last_renewal),
        })
    }
}
