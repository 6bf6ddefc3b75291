//! The few Vault/OpenBao endpoints `vaultrs` lacks, as `rustify` endpoints
//! executed through the `vaultrs` client (same TLS, token, namespace).
//!
//! Why: `vaultrs` strips every response down to its `data` field, which
//! drops `lease_id`, `lease_duration` and `renewable` — exactly what dynamic
//! secrets need — and it has no `sys/leases` module (vaultrs issue #144).

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;

/// A full Vault response envelope, lease fields included.
#[derive(Deserialize)]
pub struct LeasedResponse {
    /// Empty for non-leased reads (KV).
    #[serde(default)]
    pub lease_id: String,
    /// Seconds; for KV v1 this is the suggested refresh interval.
    #[serde(default)]
    pub lease_duration: u64,
    /// Whether `sys/leases/renew` accepts this lease.
    #[serde(default)]
    pub renewable: bool,
    /// The payload; absent on some writes.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// `GET <path>` on any engine, keeping the envelope.
pub struct ReadAny {
    /// Path below `/v1/`.
    pub path: String,
}

#[async_trait::async_trait]
impl Endpoint for ReadAny {
    type Response = LeasedResponse;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

/// `PUT sys/leases/renew`.
pub struct RenewLease {
    /// Lease to renew.
    pub lease_id: String,
    /// Requested extension in seconds (the backend may grant less).
    pub increment: Option<u64>,
}

#[async_trait::async_trait]
impl Endpoint for RenewLease {
    type Response = LeasedResponse;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/leases/renew".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::PUT
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        let mut body = serde_json::json!({ "lease_id": self.lease_id });
        if let Some(i) = self.increment {
            body["increment"] = i.into();
        }
        Ok(Some(body.to_string().into_bytes()))
    }
}

/// `PUT sys/leases/revoke`.
pub struct RevokeLease {
    /// Lease to revoke.
    pub lease_id: String,
}

#[async_trait::async_trait]
impl Endpoint for RevokeLease {
    type Response = ();
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/leases/revoke".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::PUT
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(Some(
            serde_json::json!({ "lease_id": self.lease_id })
                .to_string()
                .into_bytes(),
        ))
    }
}

/// The `data` of a `sys/leases/lookup` answer.
#[derive(Deserialize)]
pub struct LeaseLookup {
    /// The lease id (echoed).
    #[serde(default)]
    pub id: String,
    /// RFC 3339; when the lease was created.
    #[serde(default)]
    pub issue_time: Option<String>,
    /// RFC 3339; when it ends unless renewed (absent for non-expiring).
    #[serde(default)]
    pub expire_time: Option<String>,
    /// RFC 3339; the last successful renewal, if any.
    #[serde(default)]
    pub last_renewal: Option<String>,
    /// Whether renewals are accepted.
    #[serde(default)]
    pub renewable: bool,
    /// Seconds left.
    #[serde(default)]
    pub ttl: u64,
}

/// The envelope of a `sys/leases/lookup` answer.
#[derive(Deserialize)]
pub struct LeaseLookupResponse {
    /// Lease facts.
    pub data: LeaseLookup,
}

/// `PUT sys/leases/lookup`: facts about a lease without touching it, so a
/// restarted controller can resume one recorded on a Secret.
pub struct LookupLease {
    /// Lease to look up.
    pub lease_id: String,
}

#[async_trait::async_trait]
impl Endpoint for LookupLease {
    type Response = LeaseLookupResponse;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/leases/lookup".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::PUT
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(Some(
            serde_json::json!({ "lease_id": self.lease_id })
                .to_string()
                .into_bytes(),
        ))
    }
}
