//! The HTTPS side: axum routes on a rustls listener whose certificate is
//! re-read when the mounted Secret changes.
//!
//! Design note: the certificate and key files are compared by content every
//! `reload_every` (two small reads; Kubernetes updates a mounted Secret by
//! swapping a symlink, which mtime-based watching can miss) and swapped into
//! the live rustls config without dropping connections. A reload that fails
//! (half-written files, a key that does not match) keeps the old
//! certificate and logs the file, never its content. Request bodies are
//! never logged: they hold the objects under review, Secret values included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use zeroize::Zeroizing;

use super::config::Policy;
use super::review::{self, Outcome};

/// Largest review body accepted: an object may be ~3 MiB and an UPDATE
/// carries it twice, base64 and JSON escaping on top.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Path the apiserver posts AdmissionReviews to.
pub const VALIDATE_PATH: &str = "/validate";

/// PEM files of the serving certificate (chain) and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key could not be read or used.
    #[error("TLS certificate {cert} / key {key}: {error}")]
    Tls {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Cause (rustls or I/O; never file content). Not a `source()`:
        /// the message already includes it once.
        error: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause (in the message, not chained).
        error: std::io::Error,
    },
    /// The server loop failed.
    #[error("webhook server on {addr} failed: {error}")]
    Serve {
        /// Address.
        addr: String,
        /// Cause (in the message, not chained).
        error: std::io::Error,
    },
}

impl ServerError {
    /// Stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ServerError::Tls { .. } => "tls",
            ServerError::Bind { .. } => "bind",
            ServerError::Serve { .. } => "serve",
        }
    }
}

/// The routes: `POST /validate` (AdmissionReview) and `GET /healthz`.
pub fn router(policy: Arc<Policy>) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(policy)
}

async fn validate(State(policy): State<Arc<Policy>>, body: Bytes) -> Response {
    match review::review(&body, &policy) {
        Ok(r) => {
            match &r.outcome {
                Outcome::Allowed(reason) => tracing::debug!(
                    uid = %r.uid,
                    target = %r.target,
                    reason = reason.label(),
                    "admitted"
                ),
                Outcome::Denied(found) => {
                    let found: Vec<String> = found
                        .iter()
                        .map(|(f, rule)| format!("{f} [{rule}]"))
                        .collect();
                    tracing::info!(
                        uid = %r.uid,
                        target = %r.target,
                        findings = %found.join(", "),
                        "refused plaintext secret"
                    );
                }
                Outcome::Malformed(why) => tracing::warn!(
                    uid = %r.uid,
                    target = %r.target,
                    reason = %why,
                    "refused malformed AdmissionReview"
                ),
            }
            axum::Json(r.response).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, reason = e.metric_label(), "unanswerable AdmissionReview");
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
    }
}

async fn read_pair(tls: &TlsFiles) -> std::io::Result<(Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>)> {
    let cert = Zeroizing::new(tokio::fs::read(&tls.cert).await?);
    let key = Zeroizing::new(tokio::fs::read(&tls.key).await?);
    Ok((cert, key))
}

fn tls_error(tls: &TlsFiles, error: std::io::Error) -> ServerError {
    ServerError::Tls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        error,
    }
}

/// Loads the certificate once, then keeps it fresh in the background every
/// `reload_every` until `stop` fires or its sender is dropped (the server
/// stopped).
pub async fn tls_config(
    tls: &TlsFiles,
    reload_every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<RustlsConfig, ServerError> {
    let (cert, key) = read_pair(tls).await.map_err(|e| tls_error(tls, e))?;
    let config = RustlsConfig::from_pem(cert.to_vec(), key.to_vec())
        .await
        .map_err(|e| tls_error(tls, e))?;
    let live = config.clone();
    let tls = tls.clone();
    tokio::spawn(async move {
        let mut current = (cert, key);
        let mut tick = tokio::time::interval(reload_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let next = match read_pair(&tls).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(cert = %tls.cert.display(), key = %tls.key.display(), error = %e, "cannot re-read TLS files; keeping the current certificate");
                    continue;
                }
            };
            if next == current {
                continue;
            }
            match live.reload_from_pem(next.0.to_vec(), next.1.to_vec()).await {
                Ok(()) => {
                    tracing::info!(cert = %tls.cert.display(), "reloaded TLS certificate");
                    current = next;
                }
                Err(e) => {
                    tracing::warn!(cert = %tls.cert.display(), key = %tls.key.display(), error = %e, "new TLS files rejected; keeping the current certificate")
                }
            }
        }
    });
    Ok(config)
}

/// Serves the webhook on an already bound listener until `handle` shuts it
/// down. Tests bind `127.0.0.1:0` and read the port before calling this.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: TlsFiles,
    reload_every: Duration,
    policy: Policy,
    handle: Handle<SocketAddr>,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "<unknown>".to_owned(), |a| a.to_string());
    listener
        .set_nonblocking(true)
        .map_err(|error| ServerError::Serve {
            addr: addr.clone(),
            error,
        })?;
    // Dropped when this function returns, which ends the reload task.
    let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = tls_config(&tls, reload_every, stop_rx).await?;
    tracing::info!(%addr, path = VALIDATE_PATH, "admission webhook listening");
    axum_server::from_tcp_rustls(listener, config)
        .map_err(|error| ServerError::Serve {
            addr: addr.clone(),
            error,
        })?
        .handle(handle)
        .serve(router(Arc::new(policy)).into_make_service())
        .await
        .map_err(|error| ServerError::Serve { addr, error })
}

/// Binds `addr` and serves (the `sealgate webhook` entry point).
pub async fn bind_and_serve(
    addr: SocketAddr,
    tls: TlsFiles,
    reload_every: Duration,
    policy: Policy,
    handle: Handle<SocketAddr>,
) -> Result<(), ServerError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|error| ServerError::Bind { addr, error })?;
    serve(listener, tls, reload_every, policy, handle).await
}
