//! The controller's lease manager against real OpenBao and PostgreSQL:
//! dynamic database credentials renewed in the background, re-issue
//! signalled before expiry, replaced leases revoked after the overlap,
//! everything revoked on release, and leases resumed after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use sealgate::controller::leases::{LeaseManager, LeaseOwner, LeasePolicy};
use sealgate::providers::vault::{VaultAuth, VaultConfig, VaultProvider};
use sealgate::providers::{Fetched, Lease, Reference, SecretValue};
use sealgate::secret::{ExposeSecret, SecretString};

use crate::support::openbao::OpenBao;
use crate::support::postgres::{Postgres, database_engine};

/// Generous bound for things that must happen eventually.
const PATIENCE: Duration = Duration::from_secs(60);

async fn provider(bao: &OpenBao) -> Arc<VaultProvider> {
    Arc::new(
        VaultProvider::connect(VaultConfig::new(
            "leases-test",
            bao.addr(),
            VaultAuth::Token(SecretString::from(bao.root_token())),
        ))
        .await
        .expect("connect with root token"),
    )
}

fn creds(f: &Fetched) -> BTreeMap<String, String> {
    match &f.value {
        SecretValue::Map(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    String::from_utf8(v.expose_secret().to_vec()).unwrap(),
                )
            })
            .collect(),
        SecretValue::Bytes(_) => panic!("expected a map"),
    }
}

fn can_log_in(pg: &Postgres, f: &Fetched) -> bool {
    let m = creds(f);
    pg.psql(&m["username"], &m["password"], "select 1")
        .status
        .success()
}

async fn issue(vault: &VaultProvider) -> (Fetched, Lease) {
    let f = vault
        .issue(&Reference::key("database/creds/app"))
        .await
        .expect("issue database credentials");
    let lease = f.meta.lease.clone().expect("dynamic creds carry a lease");
    (f, lease)
}

fn owner(name: &str) -> LeaseOwner {
    LeaseOwner {
        namespace: "team-a".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

/// Polls `cond` until it holds, failing after [`PATIENCE`].
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn leases_are_renewed_then_reissue_is_signalled_before_expiry() {
    let pg = Postgres::start();
    let bao = OpenBao::start();
    // TTL 6 s, max 10 s: renewed at 3 s (to 9 s); at 6 s the backend
    // grants only the 4 s left, which reveals the max life: re-issue due
    // at 0.66 × 10 s, while the credential still works.
    database_engine(&bao, &pg, "6s", "10s");
    let vault = provider(&bao).await;
    let (manager, mut triggers) = LeaseManager::new();
    let es = owner("db");

    let (first, first_lease) = issue(&vault).await;
    assert!(can_log_in(&pg, &first), "issued credentials log in");
    manager.adopt(
        es.clone(),
        Arc::clone(&vault),
        first_lease.clone(),
        LeasePolicy {
            overlap: Duration::from_secs(1),
            ..LeasePolicy::default()
        },
    );
    let adopted = manager.current(&es).expect("tracked after adopt");
    assert_eq!(adopted.lease_id, first_lease.id);
    assert!(!adopted.reissue_due);

    // Renewed in the background: the backend saw a renewal and the view's
    // expiry moved.
    eventually("a renewal", async || {
        bao.requests_to("sys/leases/renew") >= 1
            && manager.current(&es).unwrap().expires_at > adopted.expires_at
    })
    .await;
    assert!(can_log_in(&pg, &first), "renewed credentials still log in");

    // Re-issue is signalled for this ExternalSecret while the lease lives.
    let signalled = tokio::time::timeout(PATIENCE, triggers.next())
        .await
        .expect("re-issue signalled in time")
        .expect("trigger stream open");
    assert_eq!(signalled, es.object_ref());
    let view = manager.current(&es).unwrap();
    assert!(view.reissue_due, "{view:?}");
    assert_eq!(view.lease_id, first_lease.id);
    let info = vault
        .lookup(&first_lease.id)
        .await
        .expect("the lease still exists when re-issue is signalled");
    assert!(!info.lease.duration.is_zero());
    assert!(view.expires_at > SystemTime::now() - Duration::from_secs(1));
    assert!(can_log_in(&pg, &first), "still valid when re-issue is due");

    // The reconciler re-issues and adopts the new credential: the old one
    // is revoked after the overlap; the new one works.
    let (second, second_lease) = issue(&vault).await;
    manager.adopt(
        es.clone(),
        Arc::clone(&vault),
        second_lease.clone(),
        LeasePolicy {
            overlap: Duration::from_secs(1),
            ..LeasePolicy::default()
        },
    );
    let view = manager.current(&es).unwrap();
    assert_eq!(view.lease_id, second_lease.id);
    assert!(!view.reissue_due);
    eventually("old lease gone", async || {
        vault.lookup(&first_lease.id).await.is_err()
    })
    .await;
    assert!(!can_log_in(&pg, &first), "old credentials no longer log in");
    assert!(can_log_in(&pg, &second), "new credentials log in");

    manager.release(&es).await.expect("release");
    assert!(!can_log_in(&pg, &second));
}

#[tokio::test]
async fn a_replaced_lease_is_revoked_after_the_overlap_and_release_revokes_all() {
    let pg = Postgres::start();
    let bao = OpenBao::start();
    // Long TTLs: any revocation seen here is the manager's, not expiry.
    database_engine(&bao, &pg, "1h", "2h");
    let vault = provider(&bao).await;
    let (manager, _triggers) = LeaseManager::new();
    let es = owner("api");
    let policy = LeasePolicy {
        overlap: Duration::from_secs(3),
        ..LeasePolicy::default()
    };

    let (a, lease_a) = issue(&vault).await;
    manager.adopt(
        es.clone(),
        Arc::clone(&vault),
        lease_a.clone(),
        policy.clone(),
    );
    // Adopting the same lease again (a reconcile re-run) changes nothing.
    manager.adopt(
        es.clone(),
        Arc::clone(&vault),
        lease_a.clone(),
        policy.clone(),
    );
    assert!(can_log_in(&pg, &a));

    let (b, lease_b) = issue(&vault).await;
    manager.adopt(
        es.clone(),
        Arc::clone(&vault),
        lease_b.clone(),
        policy.clone(),
    );
    // During the overlap both credentials work (zero-downtime rotation).
    assert!(
        can_log_in(&pg, &a),
        "old credentials valid during the overlap"
    );
    assert!(can_log_in(&pg, &b));
    assert_eq!(manager.current(&es).unwrap().lease_id, lease_b.id);
    assert_eq!(manager.expiring_within(Duration::from_secs(7200)), 1);
    assert_eq!(manager.expiring_within(Duration::from_secs(60)), 0);

    eventually("old credentials revoked", async || !can_log_in(&pg, &a)).await;
    assert!(
        vault.lookup(&lease_a.id).await.is_err(),
        "old lease is gone"
    );
    assert!(can_log_in(&pg, &b), "current credentials untouched");

    // Another owner's lease is not affected by this owner's release.
    let other = owner("other");
    let (c, lease_c) = issue(&vault).await;
    manager.adopt(other.clone(), Arc::clone(&vault), lease_c, policy.clone());

    // A replaced lease still in its overlap is revoked by release too.
    let (d, lease_d) = issue(&vault).await;
    manager.adopt(es.clone(), Arc::clone(&vault), lease_d.clone(), policy);
    manager.release(&es).await.expect("release");
    assert!(manager.current(&es).is_none());
    assert!(!can_log_in(&pg, &b), "replaced lease revoked on release");
    assert!(!can_log_in(&pg, &d), "current lease revoked on release");
    assert!(vault.lookup(&lease_d.id).await.is_err());
    assert!(can_log_in(&pg, &c), "other owners keep their leases");
    assert!(manager.current(&other).is_some());
    // Releasing twice is harmless.
    manager.release(&es).await.expect("second release");
}

#[tokio::test]
async fn a_restarted_manager_resumes_a_recorded_lease_and_keeps_renewing_it() {
    let pg = Postgres::start();
    let bao = OpenBao::start();
    database_engine(&bao, &pg, "4s", "1h");
    let vault = provider(&bao).await;
    let es = owner("resumed");

    let (cred, lease) = issue(&vault).await;
    {
        let (first, _t) = LeaseManager::new();
        first.adopt(
            es.clone(),
            Arc::clone(&vault),
            lease.clone(),
            LeasePolicy::default(),
        );
        // Dropped: a controller restart (its tasks end with it).
    }

    // The new process finds the lease id on the Secret and resumes it.
    let (manager, _triggers) = LeaseManager::new();
    let view = manager
        .resume(
            es.clone(),
            Arc::clone(&vault),
            &lease.id,
            LeasePolicy::default(),
        )
        .await
        .expect("lookup")
        .expect("the lease still exists");
    assert_eq!(view.lease_id, lease.id);
    assert!(!view.reissue_due);
    let renewals = bao.requests_to("sys/leases/renew");
    // A 4 s TTL would have run out by now without renewals by the resumed manager.
    eventually("renewed after resume", async || {
        bao.requests_to("sys/leases/renew") > renewals
            && manager.current(&es).unwrap().expires_at > view.expires_at
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(can_log_in(&pg, &cred), "kept alive past its first TTL");

    // A lease that no longer exists resumes as None: the caller issues.
    manager.release(&es).await.expect("release");
    let gone = manager
        .resume(
            es.clone(),
            Arc::clone(&vault),
            &lease.id,
            LeasePolicy::default(),
        )
        .await
        .expect("lookup of a revoked lease is not an error");
    assert!(gone.is_none());
    assert!(manager.current(&es).is_none());
    let unknown = manager
        .resume(
            es.clone(),
            Arc::clone(&vault),
            "database/creds/app/doesnotexist",
            LeasePolicy::default(),
        )
        .await
        .expect("lookup of an unknown lease is not an error");
    assert!(unknown.is_none());
}
