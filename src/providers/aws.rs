//! AWS Secrets Manager and Systems Manager Parameter Store.
//!
//! Design note: both share one [`AwsConfig`] (region, endpoint override,
//! credentials) because External Secrets Operator users configure them as
//! one "aws" provider with a `service` switch. The SDK does its own
//! retries (standard mode); what comes out of it is mapped once, in
//! [`map_sdk_error`], from the service's error *code* (stable) rather than
//! its message (free text).
//!
//! Version selectors for Secrets Manager: a value that looks like a version
//! id (a UUID) selects `VersionId`; anything else (`AWSCURRENT`,
//! `AWSPREVIOUS`, a custom label) selects `VersionStage`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;

use super::{
    Fetched, FindQuery, Metadata, Provider, ProviderError, Reference, SecretValue, error_chain,
    shape,
};
use crate::secret::{ExposeSecret, SecretBytes, SecretString};

/// How to obtain AWS credentials.
#[derive(Debug, Clone)]
pub enum AwsAuth {
    /// The SDK's default chain (environment, profile, IMDS, web identity).
    DefaultChain,
    /// Static keys (read from a Kubernetes Secret by the controller).
    Static {
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: SecretString,
        /// Session token for temporary credentials.
        session_token: Option<SecretString>,
    },
    /// IRSA-style web identity: a projected token file and a role.
    WebIdentity {
        /// Path of the token file (re-read on every refresh).
        token_file: std::path::PathBuf,
        /// Role to assume.
        role_arn: String,
        /// Session name in CloudTrail.
        session_name: String,
    },
}

/// Connection settings shared by both services.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Store name, for errors and metrics.
    pub store: String,
    /// AWS region.
    pub region: String,
    /// Endpoint override (VPC endpoints, LocalStack, moto).
    pub endpoint: Option<String>,
    /// Credentials.
    pub auth: AwsAuth,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

async fn sdk_config(c: &AwsConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(c.region.clone()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(c.timeout)
                .connect_timeout(c.timeout)
                .build(),
        );
    if let Some(e) = &c.endpoint {
        loader = loader.endpoint_url(e.clone());
    }
    match &c.auth {
        AwsAuth::DefaultChain => {}
        AwsAuth::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            loader = loader.credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                access_key_id.clone(),
                secret_access_key.expose_secret().to_owned(),
                session_token.as_ref().map(|t| t.expose_secret().to_owned()),
                None,
                "sealgate-static",
            ));
        }
        AwsAuth::WebIdentity {
            token_file,
            role_arn,
            session_name,
        } => {
            let provider_config = aws_config::provider_config::ProviderConfig::default()
                .with_region(Some(aws_config::Region::new(c.region.clone())));
            let provider =
                aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(&provider_config)
                    .static_configuration(aws_config::web_identity_token::StaticConfiguration {
                        web_identity_token_file: token_file.clone(),
                        role_arn: role_arn.clone(),
                        session_name: session_name.clone(),
                    })
                    .build();
            loader = loader.credentials_provider(provider);
        }
    }
    loader.load().await
}

/// KMS-decrypts a sops data key (`enc` of a `kms` entry, base64 already
/// decoded) with a store's credentials and endpoint, in the key's region.
pub async fn kms_unwrap(
    config: &AwsConfig,
    arn: &str,
    region: &str,
    ciphertext: Vec<u8>,
) -> Result<SecretBytes, ProviderError> {
    let sdk = sdk_config(config).await;
    let kms_conf = aws_sdk_kms::config::Builder::from(&sdk)
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    let out = aws_sdk_kms::Client::from_conf(kms_conf)
        .decrypt()
        .key_id(arn)
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(ciphertext))
        .send()
        .await
        .map_err(|e| map_sdk_error(&config.store, arn, e))?;
    out.plaintext()
        .map(|p| SecretBytes::from(p.as_ref()))
        .ok_or_else(|| ProviderError::Invalid {
            store: config.store.clone(),
            key: arn.to_owned(),
            detail: "KMS returned no plaintext".into(),
        })
}

/// Maps an SDK error to a [`ProviderError`] by service error code.
fn map_sdk_error<E, R>(store: &str, key: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (store, key) = (store.to_owned(), key.to_owned());
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let detail = match err.message() {
                Some(m) => format!("{code}: {m}"),
                None => code.clone(),
            };
            match code.as_str() {
                "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
                    ProviderError::NotFound { store, key, detail }
                }
                "AccessDeniedException" | "AccessDenied" | "DecryptionFailure" => {
                    ProviderError::PermissionDenied { store, key, detail }
                }
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "IncompleteSignature"
                | "InvalidClientTokenId"
                | "MissingAuthenticationToken" => ProviderError::Unauthenticated { store, detail },
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => ProviderError::Throttled { store, detail },
                "InternalServiceError"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable" => ProviderError::Unavailable { store, detail },
                _ => ProviderError::Invalid { store, key, detail },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ProviderError::Unavailable {
                store,
                detail: error_chain(&e),
            }
        }
        _ => ProviderError::Invalid {
            store,
            key,
            detail: error_chain(&e),
        },
    }
}

/// One reference's result from a batch call: the fetched value shaped by
/// the reference (property, decoding), the batch's error re-keyed, or
/// `NotFound` when the service did not mention the id at all.
fn batch_answer(
    store: &str,
    r: &Reference,
    answer: Option<&Result<Fetched, ProviderError>>,
    api: &str,
) -> Result<Fetched, ProviderError> {
    match answer {
        Some(Ok(f)) => shape(store, r, f.value.clone()).map(|value| Fetched {
            value,
            meta: f.meta.clone(),
        }),
        Some(Err(e)) => Err(e.with_key(&r.key)),
        None => Err(ProviderError::NotFound {
            store: store.to_owned(),
            key: r.key.clone(),
            detail: format!("not returned by {api}"),
        }),
    }
}

fn looks_like_version_id(v: &str) -> bool {
    v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// AWS Secrets Manager.
pub struct SecretsManagerProvider {
    store: String,
    client: aws_sdk_secretsmanager::Client,
}

impl std::fmt::Debug for SecretsManagerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerProvider")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerProvider {
    /// Builds the client; credentials are resolved lazily by the SDK.
    pub async fn connect(config: &AwsConfig) -> Self {
        let sdk = sdk_config(config).await;
        Self {
            store: config.store.clone(),
            client: aws_sdk_secretsmanager::Client::new(&sdk),
        }
    }

    /// Fetches several references with as few calls as possible
    /// (`BatchGetSecretValue`, 20 ids a call). Results come back in input
    /// order; one missing secret does not fail the others.
    pub async fn fetch_many(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        let mut out: Vec<Option<Result<Fetched, ProviderError>>> =
            refs.iter().map(|_| None).collect();
        // Versioned references cannot be batched; fetch them singly.
        let (plain, pinned): (Vec<usize>, Vec<usize>) =
            (0..refs.len()).partition(|&i| refs[i].version.is_none());
        for i in pinned {
            out[i] = Some(self.fetch(&refs[i]).await);
        }
        let mut ids: Vec<&str> = plain.iter().map(|&i| refs[i].key.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut got: BTreeMap<String, Result<Fetched, ProviderError>> = BTreeMap::new();
        for chunk in ids.chunks(20) {
            match self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.iter().map(|s| (*s).to_owned()).collect()))
                .send()
                .await
            {
                Ok(resp) => {
                    for v in resp.secret_values() {
                        let fetched = self.to_fetched(
                            v.name().unwrap_or_default(),
                            v.secret_string(),
                            v.secret_binary().map(|b| b.as_ref()),
                            v.version_id(),
                        );
                        // Callers may have used the name or the ARN.
                        for id in [v.name(), v.arn()].into_iter().flatten() {
                            got.insert(id.to_owned(), fetched.clone());
                        }
                    }
                    for e in resp.errors() {
                        let id = e.secret_id().unwrap_or_default().to_owned();
                        let code = e.error_code().unwrap_or("Unknown");
                        let detail = format!("{code}: {}", e.message().unwrap_or_default());
                        let err = if code == "ResourceNotFoundException" {
                            ProviderError::NotFound {
                                store: self.store.clone(),
                                key: id.clone(),
                                detail,
                            }
                        } else if code == "AccessDeniedException" || code == "DecryptionFailure" {
                            ProviderError::PermissionDenied {
                                store: self.store.clone(),
                                key: id.clone(),
                                detail,
                            }
                        } else {
                            ProviderError::Unavailable {
                                store: self.store.clone(),
                                detail,
                            }
                        };
                        got.insert(id, Err(err));
                    }
                }
                Err(e) => {
                    let e = map_sdk_error(&self.store, "", e);
                    for id in chunk {
                        got.insert((*id).to_owned(), Err(e.with_key(id)));
                    }
                }
            }
        }
        for i in plain {
            let r = &refs[i];
            out[i] = Some(batch_answer(
                &self.store,
                r,
                got.get(&r.key),
                "BatchGetSecretValue",
            ));
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(ProviderError::Invalid {
                        store: self.store.clone(),
                        key: String::new(),
                        detail: "internal: unfilled result".into(),
                    })
                })
            })
            .collect()
    }

    /// Proves reachability, credentials and list permission with one cheap
    /// call (`ListSecrets`, one result), reading no secret value.
    pub async fn check(&self) -> Result<(), ProviderError> {
        self.client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(&self.store, "", e))
    }

    /// Names of secrets whose name starts with `prefix` and that carry all
    /// `tags`, for `dataFrom.find`. Follows pagination.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let mut filters = Vec::new();
        if let Some(p) = prefix {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(p)
                    .build(),
            );
        }
        for (k, v) in tags {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(k)
                    .build(),
            );
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(v)
                    .build(),
            );
        }
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_secrets()
                .set_filters(if filters.is_empty() {
                    None
                } else {
                    Some(filters.clone())
                })
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(&self.store, prefix.unwrap_or(""), e))?;
            for s in resp.secret_list() {
                // Tag filters match keys and values independently; check
                // the pairs exactly here.
                let pairs: BTreeMap<&str, &str> = s
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?)))
                    .collect();
                let wanted = tags
                    .iter()
                    .all(|(k, v)| pairs.get(k.as_str()) == Some(&v.as_str()));
                if let (true, Some(n)) = (wanted, s.name()) {
                    names.push(n.to_owned());
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    fn to_fetched(
        &self,
        key: &str,
        string: Option<&str>,
        binary: Option<&[u8]>,
        version_id: Option<&str>,
    ) -> Result<Fetched, ProviderError> {
        let bytes = match (string, binary) {
            (Some(s), _) => SecretBytes::from(s.as_bytes()),
            (None, Some(b)) => SecretBytes::from(b),
            (None, None) => {
                return Err(ProviderError::NotFound {
                    store: self.store.clone(),
                    key: key.to_owned(),
                    detail: "the secret version has no value".into(),
                });
            }
        };
        let mut meta = Metadata::now();
        meta.version = version_id.map(str::to_owned);
        Ok(Fetched {
            value: SecretValue::Bytes(bytes),
            meta,
        })
    }
}

#[async_trait::async_trait]
impl Provider for SecretsManagerProvider {
    fn store(&self) -> &str {
        &self.store
    }

    fn batch_size(&self) -> usize {
        20
    }

    async fn fetch_batch(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        SecretsManagerProvider::fetch_many(self, refs).await
    }

    async fn fetch(&self, r: &Reference) -> Result<Fetched, ProviderError> {
        let mut req = self.client.get_secret_value().secret_id(&r.key);
        match r.version.as_deref() {
            Some(v) if looks_like_version_id(v) => req = req.version_id(v),
            Some(stage) => req = req.version_stage(stage),
            None => {}
        }
        let resp = req
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.store, &r.key, e))?;
        let f = self.to_fetched(
            &r.key,
            resp.secret_string(),
            resp.secret_binary().map(|b| b.as_ref()),
            resp.version_id(),
        )?;
        Ok(Fetched {
            value: shape(&self.store, r, f.value)?,
            meta: f.meta,
        })
    }

    /// ListSecrets by prefix and tags, the name regex applied here, then
    /// one BatchGetSecretValue per 20 matches.
    async fn find(&self, query: &FindQuery) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        let names: Vec<String> = self
            .list(query.path.as_deref(), &query.tags)
            .await?
            .into_iter()
            .filter(|n| query.matches_name(n))
            .collect();
        if names.len() > super::FIND_LIMIT {
            return Err(super::too_many(&self.store, query));
        }
        let refs: Vec<Reference> = names.iter().map(|n| Reference::key(n.clone())).collect();
        let mut out = BTreeMap::new();
        for (name, got) in names.into_iter().zip(self.fetch_many(&refs).await) {
            out.insert(name, got?);
        }
        Ok(out)
    }
}

/// AWS Systems Manager Parameter Store. `SecureString` parameters are
/// decrypted by the service (KMS) on read.
pub struct ParameterStoreProvider {
    store: String,
    client: aws_sdk_ssm::Client,
}

impl std::fmt::Debug for ParameterStoreProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParameterStoreProvider")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ParameterStoreProvider {
    /// Builds the client; credentials are resolved lazily by the SDK.
    pub async fn connect(config: &AwsConfig) -> Self {
        let sdk = sdk_config(config).await;
        Self {
            store: config.store.clone(),
            client: aws_sdk_ssm::Client::new(&sdk),
        }
    }

    /// Proves reachability and credentials with one cheap call
    /// (`DescribeParameters`, one result), reading no value.
    pub async fn check(&self) -> Result<(), ProviderError> {
        self.client
            .describe_parameters()
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(&self.store, "", e))
    }

    /// Fetches several parameters with GetParameters (10 names a call),
    /// decrypted; results in input order, a missing name is `NotFound`
    /// without failing the others. Versioned references are fetched singly
    /// (their answers carry the bare name, which would be ambiguous).
    pub async fn fetch_many(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        let mut unique: Vec<String> = refs
            .iter()
            .filter(|r| r.version.is_none())
            .map(|r| r.key.clone())
            .collect();
        unique.sort_unstable();
        unique.dedup();
        let mut got: BTreeMap<String, Result<Fetched, ProviderError>> = BTreeMap::new();
        for chunk in unique.chunks(10) {
            match self
                .client
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true)
                .send()
                .await
            {
                Ok(resp) => {
                    for p in resp.parameters() {
                        let (Some(name), Some(value)) = (p.name(), p.value()) else {
                            continue;
                        };
                        let mut meta = Metadata::now();
                        meta.version = Some(p.version().to_string());
                        got.insert(
                            name.to_owned(),
                            Ok(Fetched {
                                value: SecretValue::Bytes(SecretBytes::from(value.as_bytes())),
                                meta,
                            }),
                        );
                    }
                }
                Err(e) => {
                    let e = map_sdk_error(&self.store, "", e);
                    for n in chunk {
                        got.insert(n.clone(), Err(e.with_key(n)));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            out.push(if r.version.is_some() {
                self.fetch(r).await
            } else {
                batch_answer(&self.store, r, got.get(&r.key), "GetParameters")
            });
        }
        out
    }

    /// Every parameter below `path` (recursively), decrypted, keyed by its
    /// full name: `dataFrom.find` for Parameter Store.
    pub async fn fetch_by_path(
        &self,
        path: &str,
    ) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        let mut out = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let resp = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(&self.store, path, e))?;
            for p in resp.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    let mut meta = Metadata::now();
                    meta.version = Some(p.version().to_string());
                    out.insert(
                        name.to_owned(),
                        Fetched {
                            value: SecretValue::Bytes(SecretBytes::from(value.as_bytes())),
                            meta,
                        },
                    );
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Provider for ParameterStoreProvider {
    fn store(&self) -> &str {
        &self.store
    }

    fn batch_size(&self) -> usize {
        10
    }

    async fn fetch_batch(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        ParameterStoreProvider::fetch_many(self, refs).await
    }

    async fn fetch(&self, r: &Reference) -> Result<Fetched, ProviderError> {
        // Parameter Store selects versions and labels as `name:selector`.
        let name = match &r.version {
            Some(v) => format!("{}:{v}", r.key),
            None => r.key.clone(),
        };
        let resp = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.store, &r.key, e))?;
        let p = resp.parameter().ok_or_else(|| ProviderError::NotFound {
            store: self.store.clone(),
            key: r.key.clone(),
            detail: "no parameter in response".into(),
        })?;
        let value = p.value().ok_or_else(|| ProviderError::NotFound {
            store: self.store.clone(),
            key: r.key.clone(),
            detail: "parameter has no value".into(),
        })?;
        let mut meta = Metadata::now();
        meta.version = Some(p.version().to_string());
        Ok(Fetched {
            value: shape(
                &self.store,
                r,
                SecretValue::Bytes(SecretBytes::from(value.as_bytes())),
            )?,
            meta,
        })
    }

    /// GetParametersByPath below `query.path` (default `/`), the name regex
    /// applied here. Parameter tags are not queried.
    async fn find(&self, query: &FindQuery) -> Result<BTreeMap<String, Fetched>, ProviderError> {
        if !query.tags.is_empty() {
            return Err(ProviderError::Invalid {
                store: self.store.clone(),
                key: query.path.clone().unwrap_or_default(),
                detail: "find by tags is not supported for Parameter Store".into(),
            });
        }
        let path = query.path.clone().unwrap_or_else(|| "/".to_owned());
        let mut all = self.fetch_by_path(&path).await?;
        all.retain(|name, _| query.matches_name(name));
        if all.len() > super::FIND_LIMIT {
            return Err(super::too_many(&self.store, query));
        }
        Ok(all)
    }
}
