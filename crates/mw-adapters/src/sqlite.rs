//! The embedded back-end: one SQLite file (WAL) holding the queue and its
//! dead-letter queue, idempotency records, conversation state, reply log, action
//! ledger, audit trail, runtime flags and the dry-run outbox.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use mw_core::{
    AuditRecord, Classification, Delivery, Enqueued, EventClaim, LedgerStatus, PortError, Queue,
    ReplyHistory, RuntimeFlags, StateStore,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

/// Retention of idempotency records and ledger entries.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::days(30);
/// Retention of conversation state.
pub const CONVERSATION_TTL: chrono::Duration = chrono::Duration::days(90);
/// Retention of audit records.
pub const AUDIT_TTL: chrono::Duration = chrono::Duration::days(60);

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receipt TEXT UNIQUE,
    receive_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS queue_group ON queue(conversation_id, seq);
CREATE TABLE IF NOT EXISTS dlq (
    seq INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    event_key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    mode TEXT,
    fingerprint TEXT NOT NULL,
    classification TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversation_state (
    conversation_id TEXT PRIMARY KEY,
    last_intent TEXT,
    last_team TEXT,
    last_tier TEXT,
    tier0 INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reply_log (
    conversation_id TEXT NOT NULL,
    customer_id TEXT,
    sent_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reply_log_conversation ON reply_log(conversation_id, sent_at);
CREATE INDEX IF NOT EXISTS reply_log_customer ON reply_log(customer_id, sent_at);
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    at INTEGER NOT NULL,
    record TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    decided INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_conversation ON audit(conversation_id, id);
CREATE INDEX IF NOT EXISTS audit_event ON audit(event_key);
CREATE TABLE IF NOT EXISTS flags (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    action_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox(action_key);
";

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: survives power loss.
    Full,
    /// `synchronous=NORMAL` (WAL): survives a process crash, not power loss.
    Normal,
}

/// One connection to the embedded database.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    max_receives: u32,
    retry_delay: Duration,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(value: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(value).single().unwrap_or_default()
}

fn db_error(error: rusqlite::Error) -> PortError {
    PortError::Unavailable(format!("database: {error}"))
}

/// A DLQ entry as `mw dlq list` shows it (no payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Original queue sequence number.
    pub seq: i64,
    /// Event key.
    pub event_key: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Receives before it was dead-lettered.
    pub receive_count: u32,
    /// The last processing error.
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
}

/// Queue statistics for metrics and `mw` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    /// Messages in the queue (in flight included).
    pub depth: u64,
    /// Messages currently in flight.
    pub in_flight: u64,
    /// Age of the oldest queued message, in seconds.
    pub oldest_age_secs: u64,
    /// Messages in the dead-letter queue.
    pub dlq_depth: u64,
}

/// One dry-run outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEntry {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Conversation.
    pub conversation_id: String,
    /// Ledger key of the action.
    pub action_key: String,
    /// Action kind.
    pub kind: String,
    /// The action as JSON.
    pub action: serde_json::Value,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, PortError> {
        let conn = Connection::open(path).map_err(db_error)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(db_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            max_receives: 5,
            retry_delay: Duration::from_secs(1),
        })
    }

    /// Receives after which a message is dead-lettered (default 5).
    pub fn with_max_receives(mut self, max_receives: u32) -> SqliteStore {
        self.max_receives = max_receives.max(1);
        self
    }

    /// Base delay before a released message is visible again (× receive count).
    pub fn with_retry_delay(mut self, delay: Duration) -> SqliteStore {
        self.retry_delay = delay;
        self
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, PortError> {
        let mut conn = self.conn.lock().map_err(|_| {
            PortError::Unavailable("database connection poisoned; restart the process".into())
        })?;
        f(&mut conn).map_err(db_error)
    }

    /// Makes every in-flight message visible again (at start-up: this process owns
    /// the data directory, so nothing else can be working on them).
    pub fn release_in_flight(&self) -> Result<usize, PortError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE queue SET receipt = NULL, visible_at = 0 WHERE receipt IS NOT NULL",
                [],
            )
        })
    }

    /// Queue statistics.
    pub fn stats(&self, now: DateTime<Utc>) -> Result<QueueStats, PortError> {
        self.with(|conn| {
            let (depth, oldest): (i64, Option<i64>) =
                conn.query_row("SELECT COUNT(*), MIN(enqueued_at) FROM queue", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            let in_flight: i64 = conn.query_row(
                "SELECT COUNT(*) FROM queue WHERE receipt IS NOT NULL AND visible_at > ?1",
                [millis(now)],
                |row| row.get(0),
            )?;
            let dlq: i64 = conn.query_row("SELECT COUNT(*) FROM dlq", [], |row| row.get(0))?;
            Ok(QueueStats {
                depth: depth as u64,
                in_flight: in_flight as u64,
                oldest_age_secs: oldest.map_or(0, |at| ((millis(now) - at).max(0) / 1000) as u64),
                dlq_depth: dlq as u64,
            })
        })
    }

    /// Dead-lettered messages, oldest first.
    pub fn dlq_list(&self) -> Result<Vec<DeadLetter>, PortError> {
        self.with(|conn| {
            let mut statement = conn.prepare(
                "SELECT seq, event_key, conversation_id, receive_count, last_error, failed_at FROM dlq ORDER BY seq",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(DeadLetter {
                    seq: row.get(0)?,
                    event_key: row.get(1)?,
                    conversation_id: row.get(2)?,
                    receive_count: row.get(3)?,
                    last_error: row.get(4)?,
                    failed_at: from_millis(row.get(5)?),
                })
            })?;
            rows.collect()
        })
    }

    /// Moves dead-lettered messages back to the queue (all, or those with these
    /// event keys), with a fresh receive count. Returns how many moved.
    pub fn dlq_redrive(
        &self,
        event_keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<usize, PortError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let keys: Vec<String> = if event_keys.is_empty() {
                let mut statement = tx.prepare("SELECT event_key FROM dlq")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect::<Result<_, _>>()?
            } else {
                event_keys.to_vec()
            };
            let mut moved = 0;
            for key in keys {
                moved += tx.execute(
                    "INSERT OR IGNORE INTO queue (event_key, conversation_id, payload, enqueued_at, visible_at)
                     SELECT event_key, conversation_id, payload, enqueued_at, ?2 FROM dlq WHERE event_key = ?1",
                    params![key, millis(now)],
                )?;
                tx.execute("DELETE FROM dlq WHERE event_key = ?1", [&key])?;
            }
            tx.commit()?;
            Ok(moved)
        })
    }

    /// Reads the flags table. A value that does not parse is an error (⇒ safe mode).
    pub fn read_flags(&self) -> Result<RuntimeFlags, PortError> {
        let rows: Vec<(String, String)> = self.with(|conn| {
            let mut statement = conn.prepare("SELECT key, value FROM flags ORDER BY key")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        crate::flags::flags_from_pairs(rows)
    }

    /// Sets one flag (`safe_mode`, `automation_enabled`, `shadow_mode`,
    /// `channel.<name>`, `template.<id>`) to a JSON value, after checking it.
    pub fn write_flag(&self, key: &str, value: &serde_json::Value) -> Result<(), PortError> {
        crate::flags::check_flag(key, value)?;
        let text = value.to_string();
        self.with(|conn| {
            conn.execute(
                "INSERT INTO flags (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, text],
            )
        })?;
        Ok(())
    }

    /// Writes a raw flag value without checks (tests use it to corrupt flags).
    pub fn write_flag_raw(&self, key: &str, raw: &str) -> Result<(), PortError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO flags (key, value) VALUES (?1, ?2)",
                params![key, raw],
            )
        })?;
        Ok(())
    }

    /// Appends an action to the dry-run outbox.
    pub fn outbox_append(
        &self,
        conversation_id: &str,
        action_key: &str,
        action: &mw_core::Action,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let json =
            serde_json::to_string(action).map_err(|error| PortError::Invalid(error.to_string()))?;
        self.with(|conn| {
            conn.execute(
                "INSERT INTO outbox (at, conversation_id, action_key, kind, action) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![millis(now), conversation_id, action_key, action.kind(), json],
            )
        })?;
        Ok(())
    }

    /// Whether the outbox holds an action with this key.
    pub fn outbox_contains(&self, action_key: &str) -> Result<bool, PortError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT 1 FROM outbox WHERE action_key = ?1 LIMIT 1",
                [action_key],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
        })
    }

    /// The conversations decided most recently, newest first.
    pub fn recent_conversations(&self, limit: usize) -> Result<Vec<String>, PortError> {
        self.with(|conn| {
            let mut statement = conn.prepare(
                "SELECT conversation_id FROM audit GROUP BY conversation_id ORDER BY MAX(at) DESC LIMIT ?1",
            )?;
            let rows = statement.query_map([limit as i64], |row| row.get::<_, String>(0))?;
            rows.collect()
        })
    }

    /// Outbox entries, oldest first (optionally for one conversation).
    pub fn outbox(&self, conversation_id: Option<&str>) -> Result<Vec<OutboxEntry>, PortError> {
        self.with(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, at, conversation_id, action_key, kind, action FROM outbox
                 WHERE ?1 IS NULL OR conversation_id = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([conversation_id], |row| {
                let action: String = row.get(5)?;
                Ok(OutboxEntry {
                    id: row.get(0)?,
                    at: from_millis(row.get(1)?),
                    conversation_id: row.get(2)?,
                    action_key: row.get(3)?,
                    kind: row.get(4)?,
                    action: serde_json::from_str(&action).unwrap_or(serde_json::Value::Null),
                })
            })?;
            rows.collect()
        })
    }

    /// Deletes expired rows (TTL sweep). Returns how many went.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<usize, PortError> {
        let now_ms = millis(now);
        let reply_cutoff = millis(now - chrono::Duration::days(2));
        self.with(|conn| {
            let mut removed = 0;
            for table in ["idempotency", "conversation_state", "ledger", "audit"] {
                removed += conn.execute(
                    &format!("DELETE FROM {table} WHERE expires_at < ?1"),
                    [now_ms],
                )?;
            }
            removed += conn.execute("DELETE FROM reply_log WHERE sent_at < ?1", [reply_cutoff])?;
            Ok(removed)
        })
    }

    /// Enqueues several messages in one transaction (one commit, one fsync).
    pub fn enqueue_batch(
        &self,
        items: &[(String, String, Vec<u8>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Enqueued>, PortError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut results = Vec::with_capacity(items.len());
            {
                let mut statement = tx.prepare_cached(
                    "INSERT INTO queue (event_key, conversation_id, payload, enqueued_at, visible_at)
                     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(event_key) DO NOTHING",
                )?;
                for (group, key, payload) in items {
                    let inserted = statement.execute(params![key, group, payload, millis(now)])?;
                    results.push(if inserted == 1 { Enqueued::Accepted } else { Enqueued::Duplicate });
                }
            }
            tx.commit()?;
            Ok(results)
        })
    }

    /// Number of completed events (for replay progress).
    pub fn completed_events(&self) -> Result<u64, PortError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM idempotency WHERE status = 'done'",
                [],
                |row| row.get::<_, i64>(0),
            )
        })
        .map(|count| count as u64)
    }
}

fn random_receipt() -> String {
    let mut bytes = [0u8; 16];
    // A failure of the OS random source leaves zeros; the seq keeps receipts unique.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(
        &self,
        group: &str,
        event_key: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Enqueued, PortError> {
        let mut results = self.enqueue_batch(
            &[(group.to_owned(), event_key.to_owned(), payload.to_vec())],
            now,
        )?;
        results
            .pop()
            .ok_or_else(|| PortError::Unavailable("enqueue returned no result".into()))
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, PortError> {
        let now_ms = millis(now);
        let visible_until = now_ms + visibility.as_millis() as i64;
        let max_receives = self.max_receives;
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let heads: Vec<(i64, String, String, Vec<u8>, u32)> = {
                let mut statement = tx.prepare_cached(
                    "SELECT seq, event_key, conversation_id, payload, receive_count FROM queue q
                     WHERE visible_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM queue p WHERE p.conversation_id = q.conversation_id AND p.seq < q.seq)
                     ORDER BY seq LIMIT ?2",
                )?;
                let rows = statement.query_map(params![now_ms, max as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let mut deliveries = Vec::new();
            for (seq, event_key, group, payload, receive_count) in heads {
                if receive_count >= max_receives {
                    tx.execute(
                        "INSERT OR REPLACE INTO dlq (seq, event_key, conversation_id, payload, enqueued_at, failed_at, receive_count, last_error)
                         SELECT seq, event_key, conversation_id, payload, enqueued_at, ?2, receive_count, last_error FROM queue WHERE seq = ?1",
                        params![seq, now_ms],
                    )?;
                    tx.execute("DELETE FROM queue WHERE seq = ?1", [seq])?;
                    continue;
                }
                let receipt = format!("{seq}-{}", random_receipt());
                tx.execute(
                    "UPDATE queue SET receipt = ?1, visible_at = ?2, receive_count = receive_count + 1 WHERE seq = ?3",
                    params![receipt, visible_until, seq],
                )?;
                deliveries.push(Delivery { receipt, event_key, group, payload, receive_count: receive_count + 1 });
            }
            tx.commit()?;
            Ok(deliveries)
        })
    }

    async fn ack(&self, receipt: &str) -> Result<(), PortError> {
        self.with(|conn| conn.execute("DELETE FROM queue WHERE receipt = ?1", [receipt]))?;
        Ok(())
    }

    async fn release(
        &self,
        receipt: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let base = self.retry_delay.as_millis() as i64;
        self.with(|conn| {
            conn.execute(
                "UPDATE queue SET receipt = NULL, visible_at = ?2 + ?3 * receive_count, last_error = ?4 WHERE receipt = ?1",
                params![receipt, millis(now), base, error],
            )
        })?;
        Ok(())
    }
}

fn ledger_status(text: &str) -> Option<LedgerStatus> {
    match text {
        "pending" => Some(LedgerStatus::Pending),
        "done" => Some(LedgerStatus::Done),
        "failed" => Some(LedgerStatus::Failed),
        _ => None,
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn claim_event(
        &self,
        event_key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<EventClaim, PortError> {
        let now_ms = millis(now);
        let expires = millis(now + IDEMPOTENCY_TTL);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Expired records are treated as absent.
            tx.execute("DELETE FROM idempotency WHERE event_key = ?1 AND expires_at < ?2", params![event_key, now_ms])?;
            let inserted = tx.execute(
                "INSERT INTO idempotency (event_key, status, fingerprint, created_at, updated_at, expires_at)
                 VALUES (?1, 'processing', ?2, ?3, ?3, ?4) ON CONFLICT(event_key) DO NOTHING",
                params![event_key, fingerprint, now_ms, expires],
            )?;
            let claim = if inserted == 1 {
                EventClaim::New
            } else {
                let status: String = tx.query_row("SELECT status FROM idempotency WHERE event_key = ?1", [event_key], |row| row.get(0))?;
                if status == "done" { EventClaim::Done } else { EventClaim::Resume }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    async fn complete_event(
        &self,
        event_key: &str,
        mode: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE idempotency SET status = 'done', mode = ?2, updated_at = ?3 WHERE event_key = ?1",
                params![event_key, mode, millis(now)],
            )
        })?;
        Ok(())
    }

    async fn stored_classification(
        &self,
        event_key: &str,
    ) -> Result<Option<Classification>, PortError> {
        let text: Option<String> = self.with(|conn| {
            conn.query_row(
                "SELECT classification FROM idempotency WHERE event_key = ?1",
                [event_key],
                |row| row.get(0),
            )
            .optional()
            .map(Option::flatten)
        })?;
        Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
    }

    async fn store_classification(
        &self,
        event_key: &str,
        classification: &Classification,
    ) -> Result<(), PortError> {
        let text = serde_json::to_string(classification)
            .map_err(|error| PortError::Invalid(error.to_string()))?;
        self.with(|conn| {
            conn.execute(
                "UPDATE idempotency SET classification = ?2 WHERE event_key = ?1",
                params![event_key, text],
            )
        })?;
        Ok(())
    }

    async fn reply_history(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
    ) -> Result<ReplyHistory, PortError> {
        self.with(|conn| {
            let times = |sql: &str, key: &str| -> rusqlite::Result<Vec<DateTime<Utc>>> {
                let mut statement = conn.prepare_cached(sql)?;
                let rows = statement.query_map([key], |row| row.get::<_, i64>(0))?;
                rows.map(|row| row.map(from_millis)).collect()
            };
            let conversation = times(
                "SELECT sent_at FROM reply_log WHERE conversation_id = ?1 ORDER BY sent_at",
                conversation_id,
            )?;
            let customer = match customer_id {
                Some(customer) => times(
                    "SELECT sent_at FROM reply_log WHERE customer_id = ?1 ORDER BY sent_at",
                    customer,
                )?,
                None => Vec::new(),
            };
            Ok(ReplyHistory {
                conversation,
                customer,
            })
        })
    }

    async fn record_reply(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO reply_log (conversation_id, customer_id, sent_at) VALUES (?1, ?2, ?3)",
                params![conversation_id, customer_id, millis(at)],
            )
        })?;
        Ok(())
    }

    async fn ledger(&self, key: &str) -> Result<Option<LedgerStatus>, PortError> {
        let status: Option<String> = self.with(|conn| {
            conn.query_row("SELECT status FROM ledger WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
        })?;
        Ok(status.as_deref().and_then(ledger_status))
    }

    async fn set_ledger(
        &self,
        key: &str,
        status: LedgerStatus,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let text = match status {
            LedgerStatus::Pending => "pending",
            LedgerStatus::Done => "done",
            LedgerStatus::Failed => "failed",
        };
        self.with(|conn| {
            conn.execute(
                "INSERT INTO ledger (key, status, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at
                 WHERE ledger.status <> 'done' OR excluded.status = 'done'",
                params![key, text, millis(now), millis(now + IDEMPOTENCY_TTL)],
            )
        })
        .and_then(|changed| match changed {
            0 => Err(PortError::Conflict(format!(
                "action {key} is already done; it is not reopened"
            ))),
            _ => Ok(()),
        })
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), PortError> {
        let json =
            serde_json::to_string(record).map_err(|error| PortError::Invalid(error.to_string()))?;
        let at = millis(record.at);
        self.with(|conn| {
            let tx = conn.transaction()?;
            if record.decision.is_some() {
                // A retried event (crash between audit and completion) replaces its
                // earlier decision record: one decision per event.
                tx.execute("DELETE FROM audit WHERE event_key = ?1 AND decided = 1", [&record.event_key])?;
            }
            tx.execute(
                "INSERT INTO audit (conversation_id, event_key, at, record, expires_at, decided) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![record.conversation_id, record.event_key, at, json, millis(record.at + AUDIT_TTL), record.decision.is_some()],
            )?;
            if let Some(decision) = &record.decision {
                tx.execute(
                    "INSERT INTO conversation_state (conversation_id, last_intent, last_team, last_tier, tier0, updated_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(conversation_id) DO UPDATE SET last_intent = excluded.last_intent, last_team = excluded.last_team,
                       last_tier = excluded.last_tier, tier0 = MAX(conversation_state.tier0, excluded.tier0),
                       updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                    params![
                        record.conversation_id,
                        decision.primary_intent.as_str(),
                        decision.team_name,
                        decision.tier.as_str(),
                        decision.tier == mw_core::AppliedTier::Tier0,
                        at,
                        millis(record.at + CONVERSATION_TTL)
                    ],
                )?;
            }
            tx.commit()
        })?;
        Ok(())
    }

    async fn audit_trail(&self, conversation_id: &str) -> Result<Vec<AuditRecord>, PortError> {
        let rows: Vec<String> = self.with(|conn| {
            let mut statement =
                conn.prepare("SELECT record FROM audit WHERE conversation_id = ?1 ORDER BY id")?;
            let rows = statement.query_map([conversation_id], |row| row.get(0))?;
            rows.collect()
        })?;
        Ok(rows
            .iter()
            .filter_map(|row| serde_json::from_str(row).ok())
            .collect())
    }
}

#[async_trait]
impl mw_core::Flags for SqliteStore {
    async fn flags(&self) -> Result<RuntimeFlags, PortError> {
        self.read_flags()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (SqliteStore, std::path::PathBuf) {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("mw-sqlite-{}-{nanos}.sqlite3", std::process::id()));
        (SqliteStore::open(&path, Durability::Normal).unwrap(), path)
    }

    #[tokio::test]
    async fn fifo_per_group_and_visibility() {
        let (store, path) = store();
        let now = Utc::now();
        for (group, key) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
            assert_eq!(
                store.enqueue(group, key, b"{}", now).await.unwrap(),
                Enqueued::Accepted
            );
        }
        assert_eq!(
            store.enqueue("a", "a1", b"{}", now).await.unwrap(),
            Enqueued::Duplicate
        );
        let first = store
            .receive(10, Duration::from_secs(30), now)
            .await
            .unwrap();
        let keys: Vec<&str> = first.iter().map(|d| d.event_key.as_str()).collect();
        assert_eq!(keys, ["a1", "b1"], "a2 waits while a1 is in flight");
        assert!(
            store
                .receive(10, Duration::from_secs(30), now)
                .await
                .unwrap()
                .is_empty()
        );
        store.ack(&first[0].receipt).await.unwrap();
        let next = store
            .receive(10, Duration::from_secs(30), now)
            .await
            .unwrap();
        assert_eq!(next[0].event_key, "a2");
        // b1's visibility timeout expires: it is handed out again.
        let later = now + chrono::Duration::seconds(31);
        let again = store
            .receive(10, Duration::from_secs(30), later)
            .await
            .unwrap();
        assert!(
            again
                .iter()
                .any(|d| d.event_key == "b1" && d.receive_count == 2)
        );
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn claims_ledger_and_ttl_sweep() {
        let (store, path) = store();
        let now = Utc::now();
        assert_eq!(
            store.claim_event("k", "f", now).await.unwrap(),
            EventClaim::New
        );
        assert_eq!(
            store.claim_event("k", "f", now).await.unwrap(),
            EventClaim::Resume
        );
        store.complete_event("k", "live", now).await.unwrap();
        assert_eq!(
            store.claim_event("k", "f", now).await.unwrap(),
            EventClaim::Done
        );
        store
            .set_ledger("act:reply:c:k:2", LedgerStatus::Pending, now)
            .await
            .unwrap();
        assert_eq!(
            store.ledger("act:reply:c:k:2").await.unwrap(),
            Some(LedgerStatus::Pending)
        );
        // After the 30-day TTL the records are swept, and an expired claim is new again.
        let later = now + IDEMPOTENCY_TTL + chrono::Duration::days(1);
        assert_eq!(
            store.claim_event("k", "f", later).await.unwrap(),
            EventClaim::New
        );
        assert!(store.sweep(later).unwrap() >= 1);
        assert_eq!(store.ledger("act:reply:c:k:2").await.unwrap(), None);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn flags_round_trip_and_reject_nonsense() {
        let (store, path) = store();
        assert_eq!(store.read_flags().unwrap(), RuntimeFlags::default());
        store
            .write_flag("safe_mode", &serde_json::json!(true))
            .unwrap();
        store
            .write_flag("channel.sms", &serde_json::json!(true))
            .unwrap();
        store
            .write_flag("template.t_promo_discount_info", &serde_json::json!(false))
            .unwrap();
        let flags = store.read_flags().unwrap();
        assert!(flags.safe_mode);
        assert!(flags.channel_enabled(mw_core::Channel::Sms));
        assert!(!flags.template_enabled("t_promo_discount_info"));
        assert!(
            store
                .write_flag("channel.fax", &serde_json::json!(true))
                .is_err()
        );
        assert!(
            store
                .write_flag("safe_mode", &serde_json::json!("yes"))
                .is_err()
        );
        store.write_flag_raw("automation_enabled", "maybe").unwrap();
        assert!(
            store.read_flags().is_err(),
            "unreadable flags are an error (⇒ safe mode)"
        );
        let _ = std::fs::remove_file(path);
    }
}
