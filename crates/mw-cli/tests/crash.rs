//! Crash safety: a child `mw serve` is killed with SIGKILL at random moments while
//! 1,000 events across 100 conversations are posted, restarted, repeatedly. Then:
//! every accepted event ended processed or dead-lettered, no customer reply was
//! recorded twice, no event was decided twice. Finally SIGTERM shuts down with 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::{BTreeMap, BTreeSet};
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token";

const TEXTS: [&str; 8] = [
    "Hi, my mug arrived cracked in two pieces. Can you help me?",
    "Where is my order? I ordered last week and have no tracking yet.",
    "I would like to return the jacket, it is too small for me.",
    "Your promo code SAVE20 does not work at checkout, please help",
    "Do you have the hiking boots in size 11 wide? Thinking of buying",
    "I am filing a chargeback with my bank if this is not fixed today.",
    "Hola, quiero cancelar mi pedido por favor, lo pedí por error.",
    "thanks!",
];

fn spawn(data_dir: &Path) -> (Child, String) {
    common::spawn_serve(
        data_dir,
        &[
            ("MW_WEBHOOK_TOKENS", TOKEN),
            ("MW_RATE_LIMIT_PER_SEC", "0"),
            ("MW_RETRY_DELAY_MS", "50"),
            ("MW_WORKERS", "4"),
            ("MW_LOG", "warn"),
        ],
    )
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn events() -> Vec<(String, String)> {
    let mut events = Vec::new();
    for message in 0..10 {
        for conversation in 0..100 {
            let text = TEXTS[(conversation * 3 + message) % TEXTS.len()];
            let body = serde_json::json!({"ticket_id": format!("c{conversation:03}"), "message_id": format!("m{message:02}"),
                "channel": if conversation % 5 == 0 { "livechat" } else { "email" }, "customer_name": "Alex Doe", "text": text});
            events.push((
                format!("evt:rp:c{conversation:03}:m{message:02}"),
                body.to_string(),
            ));
        }
    }
    events
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> bool {
    let response = client
        .post(format!("{url}/webhook/richpanel"))
        .header("x-richpanel-webhook-token", TOKEN)
        .body(body.to_owned())
        .send()
        .await;
    matches!(response, Ok(response) if response.status().is_success())
}

fn query_set(db: &rusqlite::Connection, sql: &str) -> BTreeSet<String> {
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn query_counts(db: &rusqlite::Connection, sql: &str) -> BTreeMap<String, i64> {
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_never_double_replies() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let data_dir = std::env::temp_dir().join(format!("mw-crash-{}-{nanos}", std::process::id()));
    let events = events();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rng = Rng(0x6d77_c0de_1234_5678);
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut next = 0;
    let mut kills = 0;
    while kills < 6 {
        let (mut child, url) = spawn(&data_dir);
        let kill_at = Instant::now() + Duration::from_millis(150 + rng.next(900));
        while next < events.len() && Instant::now() < kill_at {
            if post(&client, &url, &events[next].1).await {
                accepted.insert(events[next].0.clone());
                next += 1;
            } else {
                break;
            }
        }
        // Let the workers run into the kill too, not only the ingress.
        tokio::time::sleep(Duration::from_millis(rng.next(200))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let (mut child, url) = spawn(&data_dir);
    while next < events.len() {
        assert!(
            post(&client, &url, &events[next].1).await,
            "the final server accepts every event"
        );
        accepted.insert(events[next].0.clone());
        next += 1;
    }
    let db_path: PathBuf = data_dir.join("mw.sqlite3");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let queued: i64 = db
            .query_row("SELECT COUNT(*) FROM queue", [], |row| row.get(0))
            .unwrap();
        if queued == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{queued} events still queued");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends mw serve with exit 0, got {status}"
    );

    let db = rusqlite::Connection::open(&db_path).unwrap();
    let done = query_set(
        &db,
        "SELECT event_key FROM idempotency WHERE status = 'done'",
    );
    let dead = query_set(&db, "SELECT event_key FROM dlq");
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|key| !done.contains(*key) && !dead.contains(*key))
        .collect();
    assert_eq!(accepted.len(), 1000);
    assert!(
        lost.is_empty(),
        "accepted but neither processed nor dead-lettered: {lost:?}"
    );
    let double_replies = query_counts(
        &db,
        "SELECT action_key, COUNT(*) FROM outbox WHERE kind = 'reply' GROUP BY action_key HAVING COUNT(*) > 1",
    );
    assert!(
        double_replies.is_empty(),
        "replies recorded twice: {double_replies:?}"
    );
    let per_conversation = query_counts(
        &db,
        "SELECT conversation_id, COUNT(*) FROM outbox WHERE kind = 'reply' GROUP BY conversation_id HAVING COUNT(*) > 1",
    );
    assert!(
        per_conversation.is_empty(),
        "more than one automated reply per conversation in 10 min: {per_conversation:?}"
    );
    let decided_twice = query_counts(
        &db,
        "SELECT event_key, COUNT(*) FROM audit WHERE decided = 1 GROUP BY event_key HAVING COUNT(*) > 1",
    );
    assert!(
        decided_twice.is_empty(),
        "events decided twice: {decided_twice:?}"
    );
    let replies: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'reply'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        replies > 0,
        "the run must include automated replies to be meaningful"
    );
    println!(
        "kills={kills} accepted={} processed={} dead_lettered={} replies={replies}",
        accepted.len(),
        done.len(),
        dead.len()
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
