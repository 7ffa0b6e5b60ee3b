//! The HTTP endpoint: `/metrics` (the classic text format, or OpenMetrics
//! when the scraper asks for it), `/healthz`, `/readyz`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

use super::format::{Format, to_classic};

/// Loopback by default: counters name users, so exposing them is the
/// operator's choice.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9617";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot listen on {addr} for metrics (is another policyd running?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics server failed")]
    Serve(#[source] std::io::Error),
}

pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr, registry: Registry) -> Result<Self, TelemetryError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| TelemetryError::Bind { addr, source })?;
        Ok(Self {
            listener,
            registry: Arc::new(registry),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), TelemetryError> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(|| async { "ready\n" }))
            .with_state(self.registry);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(TelemetryError::Serve)
    }
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => {
            if format == Format::Classic {
                body = to_classic(&body);
            }
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
