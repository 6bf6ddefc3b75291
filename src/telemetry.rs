//! Pieces shared by the hand-written Prometheus registries of
//! `sealgate controller` and `sealgate gitops`: a duration histogram, label
//! escaping, metric headers and the `/metrics`, `/healthz`, `/readyz`
//! routes.
//!
//! Design note: each process keeps its own registry (plain maps behind
//! mutexes, rendered on scrape, no metrics crate), but the exposition
//! details — bucket semantics, escaping, content type, what `/readyz`
//! answers while starting — must not drift apart between the two, so they
//! live here, below both.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// A cumulative histogram over fixed upper bounds (`le`), rendered in the
/// Prometheus text format. The bounds are passed in by the owner, so each
/// registry picks the range its operations take.
#[derive(Debug, Clone)]
pub struct Histogram<const N: usize> {
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Self {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Counts one observation into every bucket whose bound it fits.
    pub fn observe(&mut self, bounds: &[f64; N], took: Duration) {
        let secs = took.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(bounds) {
            if secs <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name`; `labels` (e.g.
    /// `kind="ExternalSecret"`, already escaped) go before `le`.
    pub fn render(
        &self,
        o: &mut String,
        bounds: &[f64; N],
        name: &str,
        labels: &str,
    ) -> std::fmt::Result {
        let sep = if labels.is_empty() { "" } else { "," };
        for (count, bound) in self.counts.iter().zip(bounds) {
            writeln!(o, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}")?;
        }
        writeln!(
            o,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        )?;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        writeln!(o, "{name}_sum{braces} {}", self.sum)?;
        writeln!(o, "{name}_count{braces} {}", self.count)
    }
}

/// Escapes a Prometheus label value (backslash, quote, newline), so a
/// reason or field-manager name cannot break the exposition format.
pub fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of one metric family.
pub fn header(o: &mut String, name: &str, type_: &str, help: &str) -> std::fmt::Result {
    writeln!(o, "# HELP {name} {help}")?;
    writeln!(o, "# TYPE {name} {type_}")
}

/// `/metrics` (the text `render` returns at scrape time), `/healthz`
/// (the process answers) and `/readyz` (503 until `ready` says so), the
/// same for every sealgate process a kubelet probes.
pub fn router<R, Q>(render: R, ready: Q) -> axum::Router
where
    R: Fn() -> String + Send + Sync + 'static,
    Q: Fn() -> bool + Send + Sync + 'static,
{
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let render = Arc::new(render);
    let ready = Arc::new(ready);
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let render = Arc::clone(&render);
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    if ready() {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_optional() {
        const B: [f64; 3] = [0.1, 1.0, 10.0];
        let mut h = Histogram::<3>::default();
        h.observe(&B, Duration::from_millis(50));
        h.observe(&B, Duration::from_millis(500));
        h.observe(&B, Duration::from_secs(60));
        let mut o = String::new();
        h.render(&mut o, &B, "x_seconds", "").unwrap();
        assert!(o.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{o}");
        assert!(o.contains("x_seconds_bucket{le=\"1\"} 2\n"), "{o}");
        assert!(o.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{o}");
        assert!(o.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{o}");
        assert!(o.contains("x_seconds_count 3\n"), "{o}");
        let mut o = String::new();
        h.render(&mut o, &B, "x_seconds", "kind=\"A\"").unwrap();
        assert!(
            o.contains("x_seconds_bucket{kind=\"A\",le=\"0.1\"} 1\n"),
            "{o}"
        );
        assert!(o.contains("x_seconds_count{kind=\"A\"} 3\n"), "{o}");
    }

    #[test]
    fn label_values_cannot_break_the_format() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
