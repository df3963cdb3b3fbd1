//! What an operator's probe sees: the metrics and a health check, and an
//! HTTP endpoint serving both (`GET /metrics`, `GET /health`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use capf_ca::ProofHash;
use tokio::net::TcpListener;

use crate::server::Shared;

/// The server's metrics and health. Cheap to clone.
#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

/// How long the health check waits for the store.
const STORE_CHECK: Duration = Duration::from_secs(5);

impl Observer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Observer { shared }
    }

    /// The metrics, in the Prometheus text format (OpenMetrics).
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// The metrics, to which a store can report (e.g. its batch sizes).
    pub fn metrics(&self) -> Arc<crate::Metrics> {
        self.shared.metrics.clone()
    }

    /// `Ok` when the listeners run, the store takes changes and the CA key
    /// signs; otherwise what is wrong, in words.
    pub async fn health(&self) -> Result<(), String> {
        if !self.shared.listening.load(Ordering::SeqCst) {
            return Err("the listeners are not running".into());
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.shared.store.health(Box::new(move |result| {
            let _ = answer.send(result);
        }));
        match tokio::time::timeout(STORE_CHECK, answered).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("the store: {e}")),
            Ok(Err(_)) => return Err("the store dropped the check".into()),
            Err(_) => return Err("the store did not answer in time".into()),
        }
        self.shared
            .issuer
            .private_key()
            .sign_proof(ProofHash::Sha1, b"capf health check")
            .map_err(|e| format!("the CA key: {e}"))?;
        Ok(())
    }
}

/// Serves `GET /metrics` and `GET /health` (200 "ok", or 503 with the
/// reason) on `listener` until `shutdown` completes. Put it on a loopback
/// or management address: it needs no authentication and says what the
/// server is doing.
///
/// # Errors
/// The listener's I/O errors.
pub async fn serve_observer(
    listener: TcpListener,
    observer: Observer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(observer);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(
    axum::extract::State(observer): axum::extract::State<Observer>,
) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        observer.metrics_text(),
    )
}

async fn health(
    axum::extract::State(observer): axum::extract::State<Observer>,
) -> impl IntoResponse {
    match observer.health().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}
