//! Prometheus metrics of the controller, rendered in the text exposition
//! format on `/metrics`.
//!
//! Design note: a handful of counters and one histogram do not justify a
//! metrics framework; they are plain atomics (the histogram, escaping and
//! HTTP routes shared with `sealgate gitops` are in [`crate::telemetry`]) and small maps behind mutexes
//! (never held across an await), rendered on scrape. Per-store backend
//! figures are not copied here: they are read at scrape time from each
//! store connection's [`Frugal`](crate::providers::cache::Frugal) counters,
//! which [`StoreCounters`] tracks per store label and sums, so they survive
//! reconnects and leadership terms (Prometheus counters never go down).
//! Labels are low-cardinality by construction (kind,
//! result, reason, store); no label ever carries a value or a secret name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::providers::cache::Counters;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

type Histogram = crate::telemetry::Histogram<{ BUCKETS.len() }>;

/// Process-wide metrics; shared in an `Arc` by every reconciler.
#[derive(Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    writes: Mutex<BTreeMap<&'static str, u64>>,
    leader: AtomicBool,
    ready: AtomicBool,
    skipped_writes: AtomicU64,
    store_counters: Arc<StoreCounters>,
}

/// Backend counters per store label that outlive store connections and
/// leadership terms.
///
/// Each connection's [`Frugal`](crate::providers::cache::Frugal) counts in
/// its own [`Counters`], which go away when the connection is rebuilt (new
/// credentials, a re-check, a new term). Prometheus counters must never go
/// down, so every connection's counters are tracked here under the store's
/// label and summed at scrape time; once only this registry still holds a
/// connection's counters (nobody can add to them any more) they are folded
/// into a per-store base and released.
#[derive(Default)]
pub struct StoreCounters {
    stores: Mutex<BTreeMap<String, Tracked>>,
    lookups_cache: AtomicU64,
    lookups_api: AtomicU64,
}

#[derive(Default)]
struct Tracked {
    calls: u64,
    cache_hits: u64,
    coalesced: u64,
    errors: BTreeMap<&'static str, u64>,
    live: Vec<Arc<Counters>>,
}

impl Tracked {
    /// Folds counters nobody else holds into the base: they can no longer
    /// change.
    fn fold(&mut self) {
        let (gone, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|c| Arc::strong_count(c) == 1);
        self.live = live;
        for c in gone {
            self.calls += c.calls.load(Ordering::Relaxed);
            self.cache_hits += c.cache_hits.load(Ordering::Relaxed);
            self.coalesced += c.coalesced.load(Ordering::Relaxed);
            for (reason, n) in lock(&c.errors).iter() {
                *self.errors.entry(reason).or_default() += n;
            }
        }
    }
}

impl StoreCounters {
    /// Counts `counters` (a new connection's) under the store `label`.
    pub fn track(&self, label: &str, counters: Arc<Counters>) {
        let mut m = lock(&self.stores);
        let t = m.entry(label.to_owned()).or_default();
        // Fold here too, so reconnects without scrapes do not pile up.
        t.fold();
        if !t.live.iter().any(|c| Arc::ptr_eq(c, &counters)) {
            t.live.push(counters);
        }
    }

    /// One store or namespace lookup, answered by a watch cache or by an
    /// apiserver GET.
    pub fn lookup(&self, from_cache: bool) {
        let c = if from_cache {
            &self.lookups_cache
        } else {
            &self.lookups_api
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(lookups answered from cache, lookups that needed a GET)`.
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.lookups_cache.load(Ordering::Relaxed),
            self.lookups_api.load(Ordering::Relaxed),
        )
    }

    /// Totals per store label since the process started, summed over every
    /// connection the store has had (sorted by label).
    pub fn totals(&self) -> Vec<(String, Arc<Counters>)> {
        let mut m = lock(&self.stores);
        let mut out = Vec::with_capacity(m.len());
        for (label, t) in m.iter_mut() {
            t.fold();
            let sum = Counters::default();
            sum.calls.store(t.calls, Ordering::Relaxed);
            sum.cache_hits.store(t.cache_hits, Ordering::Relaxed);
            sum.coalesced.store(t.coalesced, Ordering::Relaxed);
            let mut errors: std::collections::HashMap<&'static str, u64> =
                t.errors.iter().map(|(k, v)| (*k, *v)).collect();
            for c in &t.live {
                sum.calls
                    .fetch_add(c.calls.load(Ordering::Relaxed), Ordering::Relaxed);
                sum.cache_hits
                    .fetch_add(c.cache_hits.load(Ordering::Relaxed), Ordering::Relaxed);
                sum.coalesced
                    .fetch_add(c.coalesced.load(Ordering::Relaxed), Ordering::Relaxed);
                for (reason, n) in lock(&c.errors).iter() {
                    *errors.entry(reason).or_default() += n;
                }
            }
            *lock(&sum.errors) = errors;
            out.push((label.clone(), Arc::new(sum)));
        }
        out
    }
}

/// Figures that live elsewhere and are read at scrape time.
pub struct Snapshot {
    /// `(store label, counters)` of every store connected since start,
    /// summed over its connections (see [`StoreCounters`]).
    pub stores: Vec<(String, std::sync::Arc<Counters>)>,
    /// Leased secrets expiring within [`EXPIRY_WINDOW`].
    pub expiring: usize,
}

/// "Nearing expiry" means within this window.
pub const EXPIRY_WINDOW: Duration = Duration::from_secs(600);

impl Metrics {
    /// Records one finished reconcile of `kind`; `error` is the reason
    /// label of a failure.
    pub fn reconciled(&self, kind: &'static str, took: Duration, error: Option<&'static str>) {
        let result = if error.is_some() { "error" } else { "ok" };
        *lock(&self.reconciles).entry((kind, result)).or_default() += 1;
        if let Some(reason) = error {
            *lock(&self.errors).entry((kind, reason)).or_default() += 1;
        }
        let mut d = lock(&self.durations);
        d.entry(kind).or_default().observe(&BUCKETS, took);
    }

    /// Records a Secret write by a reconciler of `kind`.
    pub fn secret_written(&self, kind: &'static str) {
        *lock(&self.writes).entry(kind).or_default() += 1;
    }

    /// Records a refresh whose content was unchanged (no write).
    pub fn write_skipped(&self) {
        self.skipped_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// The process-wide per-store backend counters (shared with every
    /// term's [`Stores`](super::stores::Stores)).
    pub fn store_counters(&self) -> Arc<StoreCounters> {
        Arc::clone(&self.store_counters)
    }

    /// Sets whether this replica leads (runs reconcilers).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Marks the process ready (for `/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition of everything.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        let _ = self.render_into(&mut out, snap);
        out
    }

    fn render_into(&self, o: &mut String, snap: &Snapshot) -> std::fmt::Result {
        writeln!(
            o,
            "# HELP sealgate_reconciles_total Reconciles finished, by kind and result."
        )?;
        writeln!(o, "# TYPE sealgate_reconciles_total counter")?;
        for ((kind, result), n) in lock(&self.reconciles).iter() {
            writeln!(
                o,
                "sealgate_reconciles_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_reconcile_errors_total Failed reconciles, by kind and reason."
        )?;
        writeln!(o, "# TYPE sealgate_reconcile_errors_total counter")?;
        for ((kind, reason), n) in lock(&self.errors).iter() {
            writeln!(
                o,
                "sealgate_reconcile_errors_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_reconcile_duration_seconds Time per reconcile."
        )?;
        writeln!(o, "# TYPE sealgate_reconcile_duration_seconds histogram")?;
        for (kind, h) in lock(&self.durations).iter() {
            h.render(
                o,
                &BUCKETS,
                "sealgate_reconcile_duration_seconds",
                &format!("kind=\"{}\"", esc(kind)),
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_secret_writes_total Secrets written (created or changed)."
        )?;
        writeln!(o, "# TYPE sealgate_secret_writes_total counter")?;
        for (kind, n) in lock(&self.writes).iter() {
            writeln!(o, "sealgate_secret_writes_total{{kind=\"{kind}\"}} {n}")?;
        }
        writeln!(
            o,
            "# HELP sealgate_secret_writes_skipped_total Refreshes whose content was unchanged (no write)."
        )?;
        writeln!(o, "# TYPE sealgate_secret_writes_skipped_total counter")?;
        writeln!(
            o,
            "sealgate_secret_writes_skipped_total {}",
            self.skipped_writes.load(Ordering::Relaxed)
        )?;
        writeln!(
            o,
            "# HELP sealgate_backend_calls_total Backend calls (attempts), by store."
        )?;
        writeln!(o, "# TYPE sealgate_backend_calls_total counter")?;
        for (store, c) in &snap.stores {
            writeln!(
                o,
                "sealgate_backend_calls_total{{store=\"{}\"}} {}",
                esc(store),
                c.calls.load(Ordering::Relaxed)
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_backend_cache_hits_total Reads answered from the store cache."
        )?;
        writeln!(o, "# TYPE sealgate_backend_cache_hits_total counter")?;
        for (store, c) in &snap.stores {
            writeln!(
                o,
                "sealgate_backend_cache_hits_total{{store=\"{}\"}} {}",
                esc(store),
                c.cache_hits.load(Ordering::Relaxed)
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_backend_coalesced_total Reads that joined an identical in-flight call."
        )?;
        writeln!(o, "# TYPE sealgate_backend_coalesced_total counter")?;
        for (store, c) in &snap.stores {
            writeln!(
                o,
                "sealgate_backend_coalesced_total{{store=\"{}\"}} {}",
                esc(store),
                c.coalesced.load(Ordering::Relaxed)
            )?;
        }
        writeln!(
            o,
            "# HELP sealgate_backend_errors_total Failed backend calls, by store and reason."
        )?;
        writeln!(o, "# TYPE sealgate_backend_errors_total counter")?;
        for (store, c) in &snap.stores {
            let errors: BTreeMap<&str, u64> = c
                .errors
                .lock()
                .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default();
            for (reason, n) in errors {
                writeln!(
                    o,
                    "sealgate_backend_errors_total{{store=\"{}\",reason=\"{reason}\"}} {n}",
                    esc(store)
                )?;
            }
        }
        let (cache, api) = self.store_counters.lookups();
        writeln!(
            o,
            "# HELP sealgate_store_lookups_total Store and namespace lookups of reconciles, by source (watch cache or apiserver GET)."
        )?;
        writeln!(o, "# TYPE sealgate_store_lookups_total counter")?;
        writeln!(
            o,
            "sealgate_store_lookups_total{{source=\"cache\"}} {cache}"
        )?;
        writeln!(o, "sealgate_store_lookups_total{{source=\"api\"}} {api}")?;
        writeln!(
            o,
            "# HELP sealgate_leases_expiring_soon Leased secrets expiring within 10 minutes."
        )?;
        writeln!(o, "# TYPE sealgate_leases_expiring_soon gauge")?;
        writeln!(o, "sealgate_leases_expiring_soon {}", snap.expiring)?;
        writeln!(
            o,
            "# HELP sealgate_leader Whether this replica holds the leader Lease."
        )?;
        writeln!(o, "# TYPE sealgate_leader gauge")?;
        writeln!(o, "sealgate_leader {}", u8::from(self.is_leader()))?;
        Ok(())
    }
}

fn esc(s: &str) -> String {
    crate::telemetry::escape_label(s)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_store_figures() {
        let m = Metrics::default();
        m.reconciled("ExternalSecret", Duration::from_millis(20), None);
        m.reconciled(
            "ExternalSecret",
            Duration::from_millis(3),
            Some("BackendUnavailable"),
        );
        m.secret_written("ExternalSecret");
        let c = std::sync::Arc::new(Counters::default());
        c.calls.fetch_add(7, Ordering::Relaxed);
        let text = m.render(&Snapshot {
            stores: vec![("demo/openbao".into(), c)],
            expiring: 2,
        });
        assert!(
            text.contains("sealgate_reconciles_total{kind=\"ExternalSecret\",result=\"ok\"} 1")
        );
        assert!(text.contains("reason=\"BackendUnavailable\"} 1"));
        assert!(text.contains("le=\"0.025\"} 2"));
        assert!(text.contains("sealgate_backend_calls_total{store=\"demo/openbao\"} 7"));
        assert!(text.contains("sealgate_leases_expiring_soon 2"));
    }

    #[test]
    fn store_counters_survive_reconnects() {
        let reg = StoreCounters::default();
        let first = Arc::new(Counters::default());
        reg.track("ns/s", Arc::clone(&first));
        first.calls.fetch_add(5, Ordering::Relaxed);
        *lock(&first.errors) = [("Unavailable", 2)].into_iter().collect();
        let calls = |reg: &StoreCounters| reg.totals()[0].1.calls.load(Ordering::Relaxed);
        assert_eq!(calls(&reg), 5);
        // The connection is rebuilt: the old counters are dropped.
        drop(first);
        let second = Arc::new(Counters::default());
        reg.track("ns/s", Arc::clone(&second));
        second.calls.fetch_add(1, Ordering::Relaxed);
        assert_eq!(calls(&reg), 6, "folded base + live connection");
        assert_eq!(calls(&reg), 6, "folding twice does not double count");
        assert_eq!(reg.totals()[0].1.errors_of("Unavailable"), 2);
        second.calls.fetch_add(1, Ordering::Relaxed);
        drop(second);
        assert_eq!(calls(&reg), 7);
        // Many reconnects without a scrape keep only live counters.
        for _ in 0..100 {
            let c = Arc::new(Counters::default());
            c.calls.fetch_add(1, Ordering::Relaxed);
            reg.track("ns/s", Arc::clone(&c));
        }
        assert!(lock(&reg.stores)["ns/s"].live.len() <= 1);
        assert_eq!(calls(&reg), 107);
    }
}
