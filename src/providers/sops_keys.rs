//! sops master keys backed by the provider clients: Vault/OpenBao Transit
//! (`hc_vault` entries) and AWS KMS (`kms` entries).
//!
//! Design note: the sops engine knows master keys only through
//! [`MasterKeyBackend`], a synchronous trait (wrapping happens once per file,
//! inside otherwise synchronous code). These backends make their network
//! call on a short-lived thread with its own runtime, so they work both from
//! the CLI and from inside the controller's runtime without blocking it.
//! Credentials come the way sops takes them: `VAULT_TOKEN` (or `BAO_TOKEN`,
//! or `~/.vault-token`) for Transit; the AWS default chain (environment,
//! profile, web identity, `AWS_ENDPOINT_URL`) for KMS, in the key's region.

use std::future::Future;

use base64::Engine;

use crate::secret::{ExposeSecret, SecretBytes, SecretString};
use crate::sops::engine::now_rfc3339;
use crate::sops::error::SopsError;
use crate::sops::keys::{KeyEntry, MasterKeyBackend};
use crate::sops::tree::{Item, Value};

/// Runs `fut` to completion on a fresh thread with its own runtime.
fn block_on<T: Send>(fut: impl Future<Output = Result<T, String>> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start runtime: {e}"))?
                .block_on(fut)
        })
        .join()
        .map_err(|_| "key backend thread panicked".to_owned())?
    })
}

fn wrap_err(kind: &str, recipient: &str, reason: impl Into<String>) -> SopsError {
    SopsError::Wrap {
        kind: kind.into(),
        recipient: recipient.into(),
        reason: reason.into(),
    }
}

/// Vault/OpenBao Transit as a sops master key.
pub struct TransitKeys {
    token: Option<SecretString>,
}

impl TransitKeys {
    /// Token from `VAULT_TOKEN`, `BAO_TOKEN` or `~/.vault-token`, as the
    /// sops and Vault CLIs look for it. No token: entries are skipped.
    pub fn from_env() -> Self {
        let token = std::env::var("VAULT_TOKEN")
            .or_else(|_| std::env::var("BAO_TOKEN"))
            .ok()
            .or_else(|| {
                let home = std::env::var_os("HOME")?;
                std::fs::read_to_string(std::path::Path::new(&home).join(".vault-token")).ok()
            })
            .map(|t| SecretString::new(t.trim().to_owned()))
            .filter(|t| !t.is_empty());
        Self { token }
    }

    fn client(&self, address: &str) -> Result<vaultrs::client::VaultClient, String> {
        let token = self
            .token
            .as_ref()
            .ok_or("no Vault token (set VAULT_TOKEN)")?;
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(address)
            .token(token.expose_secret())
            .build()
            .map_err(|e| e.to_string())?;
        vaultrs::client::VaultClient::new(settings).map_err(|e| e.to_string())
    }
}

/// Splits `https://vault:8200/v1/<engine path>/keys/<key name>` as sops does.
fn parse_transit_uri(uri: &str) -> Option<(String, String, String)> {
    let (address, rest) = uri.split_once("/v1/")?;
    let (engine_path, key_name) = rest.rsplit_once("/keys/")?;
    if address.is_empty() || engine_path.is_empty() || key_name.is_empty() || key_name.contains('/')
    {
        return None;
    }
    Some((
        address.to_owned(),
        engine_path.to_owned(),
        key_name.to_owned(),
    ))
}

impl MasterKeyBackend for TransitKeys {
    fn kind(&self) -> &'static str {
        "hc_vault"
    }

    fn wrap(&self, recipient: &str, secret: &SecretBytes) -> Result<KeyEntry, SopsError> {
        let (address, engine_path, key_name) =
            parse_transit_uri(recipient.trim()).ok_or_else(|| SopsError::BadRecipient {
                kind: "hc_vault".into(),
                recipient: recipient.into(),
                reason: "expected https://HOST:PORT/v1/ENGINE_PATH/keys/KEY_NAME".into(),
            })?;
        let client = self
            .client(&address)
            .map_err(|e| wrap_err("hc_vault", recipient, e))?;
        // Transit takes base64 plaintext; sops sends the raw 32-byte data key.
        let plaintext = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(secret.expose_secret()),
        );
        let enc = block_on(async {
            vaultrs::transit::data::encrypt(&client, &engine_path, &key_name, &plaintext, None)
                .await
                .map(|r| r.ciphertext)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| wrap_err("hc_vault", recipient, e))?;
        Ok(KeyEntry {
            kind: "hc_vault".into(),
            fields: vec![
                Item::Pair("created_at".into(), Value::str(now_rfc3339())),
                Item::Pair("enc".into(), Value::str(enc)),
                Item::Pair("engine_path".into(), Value::str(engine_path)),
                Item::Pair("key_name".into(), Value::str(key_name)),
                Item::Pair("vault_address".into(), Value::str(address)),
            ],
        })
    }

    fn unwrap(&self, entry: &KeyEntry) -> Result<Option<SecretBytes>, SopsError> {
        if self.token.is_none() {
            return Ok(None);
        }
        let field = |name: &str| {
            entry
                .field(name)
                .ok_or_else(|| SopsError::meta(&format!("sops.hc_vault.{name}"), "missing"))
        };
        let (address, engine_path, key_name, enc) = (
            field("vault_address")?,
            field("engine_path")?,
            field("key_name")?,
            field("enc")?,
        );
        let client = match self.client(&address) {
            Ok(c) => c,
            Err(_) => return Ok(None),
        };
        let plaintext = block_on(async {
            vaultrs::transit::data::decrypt(&client, &engine_path, &key_name, &enc, None)
                .await
                .map(|r| SecretString::new(r.plaintext))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| {
            SopsError::meta(
                "sops.hc_vault.enc",
                format!("Transit refused to decrypt: {e}"),
            )
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(plaintext.expose_secret())
            .map_err(|_| SopsError::meta("sops.hc_vault.enc", "Transit returned invalid base64"))?;
        Ok(Some(SecretBytes::new(key)))
    }
}

/// AWS KMS as a sops master key.
pub struct KmsKeys {
    _private: (),
}

impl KmsKeys {
    /// Uses the AWS default credential chain at call time.
    pub fn from_env() -> Self {
        Self { _private: () }
    }
}

/// The region of a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
fn arn_region(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() >= 6 && parts[0] == "arn" && parts[2] == "kms" && !parts[3].is_empty())
        .then(|| parts[3].to_owned())
}

async fn kms_client(region: String) -> aws_sdk_kms::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .load()
        .await;
    aws_sdk_kms::Client::new(&conf)
}

impl MasterKeyBackend for KmsKeys {
    fn kind(&self) -> &'static str {
        "kms"
    }

    fn wrap(&self, recipient: &str, secret: &SecretBytes) -> Result<KeyEntry, SopsError> {
        let arn = recipient.trim().to_owned();
        let region = arn_region(&arn).ok_or_else(|| SopsError::BadRecipient {
            kind: "kms".into(),
            recipient: recipient.into(),
            reason: "expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)".into(),
        })?;
        let blob = aws_sdk_kms::primitives::Blob::new(secret.expose_secret().to_vec());
        let enc = block_on(async {
            kms_client(region)
                .await
                .encrypt()
                .key_id(&arn)
                .plaintext(blob)
                .send()
                .await
                .map_err(|e| super::error_chain(&e))?
                .ciphertext_blob()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                .ok_or_else(|| "KMS returned no ciphertext".to_owned())
        })
        .map_err(|e| wrap_err("kms", recipient, e))?;
        Ok(KeyEntry {
            kind: "kms".into(),
            fields: vec![
                Item::Pair("arn".into(), Value::str(arn)),
                Item::Pair("aws_profile".into(), Value::str("")),
                Item::Pair("created_at".into(), Value::str(now_rfc3339())),
                Item::Pair("enc".into(), Value::str(enc)),
            ],
        })
    }

    fn unwrap(&self, entry: &KeyEntry) -> Result<Option<SecretBytes>, SopsError> {
        let arn = entry
            .field("arn")
            .ok_or_else(|| SopsError::meta("sops.kms.arn", "missing"))?;
        let enc = entry
            .field("enc")
            .ok_or_else(|| SopsError::meta("sops.kms.enc", "missing"))?;
        if entry.field("role").is_some_and(|r| !r.is_empty()) {
            // Assuming a role per key is not implemented; another entry may open.
            tracing::debug!(arn = %arn, "kms entry with a role: not supported, skipped");
            return Ok(None);
        }
        let Some(region) = arn_region(&arn) else {
            return Err(SopsError::meta("sops.kms.arn", "not a KMS key ARN"));
        };
        let blob = base64::engine::general_purpose::STANDARD
            .decode(enc.trim())
            .map_err(|_| SopsError::meta("sops.kms.enc", "not base64"))?;
        let key = block_on(async {
            let out = kms_client(region)
                .await
                .decrypt()
                .key_id(&arn)
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
                .send()
                .await
                .map_err(|e| super::error_chain(&e))?;
            out.plaintext()
                .map(|p| SecretBytes::from(p.as_ref()))
                .ok_or_else(|| "KMS returned no plaintext".to_owned())
        })
        .map_err(|e| SopsError::meta("sops.kms.enc", format!("KMS refused to decrypt: {e}")))?;
        Ok(Some(key))
    }
}

/// Data keys unwrapped ahead of time, asynchronously, through a store's
/// own session (the controller's path: Transit or KMS with credentials from
/// a `SecretStore`, not from the environment). The sops engine then finds
/// them by their `enc` text.
pub struct PrefetchedKeys {
    kind: &'static str,
    keys: Vec<(String, SecretBytes)>,
}

impl MasterKeyBackend for PrefetchedKeys {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn wrap(&self, recipient: &str, _secret: &SecretBytes) -> Result<KeyEntry, SopsError> {
        Err(wrap_err(
            self.kind,
            recipient,
            "store-backed keys only decrypt; encrypt with `sealgate encrypt`",
        ))
    }

    fn unwrap(&self, entry: &KeyEntry) -> Result<Option<SecretBytes>, SopsError> {
        let Some(enc) = entry.field("enc") else {
            return Ok(None);
        };
        Ok(self
            .keys
            .iter()
            .find(|(e, _)| *e == enc)
            .map(|(_, k)| k.clone()))
    }
}

/// Unwraps every `hc_vault` entry of `metadata` that names `vault`'s own
/// server, through that store's session. Entries for other servers are
/// skipped (never sent our token); the first failure is returned when no
/// entry opened.
pub async fn prefetch_transit(
    metadata: &crate::sops::Metadata,
    vault: &super::vault::VaultProvider,
) -> Result<PrefetchedKeys, super::ProviderError> {
    let mut keys = Vec::new();
    let mut first_err = None;
    let ours = vault.address().trim_end_matches('/');
    for entry in metadata.key_groups.iter().flatten() {
        if entry.kind != "hc_vault" {
            continue;
        }
        let (Some(addr), Some(engine), Some(name), Some(enc)) = (
            entry.field("vault_address"),
            entry.field("engine_path"),
            entry.field("key_name"),
            entry.field("enc"),
        ) else {
            continue;
        };
        if addr.trim_end_matches('/') != ours {
            tracing::debug!(entry_server = %addr, "hc_vault entry for another server: skipped");
            continue;
        }
        match vault.transit_unwrap(&engine, &name, &enc).await {
            Ok(k) => keys.push((enc, k)),
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    match (keys.is_empty(), first_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(PrefetchedKeys {
            kind: "hc_vault",
            keys,
        }),
    }
}

/// Unwraps every `kms` entry of `metadata` with a store's AWS credentials.
pub async fn prefetch_kms(
    metadata: &crate::sops::Metadata,
    aws: &super::aws::AwsConfig,
) -> Result<PrefetchedKeys, super::ProviderError> {
    let mut keys = Vec::new();
    let mut first_err = None;
    for entry in metadata.key_groups.iter().flatten() {
        if entry.kind != "kms" || entry.field("role").is_some_and(|r| !r.is_empty()) {
            continue;
        }
        let (Some(arn), Some(enc)) = (entry.field("arn"), entry.field("enc")) else {
            continue;
        };
        let Some(region) = arn_region(&arn) else {
            continue;
        };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(enc.trim()) else {
            continue;
        };
        match super::aws::kms_unwrap(aws, &arn, &region, blob).await {
            Ok(k) => keys.push((enc, k)),
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    match (keys.is_empty(), first_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(PrefetchedKeys { kind: "kms", keys }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_uris_split_like_sops() {
        assert_eq!(
            parse_transit_uri("https://vault:8200/v1/transit/keys/sops"),
            Some(("https://vault:8200".into(), "transit".into(), "sops".into()))
        );
        assert_eq!(
            parse_transit_uri("http://127.0.0.1:1/v1/team/transit/keys/k1"),
            Some((
                "http://127.0.0.1:1".into(),
                "team/transit".into(),
                "k1".into()
            ))
        );
        assert_eq!(parse_transit_uri("https://vault:8200/transit/keys/k"), None);
        assert_eq!(parse_transit_uri("https://vault:8200/v1/transit/k"), None);
    }

    #[test]
    fn kms_arn_region() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:123456789012:key/abcd").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("alias/foo"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
