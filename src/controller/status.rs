//! Status conditions shared by the reconcilers.
//!
//! Design note: a condition's `lastTransitionTime` changes only when its
//! status flips, and `set` reports whether anything changed, so reconcilers
//! can skip status writes (and events) in a steady state.

use super::api::Condition;
use crate::sops::engine::now_rfc3339;

/// A `Ready` condition.
pub fn ready(ok: bool, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    condition("Ready", ok, reason, message, generation)
}

/// A condition of any type.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(now_rfc3339()),
        observed_generation: generation,
    }
}

/// Replaces the condition of the same type; keeps the old transition time
/// when the status did not flip. Returns whether anything but the time
/// changed.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Merge-patches `status` only when it differs from what the object already
/// carries: every reconciler (and the GitSync loop) shares this so a steady
/// state costs no apiserver writes.
pub async fn patch_if_changed<K, S>(
    api: &kube::Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(());
    }
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({ "status": merge_body(old, new) })),
    )
    .await?;
    Ok(())
}

/// The merge-patch body for `new`: a field `old` had and `new` leaves out
/// (an `Option` gone to `None`, a list emptied) is sent as `null`, so it is
/// removed from the stored status instead of silently surviving.
fn merge_body<S: serde::Serialize>(old: Option<&S>, new: &S) -> serde_json::Value {
    let mut body = serde_json::to_value(new).unwrap_or(serde_json::Value::Null);
    let old = old.and_then(|o| serde_json::to_value(o).ok());
    if let (Some(serde_json::Value::Object(old)), serde_json::Value::Object(body)) =
        (old, &mut body)
    {
        for key in old.keys() {
            if !body.contains_key(key) {
                body.insert(key.clone(), serde_json::Value::Null);
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_went_away_are_sent_as_null() {
        #[derive(serde::Serialize)]
        struct St {
            #[serde(skip_serializing_if = "Option::is_none")]
            lease: Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            items: Vec<u8>,
            kept: u8,
        }
        let old = St {
            lease: Some("t".into()),
            items: vec![1],
            kept: 1,
        };
        let new = St {
            lease: None,
            items: vec![],
            kept: 2,
        };
        assert_eq!(
            merge_body(Some(&old), &new),
            serde_json::json!({"lease": null, "items": null, "kept": 2})
        );
        assert_eq!(merge_body(None, &new), serde_json::json!({"kept": 2}));
    }

    #[test]
    fn transition_time_moves_only_on_flips() {
        let mut cs = Vec::new();
        assert!(set(&mut cs, ready(true, "A", "m", Some(1))));
        let t0 = cs[0].last_transition_time.clone();
        cs[0].last_transition_time = Some("2000-01-01T00:00:00Z".into());
        assert!(
            !set(&mut cs, ready(true, "A", "m", Some(1))),
            "same condition is no change"
        );
        assert_eq!(
            cs[0].last_transition_time.as_deref(),
            Some("2000-01-01T00:00:00Z")
        );
        assert!(set(&mut cs, ready(false, "B", "m", Some(1))));
        assert_ne!(
            cs[0].last_transition_time.as_deref(),
            Some("2000-01-01T00:00:00Z")
        );
        assert!(t0.is_some());
    }
}
