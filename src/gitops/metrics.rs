//! Prometheus metrics of the GitSync loop, rendered in the text exposition
//! format on `/metrics` by `sealgate gitops`.
//!
//! Design note: the same hand-written approach as the controller's
//! [`crate::controller::metrics`], with the histogram, escaping and routes
//! from [`crate::telemetry`] (plain maps behind mutexes never held
//! across an await, rendered on scrape), kept in its own registry because
//! `sealgate gitops` is its own process. Everything is filled from the
//! [`SyncReport`] of each reconcile, so the figures are exactly what the
//! audit record says. Labels are kinds, failure reasons, field managers and
//! GitSync names — bounded by the cluster's own objects — never object
//! names, values or secret names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::sync::SyncReport;
use crate::telemetry::{escape_label, header};

/// Upper bounds (seconds) of the reconcile duration histogram: a GitSync
/// reconcile fetches and may wait for health, so longer than a Secret's.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

type Histogram = crate::telemetry::Histogram<{ BUCKETS.len() }>;

/// Process-wide GitSync metrics, shared in an `Arc` by the controller and
/// the HTTP endpoint.
#[derive(Default)]
pub struct GitOpsMetrics {
    reconciles: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    durations: Mutex<Histogram>,
    applied: Mutex<BTreeMap<String, u64>>,
    pruned: Mutex<BTreeMap<String, u64>>,
    drift: Mutex<BTreeMap<(String, String), u64>>,
    drifted_now: Mutex<BTreeMap<(String, String), u64>>,
    ready: AtomicBool,
    leader: AtomicBool,
}

/// The kind part of a Flux-style id (`<ns>_<name>_<group>_<kind>`).
fn kind_of(id: &str) -> String {
    id.rsplit('_').next().unwrap_or("").to_owned()
}

impl GitOpsMetrics {
    /// Records one finished reconcile of the GitSync `namespace/name`.
    pub fn record(&self, namespace: &str, name: &str, report: &SyncReport, took: Duration) {
        let result = match (report.ok, report.skipped) {
            (false, _) => "error",
            (true, true) => "skipped",
            (true, false) => "ok",
        };
        *lock(&self.reconciles).entry(result).or_default() += 1;
        if !report.ok {
            *lock(&self.errors).entry(report.reason.clone()).or_default() += 1;
        }
        lock(&self.durations).observe(&BUCKETS, took);
        for id in &report.applied {
            *lock(&self.applied).entry(kind_of(id)).or_default() += 1;
        }
        for id in &report.pruned {
            *lock(&self.pruned).entry(kind_of(id)).or_default() += 1;
        }
        {
            let mut d = lock(&self.drift);
            for r in &report.drift {
                for m in &r.managers {
                    *d.entry((r.kind.clone(), m.clone())).or_default() += 1;
                }
            }
        }
        // The gauge describes the last full reconcile; a skipped one
        // (same commit, no drift check due) leaves it as it was.
        if !report.skipped && report.ok {
            lock(&self.drifted_now).insert(
                (namespace.to_owned(), name.to_owned()),
                report.drifted.len() as u64,
            );
        }
    }

    /// Records a failed status write (reason `StatusWriteFailed`), which
    /// the sync report cannot know about.
    pub fn status_write_failed(&self) {
        *lock(&self.errors)
            .entry("StatusWriteFailed".to_owned())
            .or_default() += 1;
    }

    /// Marks the process ready (for `/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records whether this replica holds the leader Lease (and so is the
    /// one reconciling).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica holds the leader Lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, o: &mut String) -> std::fmt::Result {
        header(
            o,
            "sealgate_gitsync_leader",
            "gauge",
            "Whether this replica holds the GitOps loop's leader Lease (only the leader reconciles).",
        )?;
        writeln!(o, "sealgate_gitsync_leader {}", u8::from(self.is_leader()))?;
        header(
            o,
            "sealgate_gitsync_reconciles_total",
            "counter",
            "GitSync reconciles, by result (ok, error, skipped: same commit and no drift check due).",
        )?;
        for (result, n) in lock(&self.reconciles).iter() {
            writeln!(
                o,
                "sealgate_gitsync_reconciles_total{{result=\"{result}\"}} {n}"
            )?;
        }
        header(
            o,
            "sealgate_gitsync_reconcile_errors_total",
            "counter",
            "Failed GitSync reconciles, by reason.",
        )?;
        for (reason, n) in lock(&self.errors).iter() {
            writeln!(
                o,
                "sealgate_gitsync_reconcile_errors_total{{reason=\"{}\"}} {n}",
                escape_label(reason)
            )?;
        }
        header(
            o,
            "sealgate_gitsync_reconcile_duration_seconds",
            "histogram",
            "Time per GitSync reconcile.",
        )?;
        lock(&self.durations).render(
            o,
            &BUCKETS,
            "sealgate_gitsync_reconcile_duration_seconds",
            "",
        )?;
        header(
            o,
            "sealgate_gitsync_applied_objects_total",
            "counter",
            "Objects created or updated by server-side apply, by kind.",
        )?;
        for (kind, n) in lock(&self.applied).iter() {
            writeln!(
                o,
                "sealgate_gitsync_applied_objects_total{{kind=\"{}\"}} {n}",
                escape_label(kind)
            )?;
        }
        header(
            o,
            "sealgate_gitsync_pruned_objects_total",
            "counter",
            "Objects deleted by prune, by kind.",
        )?;
        for (kind, n) in lock(&self.pruned).iter() {
            writeln!(
                o,
                "sealgate_gitsync_pruned_objects_total{{kind=\"{}\"}} {n}",
                escape_label(kind)
            )?;
        }
        header(
            o,
            "sealgate_gitsync_drifted_objects_total",
            "counter",
            "Objects found drifted from Git, by kind and by the field manager that changed them out of band.",
        )?;
        for ((kind, manager), n) in lock(&self.drift).iter() {
            writeln!(
                o,
                "sealgate_gitsync_drifted_objects_total{{kind=\"{}\",manager=\"{}\"}} {n}",
                escape_label(kind),
                escape_label(manager)
            )?;
        }
        header(
            o,
            "sealgate_gitsync_drifted_objects",
            "gauge",
            "Objects that differed from Git at the GitSync's last full reconcile.",
        )?;
        for ((ns, name), n) in lock(&self.drifted_now).iter() {
            writeln!(
                o,
                "sealgate_gitsync_drifted_objects{{namespace=\"{}\",name=\"{}\"}} {n}",
                escape_label(ns),
                escape_label(name)
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for GitOpsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitOpsMetrics")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `/metrics`, `/healthz` and `/readyz` routes of `sealgate gitops`.
pub fn router(metrics: std::sync::Arc<GitOpsMetrics>) -> axum::Router {
    let m = std::sync::Arc::clone(&metrics);
    crate::telemetry::router(move || m.render(), move || metrics.is_ready())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::sync::DriftRecord;

    #[test]
    fn renders_reconciles_drift_by_kind_and_manager_and_counts() {
        let m = GitOpsMetrics::default();
        let report = SyncReport {
            ok: true,
            applied: vec!["ns_web_apps_Deployment".into(), "ns_cfg__ConfigMap".into()],
            pruned: vec!["ns_old__ConfigMap".into()],
            drifted: vec!["ns_cfg__ConfigMap".into()],
            drift: vec![DriftRecord {
                id: "ns_cfg__ConfigMap".into(),
                kind: "ConfigMap".into(),
                managers: vec!["kubectl-edit".into()],
                paths: vec!["/data/mode".into()],
            }],
            ..SyncReport::default()
        };
        m.record("ns", "apps", &report, Duration::from_millis(300));
        let failed = SyncReport {
            reason: "PlaintextSecretRefused".into(),
            ..SyncReport::default()
        };
        m.record("ns", "apps", &failed, Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("sealgate_gitsync_reconciles_total{result=\"ok\"} 1"));
        assert!(text.contains("sealgate_gitsync_reconciles_total{result=\"error\"} 1"));
        assert!(text.contains(
            "sealgate_gitsync_reconcile_errors_total{reason=\"PlaintextSecretRefused\"} 1"
        ));
        assert!(text.contains(
            "sealgate_gitsync_drifted_objects_total{kind=\"ConfigMap\",manager=\"kubectl-edit\"} 1"
        ));
        assert!(text.contains("sealgate_gitsync_applied_objects_total{kind=\"Deployment\"} 1"));
        assert!(text.contains("sealgate_gitsync_pruned_objects_total{kind=\"ConfigMap\"} 1"));
        assert!(
            text.contains("sealgate_gitsync_drifted_objects{namespace=\"ns\",name=\"apps\"} 1")
        );
        assert!(text.contains("sealgate_gitsync_reconcile_duration_seconds_count 2"));
        assert!(text.contains("sealgate_gitsync_reconcile_duration_seconds_bucket{le=\"0.5\"} 2"));
    }
}
