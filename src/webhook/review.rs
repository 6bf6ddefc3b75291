//! One AdmissionReview in, one decision out: the webhook's logic without
//! any network.
//!
//! Design note: the review body is parsed once into JSON; the object is
//! taken out before the rest is checked against kube's typed
//! `AdmissionRequest`, so the (possibly secret-bearing) object is never
//! copied or re-serialised. Anything malformed fails closed: a body that is
//! not an AdmissionReview at all becomes an HTTP error (the apiserver then
//! applies the webhook's `failurePolicy: Fail`), and a review whose `uid`
//! can be read but whose request is broken gets an explicit denial.
//! Messages, warnings and errors name kind, namespace, name, field path and
//! rule — never a value, nor a serde error text (serde quotes offending
//! values). On UPDATE, a finding whose value was already stored before this
//! change (same rule, field and keyed fingerprint in `oldObject`) does not
//! block the write but is returned as a warning: labelling a Secret that
//! sealgate manages, or any object admitted before the webhook existed,
//! must not need a policy exception (and for objects sealgate's field
//! manager already writes to, the stored values are expected: no warning).

use std::collections::HashSet;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde_json::{Value, json};

use super::config::Policy;
use crate::gate::{self, Finding, Severity};

/// The review could not be answered at all (no request `uid` to answer to).
/// None of the messages quote the body.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error(
        "malformed AdmissionReview: not JSON ({category} error at line {line}, column {column})"
    )]
    NotJson {
        /// `syntax`, `eof`, `data` or `io`.
        category: &'static str,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// JSON, but not an `admission.k8s.io/v1` `AdmissionReview`.
    #[error(
        "malformed AdmissionReview: expected apiVersion admission.k8s.io/v1 and kind AdmissionReview"
    )]
    WrongType,
    /// No `request.uid` to answer to.
    #[error("malformed AdmissionReview: request.uid is missing or not a string")]
    MissingUid,
}

impl ReviewError {
    /// Stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ReviewError::NotJson { .. } => "not_json",
            ReviewError::WrongType => "wrong_type",
            ReviewError::MissingUid => "missing_uid",
        }
    }
}

/// Why an object was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowReason {
    /// Delete or connect: nothing new is stored.
    NotAWrite,
    /// The namespace is listed in `exempt_namespaces`.
    ExemptNamespace,
    /// The object carries a label listed in `exempt_labels`.
    ExemptLabel,
    /// Written by sealgate itself (field manager, and user when configured).
    SealgateWrite,
    /// The gate found nothing that blocks.
    Clean,
}

impl AllowReason {
    /// Stable label for logs, audit annotations and metrics.
    pub fn label(self) -> &'static str {
        match self {
            AllowReason::NotAWrite => "not-a-write",
            AllowReason::ExemptNamespace => "exempt-namespace",
            AllowReason::ExemptLabel => "exempt-label",
            AllowReason::SealgateWrite => "sealgate-write",
            AllowReason::Clean => "clean",
        }
    }
}

/// What was decided, for logging and tests; the wire answer is
/// [`Reviewed::response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted.
    Allowed(AllowReason),
    /// Refused because of these `(field, rule)` pairs.
    Denied(Vec<(String, String)>),
    /// Refused because the request was malformed (the message says how).
    Malformed(String),
}

/// An answered review.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// `Kind namespace/name` of the reviewed object (empty when unknown).
    pub target: String,
    /// The request uid, to correlate with the apiserver's logs.
    pub uid: String,
    /// What was decided.
    pub outcome: Outcome,
    /// The `AdmissionReview` to send back (apiVersion, kind, response).
    pub response: Value,
}

/// Largest number of findings spelled out in one denial; the rest are
/// counted. Keeps the message readable in `kubectl` output.
const MAX_LISTED: usize = 5;

/// Decides one AdmissionReview body. `Err` only when there is no uid to
/// answer to; every other problem is a denial.
pub fn review(body: &[u8], policy: &Policy) -> Result<Reviewed, ReviewError> {
    let mut root: Value = serde_json::from_slice(body).map_err(|e| ReviewError::NotJson {
        category: category(&e),
        line: e.line(),
        column: e.column(),
    })?;
    if root.get("apiVersion").and_then(Value::as_str) != Some("admission.k8s.io/v1")
        || root.get("kind").and_then(Value::as_str) != Some("AdmissionReview")
    {
        return Err(ReviewError::WrongType);
    }
    let Some(request) = root.get_mut("request").filter(|r| r.is_object()) else {
        return Err(ReviewError::MissingUid);
    };
    let uid = match request.get("uid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => u.to_owned(),
        _ => return Err(ReviewError::MissingUid),
    };
    let object = request.get_mut("object").map(Value::take);
    let old_object = request.get_mut("oldObject").map(Value::take);
    let req: AdmissionRequest<DynamicObject> = match serde_json::from_value(request.take()) {
        Ok(r) => r,
        Err(e) => {
            // serde's message can quote a value; the category and uid are
            // enough to find the request in the apiserver's audit log.
            let what = format!(
                "malformed AdmissionReview request ({} error); sealgate fails closed",
                category(&e)
            );
            return Ok(malformed(uid, String::new(), what));
        }
    };
    Ok(decide(&req, uid, object, old_object, policy))
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

fn decide(
    req: &AdmissionRequest<DynamicObject>,
    uid: String,
    object: Option<Value>,
    old_object: Option<Value>,
    policy: &Policy,
) -> Reviewed {
    let object = object.filter(|o| !o.is_null());
    let name = if req.name.is_empty() {
        let meta = object.as_ref().and_then(|o| o.get("metadata"));
        let m = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        match (m("name"), m("generateName")) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(g)) => format!("{g}*"),
            _ => String::new(),
        }
    } else {
        req.name.clone()
    };
    let target = match req.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{} {ns}/{name}", req.kind.kind),
        None => format!("{} {name}", req.kind.kind),
    };
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return allowed(uid, target, AllowReason::NotAWrite, Vec::new());
    }
    let Some(object) = object else {
        return malformed(
            uid,
            target,
            "malformed AdmissionReview: a create/update without request.object; sealgate fails closed"
                .to_owned(),
        );
    };
    let meta = object.get("metadata");
    if !object.is_object() || meta.is_some_and(|m| !m.is_object()) {
        return malformed(
            uid,
            target,
            "malformed AdmissionReview: request.object is not a Kubernetes object; sealgate fails closed"
                .to_owned(),
        );
    }
    if req
        .namespace
        .as_ref()
        .is_some_and(|ns| policy.exempt_namespaces.contains(ns))
    {
        return allowed(uid, target, AllowReason::ExemptNamespace, Vec::new());
    }
    let labels = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    let exempt_label = policy.exempt_labels.iter().any(|(k, v)| {
        labels
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .is_some_and(|actual| v == "*" || actual == v)
    });
    if exempt_label {
        return allowed(uid, target, AllowReason::ExemptLabel, Vec::new());
    }
    if is_sealgate_write(req, policy) {
        return allowed(uid, target, AllowReason::SealgateWrite, Vec::new());
    }

    let report = gate::check_object(&object, &policy.gate);
    drop(object);
    let (blocking, warned): (Vec<Finding>, Vec<Finding>) = report
        .findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    let old_object = old_object.filter(|o| o.is_object());
    // Values sealgate itself stored (its field manager owns part of the
    // old object) are expected in a Secret it manages: no warning for them.
    let sealgate_managed = old_object
        .as_ref()
        .is_some_and(|o| managed_by(o, &policy.field_manager));
    let (blocking, preexisting) = match old_object {
        Some(old) if req.operation == Operation::Update && !blocking.is_empty() => {
            let before: HashSet<(String, Option<String>, String)> =
                gate::check_object(&old, &policy.gate)
                    .findings
                    .into_iter()
                    .map(|f| (f.rule, f.field, f.fingerprint))
                    .collect();
            blocking.into_iter().partition(|f| {
                !before.contains(&(f.rule.clone(), f.field.clone(), f.fingerprint.clone()))
            })
        }
        _ => (blocking, Vec::new()),
    };
    let mut warnings: Vec<String> = preexisting
        .iter()
        .filter(|_| !sealgate_managed)
        .map(|f| {
            format!(
                "sealgate: {} still holds a plaintext secret at {} ({}); it predates this change",
                target,
                field_of(f),
                f.rule
            )
        })
        .collect();
    warnings.extend(warned.into_iter().map(|f| {
        format!(
            "sealgate: {} may hold a secret at {} ({})",
            target,
            field_of(&f),
            f.rule
        )
    }));
    if blocking.is_empty() {
        return allowed(uid, target, AllowReason::Clean, warnings);
    }
    let listed: Vec<String> = blocking
        .iter()
        .take(MAX_LISTED)
        .map(|f| format!("{} [{}]: {}", field_of(f), f.rule, f.message))
        .collect();
    let more = blocking.len().saturating_sub(MAX_LISTED);
    let mut message = format!(
        "sealgate refused {target}: plaintext secret in {}",
        listed.join("; ")
    );
    if more > 0 {
        message.push_str(&format!(" (and {more} more)"));
    }
    message.push_str(
        ". Commit it sops-encrypted (SopsSecret) or reference a store (ExternalSecret); see docs/webhook.md",
    );
    let pairs = blocking
        .iter()
        .map(|f| (field_of(f).to_owned(), f.rule.clone()))
        .collect();
    let rules: Vec<&str> = blocking.iter().map(|f| f.rule.as_str()).collect();
    let mut response = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": message},
            "auditAnnotations": {"decision": "denied", "rules": rules.join(",")},
        }
    });
    if !warnings.is_empty() {
        response["response"]["warnings"] = json!(warnings);
    }
    Reviewed {
        target,
        uid,
        outcome: Outcome::Denied(pairs),
        response,
    }
}

/// The field path a finding names, or `<object>` when the engine could not
/// place it more precisely.
fn field_of(f: &Finding) -> &str {
    f.field.as_deref().unwrap_or("<object>")
}

/// Whether `manager` has a `metadata.managedFields` entry in `object`.
fn managed_by(object: &Value, manager: &str) -> bool {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.get("manager").and_then(Value::as_str) == Some(manager))
        })
}

/// The request names sealgate's field manager, and comes from one of the
/// configured sealgate users when any are configured.
fn is_sealgate_write(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> bool {
    let manager = req
        .options
        .as_ref()
        .and_then(|o| o.0.get("fieldManager"))
        .and_then(Value::as_str);
    if manager != Some(policy.field_manager.as_str()) {
        return false;
    }
    policy.sealgate_users.is_empty()
        || req
            .user_info
            .username
            .as_ref()
            .is_some_and(|u| policy.sealgate_users.contains(u))
}

fn allowed(uid: String, target: String, reason: AllowReason, warnings: Vec<String>) -> Reviewed {
    let mut response = json!({
        "uid": uid,
        "allowed": true,
        "auditAnnotations": {"decision": reason.label()},
    });
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    Reviewed {
        target,
        uid,
        outcome: Outcome::Allowed(reason),
        response: json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }),
    }
}

fn malformed(uid: String, target: String, message: String) -> Reviewed {
    Reviewed {
        response: json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": uid,
                "allowed": false,
                "status": {"code": 400, "reason": "BadRequest", "message": message},
            }
        }),
        target,
        uid,
        outcome: Outcome::Malformed(message),
    }
}
