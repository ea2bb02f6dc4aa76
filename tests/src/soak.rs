//! The fault-injection soak: `mw serve` runs as a child process and is killed with
//! SIGKILL at random points of its work, then restarted on the same data directory;
//! webhooks are delivered twice, concurrently, some conversations out of order and
//! some messages again long after; the fake Richpanel and the fake OpenAI inject
//! 429s, 5xx, timeouts, dropped responses and malformed bodies into a share of
//! requests. A phase runs under the kill switch. Then an oracle checks that every
//! accepted event was processed or dead-lettered with a reason, that no reply was
//! sent twice, that nothing was automated on a Tier 0 or safe-mode conversation, and
//! that each conversation's events were decided in the order they were accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mw_cli::Engine;
use mw_fakes::{Chaos, FakeOpenAi, FakeReply, FakeRichpanel, Fault, RetryAfter};
use serde_json::json;

const RP_KEY: &str = "rp-soak-key";
const AI_KEY: &str = "sk-soak-key";
const TOKEN: &str = "soak-webhook-token";

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The `mw` binary to run (see [`mw_binary`]).
    pub mw: PathBuf,
    /// Customer messages to deliver (each one event).
    pub events: usize,
    /// Share of vendor requests given a fault, 0–1.
    pub fault_rate: f64,
    /// SIGKILLs of `mw serve`, spread over the run.
    pub kills: usize,
    /// Seed of every random choice (the same seed gives the same plan).
    pub seed: u64,
    /// Worker tasks of `mw serve`.
    pub workers: usize,
    /// Conversations being delivered at once.
    pub senders: usize,
    /// Largest time the whole run may take.
    pub limit: Duration,
}

/// What the oracle counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoakReport {
    /// Conversations in the run.
    pub conversations: usize,
    /// Of those, with Tier 0 content.
    pub tier0_conversations: usize,
    /// Of those, delivered while the kill switch was on.
    pub safe_mode_conversations: usize,
    /// Distinct events delivered.
    pub events: usize,
    /// Webhook requests sent (duplicates and retries included).
    pub deliveries: usize,
    /// Distinct events acknowledged with a 2xx.
    pub accepted: usize,
    /// Accepted events decided or skipped by the worker.
    pub processed: usize,
    /// Accepted events in the dead-letter queue with a reason.
    pub dead_lettered: usize,
    /// Accepted events neither processed nor dead-lettered with a reason.
    pub lost: usize,
    /// Customer replies Richpanel holds.
    pub replies: usize,
    /// Replies beyond one per reply decision.
    pub duplicate_replies: usize,
    /// Send or close requests on a Tier 0 or safe-mode conversation.
    pub unsafe_automations: usize,
    /// Events decided out of their conversation's acceptance order.
    pub order_violations: usize,
    /// SIGKILLs of `mw serve`.
    pub kills: usize,
    /// Requests the fake Richpanel served.
    pub richpanel_requests: u64,
    /// Of those, given an injected fault.
    pub richpanel_faults: u64,
    /// Chat completion requests the fake OpenAI served.
    pub openai_requests: u64,
    /// Of those, given an injected fault.
    pub openai_faults: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl SoakReport {
    /// Whether every safety count is zero and the run did what it was asked.
    pub fn passed(&self, config: &SoakConfig) -> bool {
        self.lost == 0
            && self.duplicate_replies == 0
            && self.unsafe_automations == 0
            && self.order_violations == 0
            && self.accepted == self.events
            && self.kills >= config.kills
            && self.replies > 0
    }

    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let share = |faults: u64, requests: u64| {
            format!(
                "{requests} / {faults} ({:.1} %)",
                100.0 * faults as f64 / requests.max(1) as f64
            )
        };
        let rows = [
            (
                "conversations (Tier 0 / under the kill switch)",
                format!(
                    "{} ({} / {})",
                    self.conversations, self.tier0_conversations, self.safe_mode_conversations
                ),
            ),
            ("events", self.events.to_string()),
            (
                "webhook deliveries (duplicates and retries included)",
                self.deliveries.to_string(),
            ),
            ("events accepted", self.accepted.to_string()),
            ("events processed", self.processed.to_string()),
            (
                "events dead-lettered with a reason",
                self.dead_lettered.to_string(),
            ),
            ("**lost events**", self.lost.to_string()),
            ("customer replies sent", self.replies.to_string()),
            ("**duplicate replies**", self.duplicate_replies.to_string()),
            (
                "**unsafe automations**",
                self.unsafe_automations.to_string(),
            ),
            (
                "**per-conversation order violations**",
                self.order_violations.to_string(),
            ),
            ("worker kills (SIGKILL)", self.kills.to_string()),
            (
                "Richpanel requests / injected faults",
                share(self.richpanel_faults, self.richpanel_requests),
            ),
            (
                "OpenAI requests / injected faults",
                share(self.openai_faults, self.openai_requests),
            ),
            (
                "vendor requests / injected faults",
                share(
                    self.richpanel_faults + self.openai_faults,
                    self.richpanel_requests + self.openai_requests,
                ),
            ),
            ("wall time", format!("{:.0} s", self.seconds)),
        ];
        let mut out = String::from("| check | count |\n|---|---:|\n");
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {value} |\n"));
        }
        out
    }
}

/// The `mw` binary next to the running executable (`target/<profile>/mw`), or
/// `MW_BIN`. Fails saying how to build it.
pub fn mw_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MW_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let found = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("mw"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "no `mw` binary next to {}: build it first (`cargo build -p mw-cli --bin mw`) or set MW_BIN",
            exe.display()
        )
    })
}

/// A small deterministic generator (SplitMix64), so a seed replays a run's plan.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OrderStatus,
    Intake,
    Tier0,
    RouteOnly,
}

const ORDER_STATUS: [&str; 4] = [
    "Hi, where is my order #{n}? It's been a few days.",
    "Any tracking for order #{n}? I ordered on Monday and have heard nothing.",
    "hey can u tell me when order #{n} will get here",
    "Could you check the delivery status of #{n} for me please?",
];
const INTAKE: [&str; 4] = [
    "My mug arrived cracked, what can I do?",
    "The jacket I received is damaged, there is a tear on the sleeve.",
    "I want to return the sweater, it is too small.",
    "Your promo code SAVE20 does not work at checkout, please help",
];
const TIER0: [&str; 5] = [
    "If this isn't refunded today I'm filing a chargeback with my bank.",
    "I did not make this purchase, someone used my card without permission.",
    "My lawyer will be in touch about this order.",
    "Voy a poner una queja en PROFECO, nadie me responde.",
    "I already opened a dispute with PayPal for this order.",
];
const ROUTE_ONLY: [&str; 4] = [
    "Do you have the hiking boots in size 11 wide?",
    "Can someone call me back please? My number is in my profile.",
    "I'd like to change the shipping address on my order to my office.",
    "Please cancel my subscription before the next charge.",
];
const FOLLOW_UPS: [&str; 4] = [
    "Any update on this?",
    "Hello? Still waiting for an answer.",
    "Please reply, it's urgent.",
    "thanks",
];

#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    kind: Kind,
    safe_mode: bool,
    channel: &'static str,
    /// `(message id, text)` in the order the customer wrote them.
    messages: Vec<(String, String)>,
    /// The order the webhooks are delivered in (indexes into `messages`).
    delivery: Vec<usize>,
}

impl Conversation {
    fn body(&self, index: usize) -> String {
        let (message_id, text) = &self.messages[index];
        json!({"ticket_id": self.id, "message_id": message_id, "channel": self.channel,
            "customer_name": "Alex", "text": text})
        .to_string()
    }
    fn event_key(&self, index: usize) -> String {
        format!("evt:rp:{}:{}", self.id, self.messages[index].0)
    }
}

/// Builds the conversations (and their tickets and orders in the fake Richpanel).
fn plan(config: &SoakConfig, rng: &mut Rng, rp: &FakeRichpanel) -> Vec<Conversation> {
    let mut conversations = Vec::new();
    let mut events = 0;
    while events < config.events {
        let index = conversations.len();
        let kind = match rng.below(10) {
            0..=3 => Kind::OrderStatus,
            4..=5 => Kind::Intake,
            6..=7 => Kind::Tier0,
            _ => Kind::RouteOnly,
        };
        let number = 20_000 + index;
        let first = match kind {
            Kind::OrderStatus => {
                ORDER_STATUS[rng.below(ORDER_STATUS.len())].replace("{n}", &number.to_string())
            }
            Kind::Intake => INTAKE[rng.below(INTAKE.len())].to_owned(),
            Kind::Tier0 => TIER0[rng.below(TIER0.len())].to_owned(),
            Kind::RouteOnly => ROUTE_ONLY[rng.below(ROUTE_ONLY.len())].to_owned(),
        };
        let count = (1 + rng.below(4)).min(config.events - events);
        let id = format!("soak_{index:05}");
        let channel = if rng.chance(0.2) { "livechat" } else { "email" };
        rp.insert_ticket(
            json!({"id": id, "status": "OPEN", "tags": [], "comments": [],
            "via": {"channel": channel}}),
        );
        let mut messages = Vec::new();
        for message in 0..count {
            let text = if message == 0 {
                first.clone()
            } else {
                FOLLOW_UPS[rng.below(FOLLOW_UPS.len())].to_owned()
            };
            let message_id = rp.add_customer_message(&id, &text);
            messages.push((message_id, text));
        }
        if kind == Kind::OrderStatus {
            let order_id = format!("51000{number:08}");
            rp.insert_order("shop", json!({"orderId": order_id, "orderDbKey": format!("gid://shopify/Order/{order_id}"),
                "orderName": format!("#{number}"), "status": "confirmed", "fulfillmentStatus": "fulfilled",
                "financialStatus": "paid", "amount": 42.0, "currency": "USD", "createdAt": "2026-11-16T10:00:00Z",
                "statusUrl": format!("https://shop.example.com/orders/{number}/status"), "shippingMethod": "Standard Shipping",
                "fulfillment": [{"id": format!("f{number}"), "status": "in_transit", "createdAt": "2026-11-17T10:00:00Z",
                    "tracking": [{"trackingNumber": format!("1Z999AA1{number:010}"), "trackingCompany": "UPS",
                        "trackingUrl": format!("https://carrier.example/track/1Z999AA1{number:010}")}]}]}));
            rp.link_order(&id, "shop", &order_id);
        }
        let mut delivery: Vec<usize> = (0..count).collect();
        if count > 1 && rng.chance(0.15) {
            rng.shuffle(&mut delivery);
        }
        let safe_mode = matches!(kind, Kind::OrderStatus | Kind::Intake) && rng.chance(0.05);
        events += count;
        conversations.push(Conversation {
            id,
            kind,
            safe_mode,
            channel,
            messages,
            delivery,
        });
    }
    conversations
}

/// `mw serve` as a child process, restartable.
struct Service {
    mw: PathBuf,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    url: RwLock<String>,
}

impl Service {
    fn spawn(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("serve.log"))
            .unwrap();
        let mut command = Command::new(&self.mw);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MW_DATA_DIR", &self.data_dir)
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start {}: {error}", self.mw.display());
        });
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "mw serve did not print its address; see {}",
                    self.data_dir.join("serve.log").display()
                )
            })
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        *self.url.write().unwrap() = url;
        *self.child.lock().unwrap() = Some(child);
    }

    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn terminate(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        self.url.read().unwrap().clone()
    }

    fn set_flag(&self, key: &str, value: &str) {
        let status = Command::new(&self.mw)
            .args(["flags", "set", key, value])
            .env("MW_DATA_DIR", &self.data_dir)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "mw flags set {key} {value} failed");
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.join("mw.sqlite3")).unwrap()
    }

    fn depth(&self) -> usize {
        // The server may be mid-restart; a busy database just means "not yet".
        self.db()
            .query_row("SELECT COUNT(*) FROM queue", [], |row| row.get::<_, i64>(0))
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// Delivers one webhook until it is acknowledged; `false` if it never was.
async fn deliver(
    client: &reqwest::Client,
    service: &Service,
    body: &str,
    sent: &AtomicUsize,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        sent.fetch_add(1, Ordering::Relaxed);
        let response = client
            .post(format!("{}/webhook/richpanel", service.url()))
            .header("x-richpanel-webhook-token", TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) if response.status().is_client_error() && response.status() != 429 => {
                panic!("webhook answered {}: {body}", response.status())
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

/// Delivers each conversation's messages in its delivery order, each one twice at
/// once, `senders` conversations at a time.
async fn deliver_all(
    client: &reqwest::Client,
    service: &Arc<Service>,
    conversations: &[Conversation],
    senders: usize,
    sent: &Arc<AtomicUsize>,
    accepted: &Arc<Mutex<BTreeSet<String>>>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let conversations = Arc::new(conversations.to_vec());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders.max(1) {
        let (client, service, sent, accepted, next, conversations) = (
            client.clone(),
            service.clone(),
            sent.clone(),
            accepted.clone(),
            next.clone(),
            conversations.clone(),
        );
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(conversation) = conversations.get(index) else {
                    break;
                };
                for &message in &conversation.delivery {
                    let body = conversation.body(message);
                    let (first, second) = tokio::join!(
                        deliver(&client, &service, &body, &sent),
                        deliver(&client, &service, &body, &sent)
                    );
                    if first || second {
                        accepted
                            .lock()
                            .unwrap()
                            .insert(conversation.event_key(message));
                    }
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
}

/// Kills `mw serve` each time the work done passes the next kill point (a random
/// share of all events), a random moment later, and restarts it.
async fn killer(
    service: Arc<Service>,
    mut points: Vec<usize>,
    accepted: Arc<Mutex<BTreeSet<String>>>,
    kills: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    points.sort_unstable();
    points.reverse();
    while let Some(&point) = points.last() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let accepted_now = accepted.lock().unwrap().len();
        let depth = service.depth();
        let done = accepted_now.saturating_sub(depth);
        if depth != usize::MAX && done >= point {
            points.pop();
            tokio::time::sleep(Duration::from_millis(rng.below(250) as u64)).await;
            let service = service.clone();
            tokio::task::spawn_blocking(move || {
                service.kill();
                service.spawn();
            })
            .await
            .unwrap();
            kills.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_drained(service: &Service, deadline: Instant) {
    loop {
        if service.depth() == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not drain in time; see {}",
            service.data_dir.join("serve.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every row of `sql`, read with `row`.
fn query<T>(
    db: &rusqlite::Connection,
    sql: &str,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], row)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn query_strings(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
    query(db, sql, |row| row.get(0))
}

/// Runs the soak and returns what the oracle counted.
pub async fn run(config: &SoakConfig) -> SoakReport {
    let started = Instant::now();
    let deadline = started + config.limit;
    let mut rng = Rng(config.seed);
    let rp = FakeRichpanel::start(RP_KEY).await.unwrap();
    let bot = rp.add_user("Support Bot", "bot@shop.example");
    let ai = FakeOpenAi::start(AI_KEY).await.unwrap();
    // The fake model answers like the embedded rules; the verifier allows.
    ai.set_responder(crate::rules_model(
        Engine::embedded().unwrap(),
        Arc::new(AtomicBool::new(true)),
    ));
    let conversations = plan(config, &mut rng, &rp);

    // Timeouts are short so that an injected slow answer times out quickly.
    let rp_timeout = Duration::from_millis(1000);
    let ai_timeout = Duration::from_millis(2000);
    rp.set_chaos(Some(Chaos::new(
        config.fault_rate,
        vec![
            Fault::RateLimited(RetryAfter::Seconds(0)),
            Fault::RateLimited(RetryAfter::Absent),
            Fault::Status {
                status: 500,
                body: r#"{"error":"Internal Server Error"}"#.into(),
            },
            Fault::Status {
                status: 503,
                body: "<html>Service Unavailable</html>".into(),
            },
            Fault::Delay(rp_timeout + Duration::from_millis(500)),
            Fault::Reset,
            Fault::ApplyThenReset,
            Fault::ApplyThenDelay(rp_timeout + Duration::from_millis(500)),
            Fault::NonJson,
            Fault::MissingFields,
        ],
        config.seed ^ 0x5151,
    )));
    ai.set_chaos(Some(Chaos::new(
        config.fault_rate,
        vec![
            FakeReply::error(
                429,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached",
                Some(0),
            ),
            FakeReply::error(500, "server_error", None, "The server had an error", None),
            FakeReply::error(503, "server_error", None, "Service unavailable", None),
            FakeReply::Delay(
                ai_timeout + Duration::from_millis(500),
                Box::new(FakeReply::RawContent("{}".into())),
            ),
            FakeReply::Reset,
            FakeReply::NonJson,
            FakeReply::RawContent("{\"schema_version\": \"mw_decision_v1\", ".into()),
            FakeReply::Truncated("{\"schema_version\": \"mw_dec".into()),
            FakeReply::Refusal("I can't help with that.".into()),
        ],
        config.seed ^ 0xa1a1,
    )));

    let data_dir = crate::tempdir("soak");
    let env: Vec<(String, String)> = [
        ("MW_WEBHOOK_TOKENS", TOKEN.to_owned()),
        ("MW_RATE_LIMIT_PER_SEC", "0".to_owned()),
        ("MW_RETRY_DELAY_MS", "100".to_owned()),
        ("MW_WORKERS", config.workers.to_string()),
        ("MW_FLAGS_CACHE_SECS", "1".to_owned()),
        ("MW_LOG", "warn".to_owned()),
        ("MW_LOG_FORMAT", "json".to_owned()),
        ("MW_RICHPANEL_BASE_URL", rp.base_url()),
        ("MW_RICHPANEL_API_KEY", RP_KEY.to_owned()),
        ("MW_RICHPANEL_BOT_AUTHOR_ID", bot.clone()),
        ("MW_RICHPANEL_RATE_LIMIT", "100000".to_owned()),
        ("MW_RICHPANEL_RATE_WINDOW_SECS", "1".to_owned()),
        (
            "MW_RICHPANEL_TIMEOUT_SECS",
            rp_timeout.as_secs_f64().to_string(),
        ),
        ("MW_OPENAI_BASE_URL", ai.base_url()),
        ("MW_OPENAI_API_KEY", AI_KEY.to_owned()),
        ("MW_OPENAI_MODEL", "gpt-soak".to_owned()),
        (
            "MW_OPENAI_TIMEOUT_SECS",
            ai_timeout.as_secs_f64().to_string(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let service = Arc::new(Service {
        mw: config.mw.clone(),
        data_dir: data_dir.clone(),
        env,
        child: Mutex::new(None),
        url: RwLock::new(String::new()),
    });
    {
        let service = service.clone();
        tokio::task::spawn_blocking(move || service.spawn())
            .await
            .unwrap();
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let kills = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (normal, safe): (Vec<Conversation>, Vec<Conversation>) =
        conversations.iter().cloned().partition(|c| !c.safe_mode);
    let normal_events: usize = normal.iter().map(|c| c.messages.len()).sum();
    // Kill points: random shares (3–90 %) of the events delivered outside safe mode.
    let points: Vec<usize> = (0..config.kills)
        .map(|_| normal_events * (3 + rng.below(88)) / 100)
        .collect();
    let killing = tokio::spawn(killer(
        service.clone(),
        points,
        accepted.clone(),
        kills.clone(),
        stop.clone(),
        rng.clone(),
    ));

    // Phase 1: everything but the safe-mode conversations, then some messages again,
    // out of order, while the backlog is still being worked.
    deliver_all(&client, &service, &normal, config.senders, &sent, &accepted).await;
    let mut again = Vec::new();
    for conversation in &normal {
        if rng.chance(0.1) {
            let mut conversation = conversation.clone();
            conversation.delivery = vec![rng.below(conversation.messages.len())];
            again.push(conversation);
        }
    }
    rng.shuffle(&mut again);
    deliver_all(&client, &service, &again, config.senders, &sent, &accepted).await;
    wait_drained(&service, deadline).await;

    // Phase 2: the kill switch on, the safe-mode conversations, then off again.
    service.set_flag("safe_mode", "true");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    deliver_all(&client, &service, &safe, config.senders, &sent, &accepted).await;
    wait_drained(&service, deadline).await;
    service.set_flag("safe_mode", "false");
    stop.store(true, Ordering::Relaxed);
    killing.await.unwrap();
    service.terminate();

    // The oracle.
    let db = service.db();
    let accepted = accepted.lock().unwrap().clone();
    let decided: BTreeSet<String> = query_strings(&db, "SELECT event_key FROM audit")
        .into_iter()
        .chain(query_strings(
            &db,
            "SELECT event_key FROM idempotency WHERE status = 'done'",
        ))
        .collect();
    let dead: BTreeSet<String> = query_strings(
        &db,
        "SELECT event_key FROM dlq WHERE last_error IS NOT NULL AND last_error != ''",
    )
    .into_iter()
    .collect();
    let processed = accepted.iter().filter(|key| decided.contains(*key)).count();
    let dead_lettered = accepted
        .iter()
        .filter(|key| !decided.contains(*key) && dead.contains(*key))
        .count();
    let lost = accepted
        .iter()
        .filter(|key| !decided.contains(*key) && !dead.contains(*key))
        .count();

    // Reply decisions per conversation: ledger keys `act:reply:{conversation}:…`.
    let mut reply_keys: BTreeMap<String, usize> = BTreeMap::new();
    for key in query_strings(&db, "SELECT key FROM ledger WHERE key LIKE 'act:reply:%'") {
        if let Some(conversation) = key
            .strip_prefix("act:reply:")
            .and_then(|rest| rest.split(':').next())
        {
            *reply_keys.entry(conversation.to_owned()).or_default() += 1;
        }
    }
    let journal = rp.journal();
    let mut replies = 0;
    let mut duplicate_replies = 0;
    let mut unsafe_automations = 0;
    let mut order_violations = 0;
    let audit: Vec<(String, String)> = query(
        &db,
        "SELECT conversation_id, event_key FROM audit ORDER BY id",
        |row| Ok((row.get(0)?, row.get(1)?)),
    );
    let mut audit_order: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (conversation, event_key) in &audit {
        audit_order.entry(conversation).or_default().push(event_key);
    }
    for conversation in &conversations {
        let comments = rp.comments_by(&conversation.id, &bot).len();
        replies += comments;
        duplicate_replies +=
            comments.saturating_sub(reply_keys.get(&conversation.id).copied().unwrap_or(0));
        if conversation.kind == Kind::Tier0 || conversation.safe_mode {
            let ticket_path = format!("/v1/tickets/{}", conversation.id);
            unsafe_automations += journal
                .iter()
                .filter(|entry| {
                    entry.method != "GET"
                        && (entry.path == format!("{ticket_path}/send-message")
                            || (entry.path == ticket_path
                                && entry.body.as_ref().is_some_and(|body| {
                                    body.get("status").is_some() || body.get("state").is_some()
                                })))
                })
                .count();
        }
        // Decided in acceptance order: positions in the delivery order must rise.
        let position: BTreeMap<String, usize> = conversation
            .delivery
            .iter()
            .enumerate()
            .map(|(position, &message)| (conversation.event_key(message), position))
            .collect();
        let mut seen = Vec::new();
        for key in audit_order
            .get(conversation.id.as_str())
            .into_iter()
            .flatten()
        {
            if dead.contains(*key) {
                continue;
            }
            if let Some(&position) = position.get(*key) {
                seen.retain(|&p| p != position);
                seen.push(position);
            }
        }
        order_violations += seen.windows(2).filter(|pair| pair[0] > pair[1]).count();
    }
    let (richpanel_requests, richpanel_faults) = rp.chaos_counts().unwrap_or_default();
    let (openai_requests, openai_faults) = ai.chaos_counts().unwrap_or_default();
    let report = SoakReport {
        conversations: conversations.len(),
        tier0_conversations: conversations
            .iter()
            .filter(|c| c.kind == Kind::Tier0)
            .count(),
        safe_mode_conversations: safe.len(),
        events: conversations.iter().map(|c| c.messages.len()).sum(),
        deliveries: sent.load(Ordering::Relaxed),
        accepted: accepted.len(),
        processed,
        dead_lettered,
        lost,
        replies,
        duplicate_replies,
        unsafe_automations,
        order_violations,
        kills: kills.load(Ordering::Relaxed),
        richpanel_requests,
        richpanel_faults,
        openai_requests,
        openai_faults,
        seconds: started.elapsed().as_secs_f64(),
    };
    rp.stop().await;
    ai.stop().await;
    if report.passed(config) {
        let _ = std::fs::remove_dir_all(&data_dir);
    } else {
        eprintln!("soak data kept in {}", data_dir.display());
    }
    report
}
