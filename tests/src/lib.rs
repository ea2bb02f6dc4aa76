//! Cross-crate end-to-end tests of the mw middleware live in `tests/tests/`; this
//! library holds their shared helpers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failure is a test failure"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mw_adapters::SqliteStore;
use mw_adapters::server::open_store;
use mw_cli::Engine;
use mw_cli::ops::InProcessServer;
use mw_cli::serve::{LogFormat, ServeSettings};
use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The golden set's lines.
pub fn golden_lines() -> Result<Vec<mw_cli::eval::GoldenLine>, String> {
    let path = repo_root().join("golden/golden_v1.jsonl");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    mw_cli::eval::parse_golden(&text).map_err(|error| error.to_string())
}

/// `mw serve` running in-process on a fresh data directory.
pub struct Server {
    /// Base URL.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its database, opened a second time.
    pub store: Arc<SqliteStore>,
    server: InProcessServer,
}

/// A fresh temporary directory.
pub fn tempdir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("mw-serve-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `mw serve` (webhook tokens `tok-a`, `tok-b`; no throttle; 4 workers),
/// with `tweak` applied to the settings.
pub async fn start(name: &str, tweak: impl FnOnce(&mut ServeSettings)) -> Server {
    let data_dir = tempdir(name);
    let mut settings = ServeSettings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.clone()),
        webhook_tokens: Some(vec!["tok-a".into(), "tok-b".into()]),
        rate_limit_per_sec: Some(0),
        flags_cache_secs: Some(1),
        retry_delay_ms: Some(50),
        workers: Some(4),
        log_format: Some(LogFormat::Text),
        ..ServeSettings::default()
    };
    tweak(&mut settings);
    let server = InProcessServer::start(&settings, Engine::embedded().unwrap())
        .await
        .unwrap();
    let store = Arc::new(open_store(&data_dir).unwrap());
    Server {
        url: server.url.clone(),
        data_dir,
        store,
        server,
    }
}

impl Server {
    /// Posts a webhook body with these headers.
    pub async fn post(&self, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/webhook/richpanel", self.url))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a webhook body with token `tok-a`.
    pub async fn post_token(&self, body: &Value) -> (u16, Value) {
        self.post(
            &body.to_string(),
            &[("x-richpanel-webhook-token", "tok-a".into())],
        )
        .await
    }

    /// Waits until the queue is empty.
    pub async fn drain(&self) {
        for _ in 0..400 {
            let stats = self.store.stats(chrono::Utc::now()).unwrap();
            if stats.depth == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("queue did not drain");
    }

    /// The dry-run replies of a conversation.
    pub fn replies(&self, conversation: &str) -> Vec<Value> {
        self.store
            .outbox(Some(conversation))
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "reply")
            .map(|e| e.action)
            .collect()
    }

    /// Stops the server and removes its data directory.
    pub async fn stop(self) {
        self.server.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
