//! Store definitions read from a file, for the CLI (`sealgate store check`,
//! `sealgate get`) and for running the providers outside a cluster.
//!
//! Design note: the shape follows the `provider` block of a `SecretStore`
//! so a definition moves between the file and the CRD with few edits. The
//! difference is where credentials come from: in a cluster they are
//! references to Kubernetes Secrets; here they are `{env: NAME}` or
//! `{file: PATH}`, so no credential is ever written into the definition.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::aws::{AwsAuth, AwsConfig, ParameterStoreProvider, SecretsManagerProvider};
use super::vault::{KvVersion, VaultAuth, VaultConfig, VaultProvider};
use super::{Provider, ProviderError};
use crate::secret::SecretString;

/// Why a store definition cannot be used. Names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read store definition {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not describe a store.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message (with line and column).
        message: String,
    },
    /// A field is missing or contradictory.
    #[error("{path}: {field}: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A credential source could not be read.
    #[error("{path}: {field}: {message}")]
    Credential {
        /// The file.
        path: PathBuf,
        /// Dotted field path.
        field: String,
        /// What is wrong (never the value).
        message: String,
    },
}

/// Where a credential comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialSource {
    /// Environment variable name.
    pub env: Option<String>,
    /// File path (trailing newline trimmed).
    pub file: Option<PathBuf>,
}

/// A store definition file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreFile {
    /// Store name used in messages.
    pub name: String,
    /// Vault/OpenBao backend.
    pub vault: Option<VaultSpec>,
    /// AWS backend.
    pub aws: Option<AwsSpec>,
}

/// `vault:` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultSpec {
    /// Server URL.
    pub server: String,
    /// KV mount (default `secret`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// KV version, 1 or 2 (default 2).
    #[serde(default = "default_kv")]
    pub kv_version: u8,
    /// Namespace header.
    pub namespace: Option<String>,
    /// CA bundle file.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the server certificate against, when it differs
    /// from the host in `server`.
    pub tls_server_name: Option<String>,
    /// Request timeout in seconds (default 10).
    pub timeout_seconds: Option<u64>,
    /// Exactly one auth method.
    pub auth: VaultAuthSpec,
}

/// `vault.auth:` block; exactly one field set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultAuthSpec {
    /// A token.
    pub token: Option<CredentialSource>,
    /// AppRole.
    pub app_role: Option<AppRoleSpec>,
    /// Kubernetes auth.
    pub kubernetes: Option<RoleJwtSpec>,
    /// JWT auth.
    pub jwt: Option<RoleJwtSpec>,
}

/// AppRole credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppRoleSpec {
    /// Auth mount (default `approle`).
    #[serde(default = "default_approle")]
    pub mount: String,
    /// Role id.
    pub role_id: String,
    /// Secret id source.
    pub secret_id: CredentialSource,
}

/// Kubernetes/JWT login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleJwtSpec {
    /// Auth mount (default `kubernetes` or `jwt`).
    pub mount: Option<String>,
    /// Vault role.
    pub role: String,
    /// Where the JWT is.
    pub jwt: CredentialSource,
}

/// `aws:` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsSpec {
    /// `SecretsManager` (default) or `ParameterStore`.
    #[serde(default = "default_service")]
    pub service: String,
    /// Region.
    pub region: String,
    /// Endpoint override.
    pub endpoint: Option<String>,
    /// Request timeout in seconds (default 10).
    pub timeout_seconds: Option<u64>,
    /// Absent: the SDK's default chain.
    pub auth: Option<AwsAuthSpec>,
}

/// `aws.auth:` block; at most one field set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsAuthSpec {
    /// Static keys.
    #[serde(rename = "static")]
    pub static_keys: Option<StaticKeysSpec>,
    /// Web identity (IRSA).
    pub web_identity: Option<WebIdentitySpec>,
}

/// Static AWS keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticKeysSpec {
    /// Access key id source.
    pub access_key_id: CredentialSource,
    /// Secret access key source.
    pub secret_access_key: CredentialSource,
    /// Session token source.
    pub session_token: Option<CredentialSource>,
}

/// Web identity settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebIdentitySpec {
    /// Token file.
    pub token_file: PathBuf,
    /// Role to assume.
    pub role_arn: String,
    /// Session name (default `sealgate`).
    pub session_name: Option<String>,
}

fn default_mount() -> String {
    "secret".into()
}
fn default_kv() -> u8 {
    2
}
fn default_approle() -> String {
    "approle".into()
}
fn default_service() -> String {
    "SecretsManager".into()
}

/// A store built from a definition, ready to fetch.
pub enum Store {
    /// Vault/OpenBao (boxed: its session state dwarfs the AWS clients).
    Vault(Box<VaultProvider>),
    /// AWS Secrets Manager.
    SecretsManager(SecretsManagerProvider),
    /// AWS SSM Parameter Store.
    ParameterStore(ParameterStoreProvider),
}

impl Store {
    /// The store as a generic provider.
    pub fn provider(&self) -> &dyn Provider {
        match self {
            Self::Vault(p) => p.as_ref(),
            Self::SecretsManager(p) => p,
            Self::ParameterStore(p) => p,
        }
    }

    /// Proves reachability and authentication without reading a secret.
    pub async fn check(&self) -> Result<(), ProviderError> {
        match self {
            Self::Vault(p) => p.check().await,
            Self::SecretsManager(p) => p.check().await,
            Self::ParameterStore(p) => p.check().await,
        }
    }
}

impl StoreFile {
    /// Reads and validates a definition file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: StoreFile = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let field = |field: &str, message: &str| ConfigError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            message: message.to_owned(),
        };
        match (&file.vault, &file.aws) {
            (Some(_), Some(_)) => {
                return Err(field("vault/aws", "set exactly one backend, not both"));
            }
            (None, None) => return Err(field("vault/aws", "set exactly one backend")),
            _ => {}
        }
        if let Some(v) = &file.vault {
            let a = &v.auth;
            let n = [
                a.token.is_some(),
                a.app_role.is_some(),
                a.kubernetes.is_some(),
                a.jwt.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return Err(field(
                    "vault.auth",
                    "set exactly one of token, appRole, kubernetes, jwt",
                ));
            }
            if v.kv_version != 1 && v.kv_version != 2 {
                return Err(field("vault.kvVersion", "must be 1 or 2"));
            }
        }
        if let Some(a) = &file.aws {
            if a.service != "SecretsManager" && a.service != "ParameterStore" {
                return Err(field(
                    "aws.service",
                    "must be SecretsManager or ParameterStore",
                ));
            }
            if let Some(auth) = &a.auth
                && auth.static_keys.is_some()
                && auth.web_identity.is_some()
            {
                return Err(field("aws.auth", "set at most one of static, webIdentity"));
            }
        }
        Ok(file)
    }

    /// Builds the provider, reading credentials now (and only now).
    pub async fn connect(&self, path: &Path) -> Result<Store, StoreError> {
        let cred = |field: &str, src: &CredentialSource| -> Result<SecretString, ConfigError> {
            read_credential(path, field, src)
        };
        if let Some(v) = &self.vault {
            let auth = if let Some(t) = &v.auth.token {
                VaultAuth::Token(cred("vault.auth.token", t)?)
            } else if let Some(a) = &v.auth.app_role {
                VaultAuth::AppRole {
                    mount: a.mount.clone(),
                    role_id: a.role_id.clone(),
                    secret_id: cred("vault.auth.appRole.secretId", &a.secret_id)?,
                }
            } else if let Some(k) = &v.auth.kubernetes {
                VaultAuth::Kubernetes {
                    mount: k.mount.clone().unwrap_or_else(|| "kubernetes".into()),
                    role: k.role.clone(),
                    jwt: cred("vault.auth.kubernetes.jwt", &k.jwt)?,
                }
            } else if let Some(j) = &v.auth.jwt {
                VaultAuth::Jwt {
                    mount: j.mount.clone().unwrap_or_else(|| "jwt".into()),
                    role: j.role.clone(),
                    jwt: cred("vault.auth.jwt.jwt", &j.jwt)?,
                }
            } else {
                return Err(missing(path, "vault.auth").into());
            };
            let mut config = VaultConfig::new(self.name.clone(), v.server.clone(), auth);
            config.kv_mount = v.mount.clone();
            config.kv_version = if v.kv_version == 1 {
                KvVersion::V1
            } else {
                KvVersion::V2
            };
            config.namespace = v.namespace.clone();
            config.ca_certs = v.ca_file.iter().cloned().collect();
            config.tls_server_name = v.tls_server_name.clone();
            if let Some(t) = v.timeout_seconds {
                config.timeout = Duration::from_secs(t);
            }
            return Ok(Store::Vault(Box::new(
                VaultProvider::connect(config).await?,
            )));
        }
        let Some(a) = &self.aws else {
            return Err(missing(path, "vault/aws").into());
        };
        let auth = match &a.auth {
            None => AwsAuth::DefaultChain,
            Some(AwsAuthSpec {
                static_keys: Some(s),
                ..
            }) => AwsAuth::Static {
                access_key_id: {
                    let id = cred("aws.auth.static.accessKeyId", &s.access_key_id)?;
                    crate::secret::ExposeSecret::expose_secret(&id).to_owned()
                },
                secret_access_key: cred("aws.auth.static.secretAccessKey", &s.secret_access_key)?,
                session_token: match &s.session_token {
                    Some(t) => Some(cred("aws.auth.static.sessionToken", t)?),
                    None => None,
                },
            },
            Some(AwsAuthSpec {
                web_identity: Some(w),
                ..
            }) => AwsAuth::WebIdentity {
                token_file: w.token_file.clone(),
                role_arn: w.role_arn.clone(),
                session_name: w.session_name.clone().unwrap_or_else(|| "sealgate".into()),
            },
            Some(_) => AwsAuth::DefaultChain,
        };
        let config = AwsConfig {
            store: self.name.clone(),
            region: a.region.clone(),
            endpoint: a.endpoint.clone(),
            auth,
            timeout: Duration::from_secs(a.timeout_seconds.unwrap_or(10)),
        };
        Ok(if a.service == "ParameterStore" {
            Store::ParameterStore(ParameterStoreProvider::connect(&config).await)
        } else {
            Store::SecretsManager(SecretsManagerProvider::connect(&config).await)
        })
    }
}

/// `load` validates these; kept as errors (not panics) for callers that
/// build a `StoreFile` by hand.
fn missing(path: &Path, field: &str) -> ConfigError {
    ConfigError::Field {
        path: path.to_owned(),
        field: field.to_owned(),
        message: "not set".into(),
    }
}

/// Either the definition or the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The definition is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend refused or could not be reached.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

fn read_credential(
    path: &Path,
    field: &str,
    src: &CredentialSource,
) -> Result<SecretString, ConfigError> {
    let err = |message: String| ConfigError::Credential {
        path: path.to_owned(),
        field: field.to_owned(),
        message,
    };
    let value = match (&src.env, &src.file) {
        (Some(var), None) => {
            std::env::var(var).map_err(|_| err(format!("environment variable {var} is not set")))?
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| err(format!("cannot read {}: {e}", f.display())))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        _ => return Err(err("set exactly one of env, file".into())),
    };
    if value.is_empty() {
        return Err(err("the credential is empty".into()));
    }
    Ok(SecretString::new(value))
}
