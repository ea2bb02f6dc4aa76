//! PII gate: conversations full of synthetic personal data go through a child
//! `mw serve` (the real binary, logs at `trace` in JSON, stdout and stderr captured
//! to a file), once in dry-run mode (payload text, outbox) and once against the
//! fake Richpanel and the fake OpenAI; then `mw eval --json` and `--write-baseline`
//! run on both golden files. Every artifact is collected and searched for every
//! email address, phone number, card number, street address, order number and
//! tracking number taken from the inputs; a hit fails the test with the artifact's
//! name and the value.
//!
//! # What may appear where (SPEC §4, §6, §8)
//!
//! * **A customer reply** (a dry-run outbox `reply` entry, a Richpanel
//!   `send-message` body) is a rendered template shown to the customer in their own
//!   conversation. It may carry the *linked order's* own details: its display name
//!   (`#10544`), tracking number, tracking and status links. It must never carry
//!   anything else from the inputs: no email, no phone number, no card number, no
//!   street address, no other order's number, and not the store's internal order
//!   id (`5100000010544`) when the order has a display name.
//! * **Everything else** — every log line, every audit record (`audit` table and
//!   `mw audit`), every non-reply outbox entry, every other table of the database,
//!   `mw dlq list` and the dead letters' errors, every tag and assignment sent to
//!   Richpanel, every request the fake OpenAI received (prompts leave the process),
//!   `mw eval --json` and baseline files — carries none of those values at all,
//!   tracking numbers and order numbers included.
//! * Two stores hold the raw event by necessity and are exempt: the `payload` of
//!   the `queue` and of the `dlq` table (the webhook body, kept so the event can be
//!   processed or redriven; `mw dlq list` never shows it). Requests mw sends *to*
//!   Richpanel to read a ticket or an order name that ticket or order in their
//!   path; they are Richpanel's own data and are not an artifact of mw.
//!
//! The set-up needs nothing beyond what `scripts/test.sh` provides: the fakes run
//! in this process and the child binary is `CARGO_BIN_EXE_mw`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mw_cli::eval::parse_golden;
use mw_cli::{ClassifierSource, Engine};
use mw_core::ModelOutput;
use mw_fakes::{FakeOpenAi, FakeReply, FakeRichpanel, Fault, RouteMatch};
use regex::Regex;
use serde_json::{Value, json};

const TOKEN: &str = "pii-gate-token";
const RP_KEY: &str = "rp-pii-key";
const AI_KEY: &str = "sk-pii-key";

/// One piece of personal data from the inputs.
#[derive(Debug, Clone)]
struct Pii {
    kind: &'static str,
    value: String,
    /// A digit-only form of another value (not written so in the inputs).
    derived: bool,
}

fn pii(kind: &'static str, value: &str) -> Pii {
    Pii {
        kind,
        value: value.to_owned(),
        derived: false,
    }
}

/// The synthetic personal data of the flows below, in every form the inputs use.
fn flow_pii() -> Vec<Pii> {
    let mut all = vec![
        pii("email", "jane.doe@example.com"),
        pii("email", "maria.lopez+orders@example.org"),
        pii("email", "ana.gomez@example.com"),
        pii("email", "tom.becker@example.net"),
        pii("phone", "(415) 555-0142"),
        pii("phone", "+1 212 555 0199"),
        pii("phone", "415.555.0199"),
        pii("phone", "+44 20 7946 0958"),
        pii("phone", "+34 612 345 678"),
        pii("phone", "212-555-0123"),
        pii("card", "4111 1111 1111 1111"),
        pii("card", "4111-1111-1111-1111"),
        pii("card", "4111111111111111"),
        pii("card", "5500 0000 0000 0004"),
        pii("card", "3782 822463 10005"),
        pii("address", "1234 Maple Street"),
        pii("address", "Maple Street"),
        pii("address", "77 Elm Road"),
        pii("address", "4821 Oak Hollow Drive"),
        pii("address", "Calle Mayor 12"),
        pii("order", "5100000010544"),
        pii("order", "5100000010545"),
        pii("order", "5100000010546"),
        pii("order", "#10544"),
        pii("order", "#10545"),
        pii("order", "#10546"),
        pii("order", "10544"),
        pii("order", "10545"),
        pii("order", "10546"),
        pii("tracking", "1Z999AA10123456784"),
        pii("tracking", "9400111899562537866361"),
    ];
    // Digit-only forms of phones and cards.
    let digit_forms: Vec<Pii> = all
        .iter()
        .filter(|p| p.kind == "phone" || p.kind == "card")
        .map(|p| Pii {
            kind: p.kind,
            value: p.value.chars().filter(char::is_ascii_digit).collect(),
            derived: true,
        })
        .filter(|p| !all.iter().any(|known| known.value == p.value))
        .collect();
    all.extend(digit_forms);
    all
}

/// What a reply in `conversation` may show: its linked order's display name and
/// tracking number (see [`order_of`]).
fn reply_may_show(conversation: &str) -> Vec<String> {
    let Some(order) = order_of(conversation) else {
        return Vec::new();
    };
    let name = order["orderName"].as_str().unwrap_or_default().to_owned();
    let mut shown = vec![name.trim_start_matches('#').to_owned(), name];
    for fulfillment in order["fulfillment"].as_array().into_iter().flatten() {
        for tracking in fulfillment["tracking"].as_array().into_iter().flatten() {
            shown.extend(tracking["trackingNumber"].as_str().map(str::to_owned));
        }
    }
    shown
}

/// A match of `value` that is not part of a longer number or word.
fn find(haystack: &str, value: &str) -> bool {
    let escaped = regex::escape(value);
    let pattern = if value.chars().all(|c| c.is_ascii_digit()) {
        format!(r"(?:^|[^0-9]){escaped}(?:[^0-9]|$)")
    } else {
        format!(r"(?i){escaped}")
    };
    Regex::new(&pattern).unwrap().is_match(haystack)
}

/// Records a finding for every value of `pii` in `text`, except `allowed` ones.
fn scan(artifact: &str, text: &str, pii: &[Pii], allowed: &[String], findings: &mut Vec<String>) {
    for item in pii {
        if allowed.contains(&item.value) {
            continue;
        }
        if find(text, &item.value) {
            findings.push(format!("{artifact}: {} {:?}", item.kind, item.value));
        }
    }
}

/// A `mw serve` child whose stdout and stderr go to `log`.
struct Serve {
    child: Child,
    url: String,
    data_dir: PathBuf,
    log: PathBuf,
}

fn spawn_serve(data_dir: &Path, log: &Path, env: &[(&str, String)]) -> Serve {
    let log_file = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("MW_DATA_DIR", data_dir)
        .env("MW_WEBHOOK_TOKENS", TOKEN)
        .env("MW_LOG", "trace")
        .env("MW_LOG_FORMAT", "json")
        .env("MW_RATE_LIMIT_PER_SEC", "0")
        .env("MW_RETRY_DELAY_MS", "50")
        .env("MW_MAX_RECEIVES", "2")
        .env("MW_FLAGS_CACHE_SECS", "1")
        .env_remove("MW_RICHPANEL_API_KEY")
        .env_remove("MW_OPENAI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(log_file);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    // The rest of stdout goes to the log file too.
    let mut copy = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    copy.write_all(line.as_bytes()).unwrap();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = writeln!(copy, "{line}");
        }
    });
    Serve {
        child,
        url,
        data_dir: data_dir.to_owned(),
        log: log.to_owned(),
    }
}

impl Serve {
    async fn post(&self, body: &Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/webhook/richpanel", self.url))
            .header("x-richpanel-webhook-token", TOKEN)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{body}");
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.join("mw.sqlite3")).unwrap()
    }

    /// Waits until the queue is empty and `events` events were decided or
    /// dead-lettered.
    async fn wait(&self, events: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let db = self.db();
            let count = |sql: &str| -> i64 { db.query_row(sql, [], |row| row.get(0)).unwrap() };
            let queued = count("SELECT COUNT(*) FROM queue");
            let finished = count("SELECT COUNT(DISTINCT event_key) FROM audit")
                + count("SELECT COUNT(*) FROM dlq");
            if queued == 0 && finished >= events {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queued} queued, {finished}/{events} finished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit (logs flushed).
    fn stop(mut self) -> (PathBuf, PathBuf) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "mw serve exited with {status}");
        // Let the stdout copier finish.
        std::thread::sleep(Duration::from_millis(200));
        (self.data_dir, self.log)
    }
}

/// Runs `mw` on a data directory; returns stdout and stderr.
fn mw(args: &[&str], data_dir: &Path) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mw"))
        .args(args)
        .env("MW_DATA_DIR", data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mw {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every row of every table, as `(artifact name, text, the conversation when the
/// row is a customer reply)`; the queue's and dead letters' payloads are exempt
/// (see the module doc).
fn database_rows(db: &rusqlite::Connection) -> Vec<(String, String, Option<String>)> {
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut rows = Vec::new();
    for table in tables {
        let mut statement = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns: Vec<String> = statement
            .column_names()
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        let mut query = statement.query([]).unwrap();
        let mut index = 0;
        while let Some(row) = query.next().unwrap() {
            let mut cells = Vec::new();
            let mut reply = false;
            let mut conversation = String::new();
            for (column, name) in columns.iter().enumerate() {
                if name == "payload" && (table == "queue" || table == "dlq") {
                    continue;
                }
                let cell = match row.get_ref(column).unwrap() {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(n) => n.to_string(),
                    rusqlite::types::ValueRef::Text(text)
                    | rusqlite::types::ValueRef::Blob(text) => {
                        String::from_utf8_lossy(text).into_owned()
                    }
                };
                if table == "outbox" && name == "kind" && cell == "reply" {
                    reply = true;
                }
                if name == "conversation_id" {
                    conversation = cell.clone();
                }
                cells.push(format!("{name}={cell}"));
            }
            rows.push((
                format!("table {table} row {index}"),
                cells.join(" | "),
                reply.then_some(conversation),
            ));
            index += 1;
        }
    }
    rows
}

/// Scans what a finished `mw serve` left behind: its log, every table, `mw audit`
/// for each conversation, `mw outbox --json`, `mw dlq list --json`.
fn scan_service(
    mode: &str,
    data_dir: &Path,
    log: &Path,
    conversations: &[&str],
    pii: &[Pii],
    findings: &mut Vec<String>,
) -> usize {
    let mut artifacts = 0;
    let log_text = std::fs::read_to_string(log).unwrap();
    let mut levels = std::collections::BTreeMap::<String, usize>::new();
    for (number, line) in log_text.lines().enumerate() {
        scan(
            &format!("[{mode}] log line {}", number + 1),
            line,
            pii,
            &[],
            findings,
        );
        artifacts += 1;
        if let Ok(entry) = serde_json::from_str::<Value>(line) {
            *levels
                .entry(entry["level"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    println!(
        "[{mode}] log: {} lines, by level {levels:?}",
        log_text.lines().count()
    );
    // The log really is verbose JSON, and really covers the processing.
    assert!(levels.values().sum::<usize>() + 1 >= log_text.lines().count());
    if mode == "live" {
        // The HTTP clients log at DEBUG/TRACE: the filter really is `trace`.
        assert!(
            levels.contains_key("DEBUG") || levels.contains_key("TRACE"),
            "{levels:?}"
        );
    }
    assert!(
        log_text.contains("event processed"),
        "no processing was logged"
    );
    let db = rusqlite::Connection::open(data_dir.join("mw.sqlite3")).unwrap();
    for (name, text, reply) in database_rows(&db) {
        let allowed = reply.map_or_else(Vec::new, |conversation| reply_may_show(&conversation));
        scan(&format!("[{mode}] {name}"), &text, pii, &allowed, findings);
        artifacts += 1;
    }
    // Every read-only command an operator runs, text and JSON.
    let mut commands: Vec<Vec<&str>> = Vec::new();
    for conversation in conversations {
        commands.push(vec!["audit", conversation]);
        commands.push(vec!["audit", conversation, "--json"]);
    }
    commands.push(vec!["dlq", "list", "--json"]);
    commands.push(vec!["dlq", "list"]);
    for args in &commands {
        let (stdout, stderr) = mw(args, data_dir);
        let text = format!("{stdout}\n{stderr}");
        scan(
            &format!("[{mode}] mw {}", args.join(" ")),
            &text,
            pii,
            &[],
            findings,
        );
        artifacts += 1;
    }
    let (outbox, stderr) = mw(&["outbox", "--json"], data_dir);
    scan(
        &format!("[{mode}] mw outbox (stderr)"),
        &stderr,
        pii,
        &[],
        findings,
    );
    let entries: Value = serde_json::from_str(&outbox).unwrap();
    for (index, entry) in entries.as_array().into_iter().flatten().enumerate() {
        let allowed = if entry["kind"] == "reply" {
            reply_may_show(entry["conversation_id"].as_str().unwrap_or_default())
        } else {
            Vec::new()
        };
        scan(
            &format!("[{mode}] mw outbox --json entry {index}"),
            &entry.to_string(),
            pii,
            &allowed,
            findings,
        );
        artifacts += 1;
    }
    artifacts
}

fn full_order(number: u32, tracking: Option<(&str, &str)>) -> Value {
    let mut order = json!({
        "orderId": format!("51000000{number}"), "orderDbKey": format!("gid://shopify/Order/51000000{number}"),
        "orderName": format!("#{number}"), "status": "confirmed",
        "fulfillmentStatus": if tracking.is_some() { "fulfilled" } else { "unfulfilled" },
        "financialStatus": "paid", "amount": 58.0, "currency": "USD",
        "createdAt": chrono::Utc::now().to_rfc3339(),
        "statusUrl": format!("https://shop.example.com/account/orders/{number}/status"),
        "shippingMethod": "Standard Shipping", "fulfillment": []
    });
    if let Some((number, url)) = tracking {
        order["fulfillment"] = json!([{"id": "f1", "status": "in_transit",
            "createdAt": chrono::Utc::now().to_rfc3339(),
            "tracking": [{"trackingNumber": number, "trackingCompany": "UPS", "trackingUrl": url}]}]);
    }
    order
}

const TRACKING_URL: &str = "https://www.ups.com/track?tracknum=1Z999AA10123456784";

/// The customer messages of both flows: (conversation, channel, name, email, text).
fn messages() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "pii_status",
            "email",
            "Jane Doe",
            "jane.doe@example.com",
            "Hi, where is my order #10544 (full number 5100000010544)? Tracking 1Z999AA10123456784 hasn't moved. \
             You can reach me at jane.doe@example.com or (415) 555-0142, or +1 212 555 0199 after 5pm.",
        ),
        (
            "pii_address",
            "email",
            "Tom Becker",
            "tom.becker@example.net",
            "Please change the shipping address on order 10545 to 1234 Maple Street, Springfield, IL 62704 \
             (not 77 Elm Road). Call me at 415.555.0199 or +44 20 7946 0958 if anything is unclear.",
        ),
        (
            "pii_billing",
            "livechat",
            "María López",
            "maria.lopez+orders@example.org",
            "You charged my card 4111 1111 1111 1111 twice for one order, and my other card 5500 0000 0000 0004 \
             was declined. The double charge shows as 4111-1111-1111-1111 on my statement. Amex 3782 822463 10005 \
             was never used. Email me at maria.lopez+orders@example.org",
        ),
        (
            "pii_tier0",
            "email",
            "Ana Gómez",
            "ana.gomez@example.com",
            "I already filed a chargeback for card 4111111111111111 and my lawyer will call you from 212-555-0123. \
             Ship nothing to 4821 Oak Hollow Drive, Austin. Pedido #10546.",
        ),
        (
            "pii_spanish",
            "email",
            "Ana Gómez",
            "ana.gomez@example.com",
            "Hola, mi pedido #10546 no llega. Vivo en Calle Mayor 12, Madrid. Mi teléfono es +34 612 345 678 y \
             mi correo ana.gomez@example.com. El número de seguimiento 9400111899562537866361 no funciona.",
        ),
    ]
}

fn order_of(conversation: &str) -> Option<Value> {
    match conversation {
        "pii_status" => Some(full_order(
            10544,
            Some(("1Z999AA10123456784", TRACKING_URL)),
        )),
        "pii_address" => Some(full_order(10545, None)),
        "pii_spanish" => Some(full_order(
            10546,
            Some((
                "9400111899562537866361",
                "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899562537866361",
            )),
        )),
        _ => None,
    }
}

fn conversation_ids() -> Vec<&'static str> {
    let mut ids: Vec<&str> = messages().iter().map(|m| m.0).collect();
    ids.push("pii_dead");
    ids
}

async fn dry_run_flow(pii: &[Pii], findings: &mut Vec<String>) -> usize {
    let data_dir = common::temp_path("pii-dry");
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = data_dir.join("serve.log");
    let serve = spawn_serve(&data_dir, &log, &[]);
    for (index, (id, channel, name, email, text)) in messages().into_iter().enumerate() {
        let mut body = json!({"ticket_id": id, "message_id": format!("m{index}"), "channel": channel,
            "customer_name": name, "customer_email": email, "text": text});
        if let Some(order) = order_of(id) {
            body["order"] = order;
        }
        serve.post(&body).await;
    }
    // No text and no conversation file: fails until it is dead-lettered.
    serve
        .post(
            &json!({"ticket_id": "pii_dead", "message_id": "m9", "channel": "email",
            "customer_name": "Jane Doe", "customer_email": "jane.doe@example.com",
            "customer": {"email": "jane.doe@example.com", "name": "Jane Doe"}}),
        )
        .await;
    serve.wait(6).await;
    let (data_dir, log) = serve.stop();
    let db = rusqlite::Connection::open(data_dir.join("mw.sqlite3")).unwrap();
    let replies: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'reply'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let dead: i64 = db
        .query_row("SELECT COUNT(*) FROM dlq", [], |row| row.get(0))
        .unwrap();
    assert!(replies >= 2, "the dry run must include replies ({replies})");
    assert_eq!(dead, 1, "one event is dead-lettered");
    let artifacts = scan_service(
        "dry-run",
        &data_dir,
        &log,
        &conversation_ids(),
        pii,
        findings,
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    artifacts
}

async fn live_flow(pii: &[Pii], findings: &mut Vec<String>) -> usize {
    let rp = FakeRichpanel::start(RP_KEY).await.unwrap();
    let bot = rp.add_user("Support Bot", "bot@shop.example");
    let ai = FakeOpenAi::start(AI_KEY).await.unwrap();
    let engine = Engine::embedded().unwrap();
    // The fake model classifies like the rules, and copies what it was shown into
    // its notes (a model that echoes its input must not leak either).
    ai.set_responder(move |request| {
        match request["response_format"]["json_schema"]["name"].as_str() {
            Some("mw_decision_v1") => {
                let text = mw_adapters::openai::customer_message(request).unwrap_or_default();
                match engine.classify(text, &ClassifierSource::Rules).output {
                    ModelOutput::Json(mut value) => {
                        value["notes_for_agent"] =
                            json!(text.chars().take(400).collect::<String>());
                        FakeReply::Content(value)
                    }
                    ModelOutput::Failed(_) => FakeReply::RawContent("{}".into()),
                }
            }
            _ => FakeReply::Content(json!({
                "schema_version": "mw_tier2_verifier_v1", "allow_tier2": true, "confidence": 0.95,
                "downgrade_to_tier": "TIER_1_SAFE_ASSIST", "reason_code": "OK", "notes": ""})),
        }
    });
    for (id, channel, name, email, text) in messages() {
        rp.insert_ticket(
            json!({"id": id, "status": "OPEN", "tags": [], "comments": [],
            "customer": {"name": name, "email": email, "phone": "+1 212 555 0199"},
            "via": {"channel": channel, "source": {"from": {"address": email}}}}),
        );
        rp.add_customer_message(id, text);
        if let Some(order) = order_of(id) {
            let order_id = order["orderId"].as_str().unwrap().to_owned();
            rp.insert_order("shop", order);
            rp.link_order(id, "shop", &order_id);
        }
    }
    // A ticket Richpanel cannot serve (its error body full of personal data):
    // dead-lettered after the retries.
    rp.insert_email_ticket(
        "pii_dead",
        "jane.doe@example.com",
        "Where is #10544? (415) 555-0142",
    );
    rp.fault(
        RouteMatch::new(http::Method::GET, "/v1/tickets/pii_dead"),
        Fault::Status {
            status: 503,
            body: json!({"error": "ticket of jane.doe@example.com, card 4111 1111 1111 1111, is locked"})
                .to_string(),
        },
        50,
    );
    let data_dir = common::temp_path("pii-live");
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = data_dir.join("serve.log");
    let serve = spawn_serve(
        &data_dir,
        &log,
        &[
            ("MW_RICHPANEL_BASE_URL", rp.base_url()),
            ("MW_RICHPANEL_API_KEY", RP_KEY.into()),
            ("MW_RICHPANEL_BOT_AUTHOR_ID", bot.clone()),
            ("MW_RICHPANEL_RATE_LIMIT", "1000".into()),
            ("MW_RICHPANEL_RATE_WINDOW_SECS", "1".into()),
            ("MW_RICHPANEL_TIMEOUT_SECS", "2".into()),
            ("MW_OPENAI_BASE_URL", ai.base_url()),
            ("MW_OPENAI_API_KEY", AI_KEY.into()),
            ("MW_OPENAI_MODEL", "gpt-test".into()),
        ],
    );
    for id in conversation_ids() {
        serve
            .post(&json!({"ticket_id": id, "trigger": "customer_message"}))
            .await;
    }
    serve.wait(6).await;
    let (data_dir, log) = serve.stop();
    let dead: i64 = rusqlite::Connection::open(data_dir.join("mw.sqlite3"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM dlq", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        dead, 1,
        "the ticket Richpanel cannot serve is dead-lettered"
    );
    let mut artifacts = scan_service("live", &data_dir, &log, &conversation_ids(), pii, findings);

    // What mw sent to Richpanel: replies may show the linked order; tags and
    // ticket updates nothing. Reads name their ticket or order in the path.
    let mut replies = 0;
    for entry in rp.journal() {
        if entry.method == "GET" {
            continue;
        }
        let reply = entry.path.ends_with("/send-message");
        replies += usize::from(reply && entry.status == 200);
        let allowed = if reply {
            let conversation = entry
                .path
                .trim_start_matches("/v1/tickets/")
                .trim_end_matches("/send-message");
            reply_may_show(conversation)
        } else {
            Vec::new()
        };
        let text = format!("{} {}", entry.path, entry.raw_body);
        scan(
            &format!("[live] richpanel {} {}", entry.method, entry.path),
            &text,
            pii,
            &allowed,
            findings,
        );
        artifacts += 1;
    }
    assert!(
        replies >= 2,
        "the live run must include replies ({replies})"
    );
    // Prompts leave the process.
    let requests = ai.requests();
    assert!(requests.len() >= 5, "{} model requests", requests.len());
    for (index, request) in requests.iter().enumerate() {
        scan(
            &format!("[live] openai request {index}"),
            &request.to_string(),
            pii,
            &[],
            findings,
        );
        artifacts += 1;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    rp.stop().await;
    ai.stop().await;
    artifacts
}

/// Every piece of personal data in a golden file: emails, phone numbers, card
/// numbers, street addresses in the texts, and the linked orders' ids, names and
/// tracking numbers.
fn golden_pii(text: &str) -> Vec<Pii> {
    let lines = parse_golden(text).unwrap();
    let patterns = [
        ("email", r"(?i)[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}"),
        ("phone", r"\+?\(?\d{1,4}\)?(?:[\s.-]?\(?\d{2,4}\)?){2,4}"),
        ("card", r"\b(?:\d[ -]?){12,18}\d\b"),
        (
            "address",
            r"(?i)\b\d{1,6}\s+(?:[a-z]+\s+){1,3}(?:street|st|avenue|ave|road|rd|drive|dr|lane|ln|boulevard|blvd|way|court|ct)\b",
        ),
        (
            "address",
            r"(?i)\b(?:calle|avenida|av\.)\s+[\p{L} ]{2,30}\s\d{1,5}\b",
        ),
        ("order", r"#\d{4,}"),
    ];
    let compiled: Vec<(&str, Regex)> = patterns
        .iter()
        .map(|(kind, pattern)| (*kind, Regex::new(pattern).unwrap()))
        .collect();
    let mut found = Vec::new();
    for line in &lines {
        for (kind, regex) in &compiled {
            for m in regex.find_iter(&line.text) {
                let value = m.as_str().trim().to_owned();
                let digits = value.chars().filter(char::is_ascii_digit).count();
                // Phone numbers have 10+ digits (dates and amounts are not PII).
                if *kind == "phone" && !(10..=15).contains(&digits) {
                    continue;
                }
                if *kind == "card" && digits < 13 {
                    continue;
                }
                found.push(Pii {
                    kind,
                    value,
                    derived: false,
                });
            }
        }
        if let Some(order) = &line.order {
            let order = serde_json::to_value(order).unwrap();
            for key in ["orderId", "orderName"] {
                if let Some(value) = order[key].as_str() {
                    found.push(pii("order", value));
                }
            }
            for fulfillment in order["fulfillment"].as_array().into_iter().flatten() {
                for tracking in fulfillment["tracking"].as_array().into_iter().flatten() {
                    if let Some(number) = tracking["trackingNumber"].as_str() {
                        found.push(pii("tracking", number));
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.value.cmp(&b.value));
    found.dedup_by(|a, b| a.value == b.value);
    found
}

fn eval_flow(findings: &mut Vec<String>) -> (usize, usize) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = common::temp_path("pii-eval");
    std::fs::create_dir_all(&dir).unwrap();
    let mut artifacts = 0;
    let mut values = 0;
    for file in ["golden_v1.jsonl", "adversarial_v1.jsonl"] {
        let path = root.join("golden").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let pii = golden_pii(&text);
        assert!(
            pii.len() > 10 || file != "golden_v1.jsonl",
            "{} values",
            pii.len()
        );
        values += pii.len();
        for classifier in ["rules", "recorded"] {
            let baseline = dir.join(format!("{file}.{classifier}.baseline.json"));
            let output = Command::new(env!("CARGO_BIN_EXE_mw"))
                .args([
                    "eval",
                    path.to_str().unwrap(),
                    "--classifier",
                    classifier,
                    "--json",
                ])
                .arg("--write-baseline")
                .arg(&baseline)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "mw eval {file} --classifier {classifier} failed"
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stdout.contains("\"hard_gates_passed\": true"));
            scan(
                &format!("mw eval {file} --classifier {classifier} --json (stdout)"),
                &stdout,
                &pii,
                &[],
                findings,
            );
            scan(
                &format!("mw eval {file} --classifier {classifier} (stderr)"),
                &stderr,
                &pii,
                &[],
                findings,
            );
            let written = std::fs::read_to_string(&baseline).unwrap();
            scan(
                &format!("baseline written by mw eval {file} --classifier {classifier}"),
                &written,
                &pii,
                &[],
                findings,
            );
            artifacts += 3;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (artifacts, values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_reaches_logs_audit_outbox_prompts_dlq_or_eval_files() {
    let pii = flow_pii();
    // The scanner finds every value in the inputs themselves.
    let inputs: String = messages()
        .iter()
        .map(|m| format!("{} {} {}\n", m.3, m.4, order_of(m.0).unwrap_or_default()))
        .collect();
    let literal: Vec<Pii> = pii.iter().filter(|p| !p.derived).cloned().collect();
    let mut seen = Vec::new();
    scan("inputs", &inputs, &literal, &[], &mut seen);
    assert_eq!(
        seen.len(),
        literal.len(),
        "the inputs must contain every value: {seen:?}"
    );
    let mut findings = Vec::new();
    let dry = dry_run_flow(&pii, &mut findings).await;
    let live = live_flow(&pii, &mut findings).await;
    let (eval, golden_values) = eval_flow(&mut findings);
    println!(
        "PII gate: {} input values; {dry} dry-run artifacts, {live} live artifacts, \
         {eval} eval artifacts ({golden_values} golden values); {} leak(s)",
        pii.len(),
        findings.len()
    );
    assert!(
        findings.is_empty(),
        "personal data leaked:\n{}",
        findings.join("\n")
    );
}
