//! `mw serve`: the ingress on axum, the worker pool, `/healthz` and `/metrics`,
//! graceful shutdown, and the data directory (lock, database, webhook token).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mw_core::{Actions, Classifier, Policy, Renderer, Verifier};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::dryrun::OutboxActions;
use crate::ingress::{Ingress, Throttle};
use crate::metrics::Metrics;
use crate::sqlite::{Durability, SqliteStore};
use crate::webhook::{AuthMode, MAX_BODY_BYTES, WebhookAuth};
use crate::worker::{self, CachedFlags, Vendor, WorkerConfig, WorkerDeps};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory is unusable.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// Directory.
        path: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// Address.
        addr: String,
        /// OS message.
        message: String,
    },
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] mw_core::PortError),
}

/// Everything `mw serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory (database, token, lock).
    pub data_dir: PathBuf,
    /// Webhook secrets; empty ⇒ a generated token stored in the data directory.
    pub webhook_tokens: Vec<String>,
    /// Auth mode.
    pub auth_mode: AuthMode,
    /// Throttle; `None` disables it.
    pub throttle: Option<Throttle>,
    /// Worker tuning.
    pub worker: WorkerConfig,
    /// Receives before dead-lettering.
    pub max_receives: u32,
    /// Base retry delay after a failure.
    pub retry_delay: Duration,
    /// Flags cache lifetime.
    pub flags_cache: Duration,
    /// Commit durability.
    pub durability: Durability,
    /// How long shutdown waits for in-flight events.
    pub shutdown_grace: Duration,
    /// How long a caller may take to send a request's headers, and its body: a slow
    /// sender gets 408 (or, for headers, a closed connection) instead of a held slot.
    pub request_timeout: Duration,
    /// Print `mw serve listening on http://…` on stdout once listening.
    pub announce: bool,
}

/// The decision components and vendors `mw serve` runs with.
pub struct Components {
    /// Classifier.
    pub classifier: Arc<dyn Classifier>,
    /// Verifier.
    pub verifier: Arc<dyn Verifier>,
    /// Tier policy.
    pub policy: Arc<dyn Policy>,
    /// Renderer.
    pub renderer: Arc<dyn Renderer>,
    /// Conversations and orders.
    pub vendor: Vendor,
    /// Actions; `None` ⇒ the dry-run outbox.
    pub actions: Option<Arc<dyn Actions>>,
    /// Metrics, shared with the vendor clients.
    pub metrics: Arc<Metrics>,
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("mw.sqlite3")
}

/// The file holding the address of a running server.
pub fn address_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.addr")
}

/// The generated webhook token file.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("webhook_token")
}

fn data_dir_error(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::DataDir {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads the generated token, creating it (random, mode 0600) on first use.
/// Returns the token and whether it was just created.
pub fn ensure_token(data_dir: &Path) -> Result<(String, bool), ServeError> {
    let path = token_path(data_dir);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim().to_owned();
        if !token.is_empty() {
            return Ok((token, false));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        data_dir_error(data_dir, format!("no OS randomness for a token: {error}"))
    })?;
    let token = hex::encode(bytes);
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| {
            data_dir_error(
                data_dir,
                format!("cannot write {}: {error}", path.display()),
            )
        })?;
    file.write_all(token.as_bytes())
        .map_err(|error| data_dir_error(data_dir, error.to_string()))?;
    Ok((token, true))
}

/// Opens the database of a data directory (for the CLI's other commands).
pub fn open_store(data_dir: &Path) -> Result<SqliteStore, ServeError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|error| data_dir_error(data_dir, error.to_string()))?;
    Ok(SqliteStore::open(
        &database_path(data_dir),
        Durability::Full,
    )?)
}

#[derive(Clone)]
struct AppState {
    ingress: Arc<Ingress>,
    metrics: Arc<Metrics>,
    store: Arc<SqliteStore>,
    request_timeout: Duration,
}

async fn webhook(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        state.request_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES + 1),
    );
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => Bytes::from(vec![0u8; MAX_BODY_BYTES + 1]),
        Err(_) => {
            state.metrics.event_rejected("timeout");
            let message = format!(
                "the request body did not arrive within {} s; send it in one go",
                state.request_timeout.as_secs_f64()
            );
            return (
                http::StatusCode::REQUEST_TIMEOUT,
                [(http::header::CONNECTION, "close")],
                axum::Json(serde_json::json!({"status": "error", "error": message})),
            )
                .into_response();
        }
    };
    let response = state
        .ingress
        .handle(http::Request::from_parts(parts, bytes))
        .await;
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.stats(Utc::now()) {
        Ok(stats) => (
            http::StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "queue": stats})),
        ),
        Err(error) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "error", "error": error.to_string()})),
        ),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.stats(Utc::now()).unwrap_or_default();
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(stats),
    )
}

/// Runs until `shutdown` resolves, then stops taking work, lets in-flight events
/// finish (or releases them after the grace period) and returns.
pub async fn serve(
    config: ServeConfig,
    components: Components,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|error| data_dir_error(data_dir, error.to_string()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("mw.lock"))
        .map_err(|error| data_dir_error(data_dir, error.to_string()))?;
    if lock.try_lock().is_err() {
        return Err(data_dir_error(
            data_dir,
            "another `mw serve` is using this data directory; stop it or choose another MW_DATA_DIR",
        ));
    }
    let secrets = if config.webhook_tokens.is_empty() {
        let (token, created) = ensure_token(data_dir)?;
        let path = token_path(data_dir);
        if created {
            info!(path = %path.display(), "no webhook token configured: generated one (send it in the x-richpanel-webhook-token header)");
        } else {
            info!(path = %path.display(), "no webhook token configured: using the generated one");
        }
        vec![token]
    } else {
        config.webhook_tokens.clone()
    };
    let db = database_path(data_dir);
    let ingress_store = Arc::new(SqliteStore::open(&db, config.durability)?);
    let worker_store = Arc::new(
        SqliteStore::open(&db, config.durability)?
            .with_max_receives(config.max_receives)
            .with_retry_delay(config.retry_delay),
    );
    let released = worker_store.release_in_flight()?;
    if released > 0 {
        info!(released, "released events left in flight by a previous run");
    }
    let metrics = components.metrics.clone();
    let wake = Arc::new(Notify::new());
    let ingress_queue = Arc::new(crate::batch::GroupCommitQueue::start(
        ingress_store.clone(),
    )?);
    let ingress = Ingress::new(
        WebhookAuth::new(config.auth_mode.clone(), &secrets),
        ingress_queue,
        config.throttle,
        metrics.clone(),
    )
    .with_wake(wake.clone());
    let dry_run = components.actions.is_none();
    let actions: Arc<dyn Actions> = components
        .actions
        .unwrap_or_else(|| Arc::new(OutboxActions::new(worker_store.clone())));
    let deps = Arc::new(WorkerDeps {
        queue: worker_store.clone(),
        state: worker_store.clone(),
        flags: Arc::new(CachedFlags::new(worker_store.clone(), config.flags_cache)),
        vendor: components.vendor,
        actions,
        classifier: components.classifier,
        verifier: components.verifier,
        policy: components.policy,
        renderer: components.renderer,
        mode: if dry_run { "dry_run" } else { "live" },
        metrics: metrics.clone(),
        wake,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = tokio::spawn(worker::run(deps, config.worker, stop_rx.clone()));
    let sweeper_store = worker_store.clone();
    let mut sweeper_stop = stop_rx.clone();
    let sweeper = tokio::spawn(async move {
        loop {
            if let Err(error) = sweeper_store.sweep(Utc::now()) {
                warn!(error = %error, "TTL sweep failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = sweeper_stop.changed() => break,
            }
        }
    });
    let state = AppState {
        ingress: Arc::new(ingress),
        metrics,
        store: ingress_store,
        request_timeout: config.request_timeout,
    };
    let app = Router::new()
        .route("/webhook/richpanel", post(webhook))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler))
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| ServeError::Listen {
            addr: config.listen.to_string(),
            message: error.to_string(),
        })?;
    let local = listener.local_addr().map_err(|error| ServeError::Listen {
        addr: config.listen.to_string(),
        message: error.to_string(),
    })?;
    // Written atomically, so a reader never sees a half-written address.
    let temporary = data_dir.join("serve.addr.tmp");
    if std::fs::write(&temporary, local.to_string()).is_ok() {
        let _ = std::fs::rename(&temporary, address_path(data_dir));
    }
    info!(addr = %local, mode = if dry_run { "dry_run" } else { "live" }, "mw serve listening");
    if config.announce {
        println!(
            "mw serve listening on http://{local} ({})",
            if dry_run { "dry-run outbox" } else { "live" }
        );
    }
    accept_loop(listener, app, config.request_timeout, shutdown).await;
    info!("shutting down: no new work; finishing in-flight events");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(config.shutdown_grace, workers)
        .await
        .is_err()
    {
        warn!("in-flight events did not finish in time; releasing them for the next run");
        let _ = worker_store.release_in_flight();
    }
    let _ = sweeper.await;
    let _ = std::fs::remove_file(address_path(data_dir));
    drop(lock);
    Ok(())
}

/// Serves HTTP/1 and HTTP/2 connections until `shutdown` resolves, then lets open
/// requests finish. A caller that does not send its headers within
/// `request_timeout` is disconnected (axum's own `serve` sets no such timeout).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    request_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (builder, watcher) = (builder.clone(), graceful.watcher());
                    let service = TowerToHyperService::new(app.clone());
                    tokio::spawn(async move {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        let _ = watcher.watch(connection).await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // Open requests finish; none can take longer than the request timeout to arrive.
    let grace = request_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open at shutdown were closed");
    }
}
