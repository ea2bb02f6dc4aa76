//! Cross-crate end-to-end tests of the mw middleware live in `tests/tests/`; this
//! library holds their shared helpers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failure is a test failure"
)]

pub mod soak;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mw_adapters::SqliteStore;
use mw_adapters::server::open_store;
use mw_cli::ops::InProcessServer;
use mw_cli::serve::{LogFormat, ServeSettings};
use mw_cli::{ClassifierSource, Engine};
use mw_core::ModelOutput;
use mw_fakes::FakeReply;
use serde_json::{Value, json};

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

/// A fake OpenAI responder: the classifier answers like the embedded rules would on
/// the (redacted) customer text; the Tier 2 verifier allows while `verifier_allows`
/// is true and denies otherwise.
pub fn rules_model(
    engine: Engine,
    verifier_allows: Arc<AtomicBool>,
) -> impl Fn(&Value) -> FakeReply + Send + Sync + 'static {
    move |request| match request["response_format"]["json_schema"]["name"].as_str() {
        Some("mw_decision_v1") => {
            match engine
                .classify(
                    mw_adapters::openai::customer_message(request).unwrap_or_default(),
                    &ClassifierSource::Rules,
                )
                .output
            {
                ModelOutput::Json(value) => FakeReply::Content(value),
                ModelOutput::Failed(_) => FakeReply::RawContent("{}".into()),
            }
        }
        _ if verifier_allows.load(Ordering::SeqCst) => FakeReply::Content(json!({
            "schema_version": "mw_tier2_verifier_v1", "allow_tier2": true, "confidence": 0.95,
            "downgrade_to_tier": "TIER_1_SAFE_ASSIST", "reason_code": "OK", "notes": ""})),
        _ => FakeReply::Content(json!({
            "schema_version": "mw_tier2_verifier_v1", "allow_tier2": false, "confidence": 0.9,
            "downgrade_to_tier": "TIER_1_SAFE_ASSIST", "reason_code": "DETERMINISTIC_MATCH_FALSE", "notes": ""})),
    }
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

    /// Waits until the queue is empty (at most 10 s).
    pub async fn drain(&self) {
        self.drain_within(Duration::from_secs(10)).await;
    }

    /// Waits until the queue is empty, at most `limit`.
    pub async fn drain_within(&self, limit: Duration) {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let stats = self.store.stats(chrono::Utc::now()).unwrap();
            if stats.depth == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("queue did not drain within {limit:?}");
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

/// What draining a backlog through a rate-limited fake Richpanel measured.
#[derive(Debug, Clone)]
pub struct DrainReport {
    /// Events processed.
    pub events: usize,
    /// The fake's limit, requests per second.
    pub rate: u32,
    /// Requests the fake received.
    pub requests: usize,
    /// Of those, answered 429.
    pub throttled: usize,
    /// From the first request to the last, seconds.
    pub seconds: f64,
    /// Automated replies sent.
    pub replies: usize,
}

impl DrainReport {
    /// Share of requests answered 429.
    pub fn throttled_share(&self) -> f64 {
        self.throttled as f64 / self.requests.max(1) as f64
    }

    /// Requests per second achieved, as a share of the fake's limit.
    pub fn rate_share(&self) -> f64 {
        (self.requests as f64 / self.seconds.max(1e-9)) / f64::from(self.rate)
    }
}

/// Enqueues `events` customer messages (one conversation each) while no worker
/// runs, then lets `mw serve` (8 workers, one shared Richpanel limiter set to the
/// fake's limit) drain them against a fake Richpanel that allows `rate` requests
/// per second and answers 429 beyond it.
pub async fn drain_backlog(name: &str, events: usize, rate: u32) -> DrainReport {
    let key = "rp-drain-key";
    let fake = mw_fakes::FakeRichpanel::start(key).await.unwrap();
    let bot = fake.add_user("Support Bot", "bot@shop.example");
    let texts = [
        "My mug arrived cracked, what can I do?",
        "Do you ship to Canada?",
        "I want to return the sweater, it is too small.",
        "The discount code WELCOME10 does not work at checkout.",
    ];
    for index in 0..events {
        let id = format!("t_{index:05}");
        fake.insert_ticket(
            serde_json::json!({"id": id, "status": "OPEN", "tags": [], "comments": [],
            "via": {"channel": "email"}}),
        );
        fake.add_customer_message(&id, texts[index % texts.len()]);
    }
    // Accept the whole backlog first (no workers), then restart with workers.
    let (url, bot_id) = (fake.base_url(), bot.clone());
    let settings = move |settings: &mut ServeSettings| {
        settings.richpanel_base_url = Some(url);
        settings.richpanel_api_key = Some(key.into());
        settings.richpanel_bot_author_id = Some(bot_id);
        settings.richpanel_rate_limit = Some(rate);
        settings.richpanel_rate_window_secs = Some(1.0);
    };
    let settings_again = settings.clone();
    let intake = start(name, |s| {
        settings(s);
        s.workers = Some(0);
    })
    .await;
    let data_dir = intake.data_dir.clone();
    for index in 0..events {
        let body = serde_json::json!({"ticket_id": format!("t_{index:05}")});
        let (status, _) = intake.post_token(&body).await;
        assert_eq!(status, 200);
    }
    intake.server.stop().await.unwrap();
    fake.set_rate_limit(Some((rate, Duration::from_secs(1))));
    fake.clear_journal();
    let mut serve = ServeSettings {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.clone()),
        webhook_tokens: Some(vec!["tok-a".into()]),
        workers: Some(8),
        retry_delay_ms: Some(50),
        log_format: Some(LogFormat::Text),
        log: Some("warn".into()),
        ..ServeSettings::default()
    };
    settings_again(&mut serve);
    let server = InProcessServer::start(&serve, Engine::embedded().unwrap())
        .await
        .unwrap();
    let store = Arc::new(open_store(&data_dir).unwrap());
    let drained = Server {
        url: server.url.clone(),
        data_dir,
        store,
        server,
    };
    drained
        .drain_within(Duration::from_secs(
            60 + 8 * events as u64 / u64::from(rate.max(1)),
        ))
        .await;
    let journal = fake.journal();
    let first = journal.iter().map(|e| e.at).min().unwrap_or_default();
    let last = journal.iter().map(|e| e.at).max().unwrap_or_default();
    let report = DrainReport {
        events,
        rate,
        requests: journal.len(),
        throttled: journal.iter().filter(|e| e.status == 429).count(),
        seconds: (last - first).as_secs_f64(),
        replies: journal
            .iter()
            .filter(|e| e.path.ends_with("/send-message") && e.status == 200)
            .count(),
    };
    drained.stop().await;
    fake.stop().await;
    report
}
