//! Frugal access to a backend: single-flight, a TTL-aware cache, a
//! concurrency limit, a rate limit, timeouts and retries with backoff.
//!
//! Design note: [`Frugal`] wraps any [`Provider`] and is itself a
//! `Provider`, so the controller does not care whether a store is wrapped.
//! A burst of reconciles that all need `db/password` (a common shape: many
//! `ExternalSecret`s reading one shared secret) costs one backend call:
//! the first caller starts the fetch, everyone arriving while it runs
//! waits for the same result, and later callers hit the cache until the
//! entry is older than `max_age` — or, for a leased secret, until half the
//! lease is gone, so nobody is handed a credential about to expire.
//!
//! Refreshes ask for data "read at or after" the moment they came due
//! ([`Provider::fetch_since`]) rather than "at most `max_age` old": when the
//! controller schedules every `ExternalSecret` that reads the same keys on
//! the same slots, the first one due reads and the rest of that wave are
//! served the copy, however long the wave takes to work through — one
//! backend call per distinct secret per refresh. Copies are kept for at
//! most `retain` so a value does not linger in memory once nobody due can
//! use it.
//!
//! `dataFrom.find` listings get the same treatment, keyed by the whole
//! query (path, name pattern, tags): one listing per distinct query per
//! refresh slot, through the same concurrency cap, rate limit, timeout,
//! retries and call counter as single reads.
//!
//! Errors are never cached: a failing backend is retried by the next
//! reconcile, and a good cached value is still served while it is fresh
//! (nothing is lost because the backend hiccuped).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use std::sync::Mutex as SyncMutex;

use tokio::sync::{Mutex, Semaphore, broadcast};

use super::{Fetched, FindQuery, Provider, ProviderError, Reference};

/// Tuning knobs; the defaults suit a store shared by a few hundred
/// `ExternalSecret`s.
#[derive(Debug, Clone)]
pub struct FrugalConfig {
    /// How long a fetched value may be served from cache. Zero disables
    /// caching (single-flight still applies).
    pub max_age: Duration,
    /// Backend calls in flight at once for this store.
    pub max_concurrency: usize,
    /// Sustained backend calls per second (token bucket, burst of the same
    /// size). Zero means unlimited.
    pub rate_per_second: u32,
    /// Longest time a copy is kept for [`Provider::fetch_since`] callers
    /// (at least `max_age`).
    pub retain: Duration,
    /// Time limit of one backend attempt.
    pub timeout: Duration,
    /// Attempts for retryable failures (`Throttled`, `Unavailable`).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, full jitter, capped at 30 s.
    pub base_backoff: Duration,
}

impl Default for FrugalConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(60),
            retain: Duration::from_secs(600),
            max_concurrency: 8,
            rate_per_second: 500,
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
        }
    }
}

/// Counters for Prometheus (exported by the controller).
#[derive(Debug, Default)]
pub struct Counters {
    /// Backend calls made (each attempt counts).
    pub calls: AtomicU64,
    /// Fetches answered from cache.
    pub cache_hits: AtomicU64,
    /// Fetches that joined an in-flight call.
    pub coalesced: AtomicU64,
    /// Failed attempts by [`ProviderError::metric_label`].
    pub errors: std::sync::Mutex<HashMap<&'static str, u64>>,
}

impl Counters {
    /// Failed attempts of one kind so far.
    pub fn errors_of(&self, label: &str) -> u64 {
        self.errors
            .lock()
            .map(|m| m.get(label).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

type Shared = Result<Arc<Fetched>, ProviderError>;

/// A cached answer: a single read (`Fetched`) or a find's listing.
struct Entry<T = Fetched> {
    value: Arc<T>,
    /// Until when plain `fetch` callers are served this copy.
    fresh_until: Instant,
    /// When the backend answered (wall clock: refresh slots are wall-clock
    /// instants shared across restarts and replicas).
    read_at: SystemTime,
    /// After this nobody is served the copy (`retain`, or half the lease).
    dead_at: Instant,
}

impl<T> Entry<T> {
    /// Whether a caller may be served this copy: read at or after
    /// `not_before` when given, else still fresh; never once dead.
    fn usable(&self, not_before: Option<SystemTime>, now: Instant) -> bool {
        now < self.dead_at
            && match not_before {
                Some(t) => self.read_at >= t,
                None => now < self.fresh_until,
            }
    }
}

/// What makes two finds the same listing: the whole query, the name
/// pattern by its source text.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FindKey {
    path: Option<String>,
    name: Option<String>,
    tags: Vec<(String, String)>,
}

impl FindKey {
    fn of(q: &FindQuery) -> Self {
        Self {
            path: q.path.clone(),
            name: q.name.as_ref().map(|r| r.as_str().to_owned()),
            tags: q.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

type Found = BTreeMap<String, Fetched>;

/// A token bucket; `None` rate means unlimited.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A [`Provider`] wrapper that makes as few backend calls as possible.
pub struct Frugal<P> {
    inner: P,
    config: FrugalConfig,
    // std mutexes: never held across an await, and usable from Drop.
    cache: SyncMutex<HashMap<Reference, Entry>>,
    /// When expired copies were last swept out.
    swept: SyncMutex<Instant>,
    inflight: SyncMutex<HashMap<Reference, broadcast::Sender<Shared>>>,
    finds: SyncMutex<HashMap<FindKey, Entry<Found>>>,
    /// One gate per query being listed: the first caller lists, the rest
    /// wait on the gate and then find the listing in `finds`.
    find_gates: SyncMutex<HashMap<FindKey, Arc<Mutex<()>>>>,
    permits: Semaphore,
    bucket: Mutex<Bucket>,
    counters: Arc<Counters>,
}

impl<P: Provider> Frugal<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, config: FrugalConfig) -> Self {
        let permits = Semaphore::new(config.max_concurrency.max(1));
        let burst = f64::from(config.rate_per_second);
        Self {
            inner,
            config,
            cache: SyncMutex::new(HashMap::new()),
            swept: SyncMutex::new(Instant::now()),
            inflight: SyncMutex::new(HashMap::new()),
            finds: SyncMutex::new(HashMap::new()),
            find_gates: SyncMutex::new(HashMap::new()),
            permits,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The counters, shared so a metrics exporter can read them.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The wrapped provider, for backend-specific calls (lease renewal).
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Drops a cached entry, e.g. after the controller saw the value
    /// rejected or a lease revoked.
    pub fn invalidate(&self, reference: &Reference) {
        lock(&self.cache).remove(reference);
    }

    /// A usable cached copy, counting the hit: read at or after
    /// `not_before` when given, else younger than `max_age`.
    fn cached(&self, reference: &Reference, not_before: Option<SystemTime>) -> Option<Fetched> {
        let cache = lock(&self.cache);
        let e = cache
            .get(reference)
            .filter(|e| e.usable(not_before, Instant::now()))?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some((*e.value).clone())
    }

    fn entry(&self, value: Arc<Fetched>, read_at: SystemTime) -> Entry {
        let leases = [value.meta.lease.as_ref().map(|l| l.duration)];
        self.entry_with(value, read_at, leases.into_iter().flatten())
    }

    /// `max_age` and `retain`, both cut to half the shortest lease among
    /// the values (nobody is handed a credential about to expire).
    fn entry_with<T>(
        &self,
        value: Arc<T>,
        read_at: SystemTime,
        leases: impl Iterator<Item = Duration>,
    ) -> Entry<T> {
        let now = Instant::now();
        let mut ttl = self.config.max_age;
        let mut keep = self.config.retain.max(ttl);
        for lease in leases {
            ttl = ttl.min(lease / 2);
            keep = keep.min(lease / 2);
        }
        Entry {
            value,
            fresh_until: now + ttl,
            read_at,
            dead_at: now + keep,
        }
    }

    /// Drops copies nobody may be served any more (at most once a minute).
    fn sweep(&self, cache: &mut HashMap<Reference, Entry>) {
        let now = Instant::now();
        let mut swept = lock(&self.swept);
        if now.duration_since(*swept) < Duration::from_secs(60) {
            return;
        }
        *swept = now;
        cache.retain(|_, e| now < e.dead_at);
    }

    async fn take_token(&self) {
        if self.config.rate_per_second == 0 {
            return;
        }
        let rate = f64::from(self.config.rate_per_second);
        loop {
            let wait = {
                let mut b = self.bucket.lock().await;
                let now = Instant::now();
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(rate);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One backend fetch with limits, timeout and retries.
    async fn call(&self, reference: &Reference) -> Result<Fetched, ProviderError> {
        self.guarded(&reference.key, || self.inner.fetch(reference))
            .await
    }

    /// Runs one backend operation under the store's budget: a concurrency
    /// permit and a rate-limit token per attempt, counted, with a timeout
    /// and retries (with backoff) of retryable failures.
    async fn guarded<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit =
                    self.permits
                        .acquire()
                        .await
                        .map_err(|_| ProviderError::Unavailable {
                            store: self.inner.store().to_owned(),
                            detail: "provider is shutting down".into(),
                        })?;
                self.take_token().await;
                self.counters.calls.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(self.config.timeout, op()).await {
                    Ok(r) => r,
                    Err(_) => Err(ProviderError::Unavailable {
                        store: self.inner.store().to_owned(),
                        detail: format!("no answer within {:?}", self.config.timeout),
                    }),
                }
            };
            match result {
                Ok(f) => return Ok(f),
                Err(e) => {
                    if let Ok(mut m) = self.counters.errors.lock() {
                        *m.entry(e.metric_label()).or_default() += 1;
                    }
                    if !e.is_retryable() || attempt >= self.config.max_attempts {
                        return Err(e);
                    }
                    let delay = backoff(self.config.base_backoff, attempt);
                    tracing::debug!(store = %self.inner.store(), key = %what, attempt, ?delay, error = %e, "retrying backend call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// A usable cached listing (same rules as [`Self::cached`]).
    fn cached_find(&self, key: &FindKey, not_before: Option<SystemTime>) -> Option<Found> {
        let finds = lock(&self.finds);
        let e = finds
            .get(key)
            .filter(|e| e.usable(not_before, Instant::now()))?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some((*e.value).clone())
    }

    /// A find through the cache and single-flight, keyed by the query.
    async fn find_with(
        &self,
        query: &FindQuery,
        not_before: Option<SystemTime>,
    ) -> Result<Found, ProviderError> {
        let key = FindKey::of(query);
        if let Some(found) = self.cached_find(&key, not_before) {
            return Ok(found);
        }
        let gate = Arc::clone(lock(&self.find_gates).entry(key.clone()).or_default());
        let result = {
            let _turn = match gate.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    // Someone is listing this query right now; their answer
                    // is at least as new as this call, so wait for it.
                    self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                    gate.lock().await
                }
            };
            if let Some(found) = self.cached_find(&key, not_before) {
                Ok(found)
            } else {
                let started = SystemTime::now();
                let what = query.path.as_deref().unwrap_or("(find)");
                let result = self.guarded(what, || self.inner.find(query)).await;
                if let Ok(found) = &result
                    && !self.config.max_age.is_zero()
                {
                    let entry = self.find_entry(found.clone(), started);
                    let mut finds = lock(&self.finds);
                    let now = Instant::now();
                    finds.retain(|_, e| now < e.dead_at);
                    finds.insert(key.clone(), entry);
                }
                result
            }
        };
        // The gate goes once nobody else holds or waits on it (the map's
        // reference and ours are the only two).
        let mut gates = lock(&self.find_gates);
        if gates
            .get(&key)
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(g) <= 2)
        {
            gates.remove(&key);
        }
        result
    }

    fn find_entry(&self, found: Found, read_at: SystemTime) -> Entry<Found> {
        let leases: Vec<Duration> = found
            .values()
            .filter_map(|f| f.meta.lease.as_ref().map(|l| l.duration))
            .collect();
        self.entry_with(Arc::new(found), read_at, leases.into_iter())
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base·2ⁿ)].
fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = Duration::from_secs(30);
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    // RandomState is seeded per process from the OS; hashing a counter
    // through it gives independent jitter without a rand dependency.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    let frac = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    exp.mul_f64(frac)
}

#[async_trait::async_trait]
impl<P: Provider> Provider for Frugal<P> {
    fn store(&self) -> &str {
        self.inner.store()
    }

    /// Cached like a single read (fresh for `max_age`) and single-flight
    /// per query.
    async fn find(&self, query: &FindQuery) -> Result<Found, ProviderError> {
        self.find_with(query, None).await
    }

    /// One listing per distinct query per refresh slot (see the module
    /// note).
    async fn find_since(
        &self,
        query: &FindQuery,
        not_before: SystemTime,
    ) -> Result<Found, ProviderError> {
        self.find_with(query, Some(not_before)).await
    }

    async fn fetch(&self, reference: &Reference) -> Result<Fetched, ProviderError> {
        self.fetch_with(reference, None).await
    }

    async fn fetch_since(
        &self,
        reference: &Reference,
        not_before: SystemTime,
    ) -> Result<Fetched, ProviderError> {
        self.fetch_with(reference, Some(not_before)).await
    }

    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }

    async fn fetch_batch(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        self.batch_with(refs, None).await
    }

    async fn fetch_batch_since(
        &self,
        refs: &[Reference],
        not_before: SystemTime,
    ) -> Vec<Result<Fetched, ProviderError>> {
        self.batch_with(refs, Some(not_before)).await
    }
}

impl<P: Provider> Frugal<P> {
    /// Several references: cached copies and in-flight calls first, then
    /// the rest through the backend's batch API (one rate-limit token and
    /// one counted call per batch). A reference whose batch answer is a
    /// retryable failure is retried on its own.
    async fn batch_with(
        &self,
        refs: &[Reference],
        not_before: Option<SystemTime>,
    ) -> Vec<Result<Fetched, ProviderError>> {
        let size = self.inner.batch_size();
        if size <= 1 || refs.len() <= 1 {
            let mut out = Vec::with_capacity(refs.len());
            for r in refs {
                out.push(self.fetch_with(r, not_before).await);
            }
            return out;
        }
        let mut out: Vec<Option<Result<Fetched, ProviderError>>> = vec![None; refs.len()];
        let mut followers = Vec::new();
        let mut leading: Vec<Reference> = Vec::new();
        {
            let mut inflight = lock(&self.inflight);
            for (i, r) in refs.iter().enumerate() {
                if let Some(f) = self.cached(r, not_before) {
                    out[i] = Some(Ok(f));
                } else if leading.contains(r) {
                    // Answered by our own batch below.
                } else if let Some(tx) = inflight.get(r) {
                    self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                    followers.push((i, tx.subscribe()));
                } else {
                    let (tx, _) = broadcast::channel(1);
                    inflight.insert(r.clone(), tx);
                    leading.push(r.clone());
                }
            }
        }
        // Guards first: if this future is dropped, followers are released.
        let guards: Vec<Leader<'_>> = leading
            .iter()
            .map(|r| Leader {
                inflight: &self.inflight,
                key: Some(r.clone()),
            })
            .collect();
        let mut answers: HashMap<Reference, Shared> = HashMap::new();
        for chunk in leading.chunks(size) {
            let started = SystemTime::now();
            let got = self.call_batch(chunk).await;
            for (r, a) in chunk.iter().zip(got) {
                let a = match a {
                    Err(e) if e.is_retryable() => self.call(r).await,
                    other => other,
                };
                let shared = a.map(Arc::new);
                if let Ok(f) = &shared
                    && !self.config.max_age.is_zero()
                {
                    let entry = self.entry(Arc::clone(f), started);
                    let mut cache = lock(&self.cache);
                    self.sweep(&mut cache);
                    cache.insert(r.clone(), entry);
                }
                answers.insert(r.clone(), shared);
            }
        }
        for guard in guards {
            let answer = guard
                .key
                .as_ref()
                .and_then(|k| answers.get(k).cloned())
                .unwrap_or_else(|| Err(self.internal("batch answer missing")));
            guard.finish(answer);
        }
        for (i, r) in refs.iter().enumerate() {
            if out[i].is_none()
                && let Some(a) = answers.get(r)
            {
                out[i] = Some(a.clone().map(|f| (*f).clone()));
            }
        }
        for (i, mut rx) in followers {
            out[i] = Some(match rx.recv().await {
                Ok(r) => r.map(|f| (*f).clone()),
                Err(_) => self.call(&refs[i]).await,
            });
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(self.internal("batch result unfilled"))))
            .collect()
    }

    fn internal(&self, what: &str) -> ProviderError {
        ProviderError::Unavailable {
            store: self.inner.store().to_owned(),
            detail: format!("internal: {what}"),
        }
    }

    /// One batch call with the concurrency cap, rate limit and timeout;
    /// failed answers are counted like single calls.
    async fn call_batch(&self, refs: &[Reference]) -> Vec<Result<Fetched, ProviderError>> {
        let answers = match self.permits.acquire().await {
            Err(_) => {
                let e = ProviderError::Unavailable {
                    store: self.inner.store().to_owned(),
                    detail: "provider is shutting down".into(),
                };
                return refs.iter().map(|_| Err(e.clone())).collect();
            }
            Ok(_permit) => {
                self.take_token().await;
                self.counters.calls.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(self.config.timeout, self.inner.fetch_batch(refs)).await
                {
                    Ok(a) if a.len() == refs.len() => a,
                    Ok(_) => refs
                        .iter()
                        .map(|_| Err(self.internal("batch answered the wrong count")))
                        .collect(),
                    Err(_) => {
                        let e = ProviderError::Unavailable {
                            store: self.inner.store().to_owned(),
                            detail: format!("no answer within {:?}", self.config.timeout),
                        };
                        refs.iter().map(|_| Err(e.clone())).collect()
                    }
                }
            }
        };
        if let Ok(mut m) = self.counters.errors.lock() {
            for e in answers.iter().filter_map(|a| a.as_ref().err()) {
                *m.entry(e.metric_label()).or_default() += 1;
            }
        }
        answers
    }

    async fn fetch_with(
        &self,
        reference: &Reference,
        not_before: Option<SystemTime>,
    ) -> Result<Fetched, ProviderError> {
        if let Some(f) = self.cached(reference, not_before) {
            return Ok(f);
        }
        // Join an in-flight call or become the leader. A call in flight
        // answers after `not_before` by construction, so joining it is as
        // fresh as starting another.
        let follower = {
            let mut inflight = lock(&self.inflight);
            // A leader stores its result in the cache before it leaves
            // `inflight`, so a second look here closes the window between
            // the first cache miss and taking this lock.
            if let Some(f) = self.cached(reference, not_before) {
                return Ok(f);
            }
            match inflight.get(reference) {
                Some(tx) => {
                    self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                    Some(tx.subscribe())
                }
                None => {
                    let (tx, _) = broadcast::channel(1);
                    inflight.insert(reference.clone(), tx);
                    None
                }
            }
        };
        if let Some(mut rx) = follower {
            return match rx.recv().await {
                Ok(r) => r.map(|f| (*f).clone()),
                // The leader was cancelled; fetch ourselves.
                Err(_) => self.call(reference).await,
            };
        }
        let leader = Leader {
            inflight: &self.inflight,
            key: Some(reference.clone()),
        };
        let started = SystemTime::now();
        let result = self.call(reference).await.map(Arc::new);
        if let Ok(f) = &result
            && !self.config.max_age.is_zero()
        {
            let entry = self.entry(Arc::clone(f), started);
            let mut cache = lock(&self.cache);
            self.sweep(&mut cache);
            cache.insert(reference.clone(), entry);
        }
        leader.finish(result.clone());
        result.map(|f| (*f).clone())
    }
}

fn lock<T>(m: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the in-flight entry when the leading call ends — also when its
/// future is dropped mid-call, so followers are never left waiting (they
/// see the channel close and fetch themselves).
struct Leader<'a> {
    inflight: &'a SyncMutex<HashMap<Reference, broadcast::Sender<Shared>>>,
    key: Option<Reference>,
}

impl Leader<'_> {
    fn finish(mut self, result: Shared) {
        if let Some(key) = self.key.take()
            && let Some(tx) = lock(self.inflight).remove(&key)
        {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(self.inflight).remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    //! In-process checks of the coordination logic with a counting
    //! provider; the real-backend test (OpenBao audit log) is in
    //! `tests/it/providers.rs`.
    use super::*;
    use crate::providers::{Metadata, SecretValue};
    use crate::secret::SecretBytes;

    struct Counting {
        calls: AtomicU64,
        fail_first: u64,
        delay: Duration,
        kind: fn() -> ProviderError,
    }

    #[async_trait::async_trait]
    impl Provider for Counting {
        fn store(&self) -> &str {
            "counting"
        }
        async fn fetch(&self, r: &Reference) -> Result<Fetched, ProviderError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if n < self.fail_first {
                return Err((self.kind)());
            }
            Ok(Fetched {
                value: SecretValue::Bytes(SecretBytes::from(r.key.as_bytes())),
                meta: Metadata::now(),
            })
        }
        /// A listing of two names under the query's path (same failure
        /// behaviour and call counter as `fetch`).
        async fn find(&self, q: &FindQuery) -> Result<Found, ProviderError> {
            let path = q.path.clone().unwrap_or_default();
            let mut out = BTreeMap::new();
            for n in ["a", "b"] {
                out.insert(format!("{path}/{n}"), self.fetch(&Reference::key(n)).await?);
            }
            self.calls.fetch_sub(1, Ordering::SeqCst); // two fetches, one listing
            Ok(out)
        }
    }

    fn unavailable() -> ProviderError {
        ProviderError::Unavailable {
            store: "counting".into(),
            detail: "down".into(),
        }
    }

    fn not_found() -> ProviderError {
        ProviderError::NotFound {
            store: "counting".into(),
            key: "k".into(),
            detail: "gone".into(),
        }
    }

    fn counting(fail_first: u64, delay_ms: u64, kind: fn() -> ProviderError) -> Counting {
        Counting {
            calls: AtomicU64::new(0),
            fail_first,
            delay: Duration::from_millis(delay_ms),
            kind,
        }
    }

    fn fast() -> FrugalConfig {
        FrugalConfig {
            base_backoff: Duration::from_millis(1),
            rate_per_second: 0,
            ..FrugalConfig::default()
        }
    }

    fn query(path: &str, tag: Option<&str>) -> FindQuery {
        FindQuery {
            path: Some(path.into()),
            name: Some(regex::Regex::new("^app/").unwrap()),
            tags: tag
                .map(|t| ("team".to_owned(), t.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_listing_per_distinct_find_per_slot() {
        let f = Arc::new(Frugal::new(counting(0, 30, unavailable), fast()));
        let slot = SystemTime::now();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let f = Arc::clone(&f);
            tasks.push(tokio::spawn(async move {
                // Three distinct queries: two paths, and one path with a tag.
                let q = match i % 3 {
                    0 => query("app", None),
                    1 => query("web", None),
                    _ => query("app", Some("x")),
                };
                f.find_since(&q, slot).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 2);
        }
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 3);
        assert_eq!(f.counters().calls.load(Ordering::Relaxed), 3);
        // The same slot is served from the copy; the next slot lists again.
        f.find_since(&query("app", None), slot).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 3);
        f.find_since(&query("app", None), SystemTime::now())
            .await
            .unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 4);
        assert!(lock(&f.find_gates).is_empty(), "gates are cleaned up");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_finds_are_retried_and_never_cached() {
        // Unavailable twice, then up: retried inside one call.
        let f = Frugal::new(counting(2, 0, unavailable), fast());
        let slot = SystemTime::now();
        assert!(f.find_since(&query("app", None), slot).await.is_ok());
        assert_eq!(f.counters().errors_of("unavailable"), 2);
        // Not found: not retried, not cached.
        let f = Frugal::new(counting(1, 0, not_found), fast());
        assert!(f.find_since(&query("app", None), slot).await.is_err());
        assert!(f.find_since(&query("app", None), slot).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_fetches_collapse_to_one_call_per_reference() {
        let f = Arc::new(Frugal::new(counting(0, 50, unavailable), fast()));
        let mut tasks = Vec::new();
        for i in 0..500 {
            let f = Arc::clone(&f);
            tasks.push(tokio::spawn(async move {
                f.fetch(&Reference::key(format!("k{}", i % 5))).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 5);
        // And the cache serves the next round.
        f.fetch(&Reference::key("k1")).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 5);
        assert!(f.counters().cache_hits.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn fetch_since_serves_copies_read_after_the_floor_only() {
        // A tiny max_age: plain fetches would miss, floors decide.
        let cfg = FrugalConfig {
            max_age: Duration::from_millis(1),
            ..fast()
        };
        let f = Frugal::new(counting(0, 0, unavailable), cfg);
        let slot = SystemTime::now();
        let k = Reference::key("k");
        f.fetch_since(&k, slot).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Same refresh slot, long after max_age: still one call.
        for _ in 0..10 {
            f.fetch_since(&k, slot).await.unwrap();
        }
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 1);
        // Plain fetch honours max_age.
        f.fetch(&k).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 2);
        // The next slot needs a read taken after it.
        let next = SystemTime::now() + Duration::from_millis(5);
        tokio::time::sleep(Duration::from_millis(10)).await;
        f.fetch_since(&k, next).await.unwrap();
        f.fetch_since(&k, next).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn copies_are_not_kept_past_retain() {
        let cfg = FrugalConfig {
            max_age: Duration::from_millis(1),
            retain: Duration::from_millis(30),
            ..fast()
        };
        let f = Frugal::new(counting(0, 0, unavailable), cfg);
        let slot = SystemTime::now();
        let k = Reference::key("k");
        f.fetch_since(&k, slot).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        f.fetch_since(&k, slot).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_others_are_not() {
        let f = Frugal::new(counting(2, 0, unavailable), fast());
        f.fetch(&Reference::key("a")).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 3);
        assert_eq!(f.counters().errors_of("unavailable"), 2);

        let f = Frugal::new(counting(1, 0, not_found), fast());
        let e = f.fetch(&Reference::key("a")).await.unwrap_err();
        assert!(matches!(e, ProviderError::NotFound { .. }));
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 1);
        // Errors are not cached: the next fetch calls again (and succeeds).
        f.fetch(&Reference::key("a")).await.unwrap();
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_slow_backend_times_out_as_unavailable() {
        let cfg = FrugalConfig {
            timeout: Duration::from_millis(20),
            max_attempts: 2,
            ..fast()
        };
        let f = Frugal::new(counting(0, 1_000, unavailable), cfg);
        let e = f.fetch(&Reference::key("a")).await.unwrap_err();
        assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
        assert_eq!(f.inner().calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_does_not_strand_followers() {
        let f = Arc::new(Frugal::new(counting(0, 200, unavailable), fast()));
        let leader = {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.fetch(&Reference::key("a")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let follower = {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.fetch(&Reference::key("a")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follower finished")
            .unwrap();
        assert!(got.is_ok());
    }

    #[tokio::test]
    async fn rate_limit_spaces_calls() {
        let cfg = FrugalConfig {
            rate_per_second: 20,
            max_age: Duration::ZERO,
            ..fast()
        };
        let f = Frugal::new(counting(0, 0, unavailable), cfg);
        let started = Instant::now();
        for i in 0..30 {
            f.fetch(&Reference::key(format!("k{i}"))).await.unwrap();
        }
        // 20 from the burst, then 10 more at 20/s: at least ~0.5 s.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let base = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..50).map(|_| backoff(base, 3)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(samples.iter().any(|d| *d != samples[0]), "no jitter");
        assert!(backoff(base, 40) <= Duration::from_secs(30));
    }
}
