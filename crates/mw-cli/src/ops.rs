//! Operator commands on a data directory: flags, dead-letter queue, audit trail,
//! outbox, and replaying events through the ingress.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use mw_adapters::SqliteStore;
use mw_adapters::server::{address_path, open_store, token_path};
use mw_core::{StateStore, redact};
use serde::Serialize;

/// Errors of the operator commands.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The data directory or database failed.
    #[error(transparent)]
    Serve(#[from] mw_adapters::ServeError),
    /// A store operation failed.
    #[error(transparent)]
    Port(#[from] mw_core::PortError),
    /// The server settings are invalid.
    #[error(transparent)]
    Settings(#[from] crate::serve::SettingsError),
    /// Bad input.
    #[error("{0}")]
    Input(String),
}

/// A server running inside this process (replay without a running server,
/// benchmarks, tests), stopped with [`InProcessServer::stop`].
pub struct InProcessServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), mw_adapters::ServeError>>,
}

impl InProcessServer {
    /// Starts `mw serve` with these settings (listen on port 0 for a free port) and
    /// waits until it listens.
    pub async fn start(
        settings: &crate::serve::ServeSettings,
        engine: crate::Engine,
    ) -> Result<InProcessServer, OpsError> {
        let config = settings.config()?;
        let components = settings.components(engine)?;
        let address = address_path(&config.data_dir);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mw_adapters::serve(config, components, async move {
            let _ = stopped.await;
        }));
        for _ in 0..400 {
            if let Ok(addr) = std::fs::read_to_string(&address)
                && !addr.trim().is_empty()
            {
                return Ok(InProcessServer {
                    url: format!("http://{}", addr.trim()),
                    stop,
                    task,
                });
            }
            if task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = stop.send(());
        match task.await {
            Ok(Err(error)) => Err(error.into()),
            _ => Err(OpsError::Input(
                "the in-process server did not start".into(),
            )),
        }
    }

    /// Stops it gracefully (in-flight events finish) and returns its result.
    pub async fn stop(self) -> Result<(), OpsError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => Ok(result?),
            Err(error) => Err(OpsError::Input(format!(
                "the in-process server panicked: {error}"
            ))),
        }
    }
}

/// Opens the database of a data directory.
pub fn store(data_dir: &Path) -> Result<SqliteStore, OpsError> {
    Ok(open_store(data_dir)?)
}

/// `mw audit`: the decision trail of a conversation, redacted, oldest first.
pub async fn audit(data_dir: &Path, conversation_id: &str, json: bool) -> Result<String, OpsError> {
    let mut records = store(data_dir)?.audit_trail(conversation_id).await?;
    // Records hold no message text; reason details are redacted once more anyway.
    for record in &mut records {
        if let Some(decision) = record.decision.as_mut() {
            for reason in &mut decision.reasons {
                reason.detail = redact(&reason.detail);
            }
        }
    }
    if json {
        return Ok(serde_json::to_string_pretty(&records).unwrap_or_default());
    }
    let mut out = String::new();
    if records.is_empty() {
        out.push_str(&format!(
            "no audit records for conversation {conversation_id}\n"
        ));
    }
    for record in &records {
        let at = record.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push_str(&format!("{at} {} [{}]\n", record.event_key, record.mode));
        if let Some(reason) = &record.skipped {
            out.push_str(&format!("  skipped: {reason}\n"));
        }
        if let Some(decision) = &record.decision {
            out.push_str(&format!(
                "  {} · {} → {} (confidence {:.2})\n  tags: {}\n",
                decision.tier.as_str(),
                decision.primary_intent,
                decision.team_name,
                decision.routing_confidence,
                decision.tags.join(", ")
            ));
            if let Some(reply) = &decision.reply {
                out.push_str(&format!(
                    "  reply: {} v{}\n",
                    reply.template_id, reply.template_version
                ));
            }
            for reason in &decision.reasons {
                out.push_str(&format!(
                    "  [{}] {}: {}\n",
                    reason.gate.as_str(),
                    reason.code,
                    reason.detail
                ));
            }
        }
        for action in &record.actions {
            out.push_str(&format!("  action {} → {}\n", action.kind, action.outcome));
        }
    }
    Ok(out)
}

/// `mw outbox`: what the dry-run would have done.
pub fn outbox(
    data_dir: &Path,
    conversation_id: Option<&str>,
    json: bool,
) -> Result<String, OpsError> {
    let entries = store(data_dir)?.outbox(conversation_id)?;
    if json {
        return Ok(serde_json::to_string_pretty(&entries).unwrap_or_default());
    }
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("the outbox is empty\n");
    }
    for entry in entries {
        let at = entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push_str(&format!(
            "#{} {at} {} {}\n",
            entry.id, entry.conversation_id, entry.kind
        ));
        match entry.kind.as_str() {
            "reply" => {
                let template = entry
                    .action
                    .get("template_id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                out.push_str(&format!("  template {template}\n"));
                for line in entry
                    .action
                    .get("body")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .lines()
                {
                    out.push_str(&format!("  | {line}\n"));
                }
            }
            _ => out.push_str(&format!("  {}\n", entry.action)),
        }
    }
    Ok(out)
}

/// `mw flags get`.
pub fn flags_get(data_dir: &Path) -> Result<String, OpsError> {
    let flags = store(data_dir)?.read_flags()?;
    let channels: Vec<String> = mw_core::Channel::all()
        .map(|channel| format!("channel.{channel}={}", flags.channel_enabled(channel)))
        .collect();
    let mut out = format!(
        "safe_mode={}\nautomation_enabled={}\nshadow_mode={}\n{}\n",
        flags.safe_mode,
        flags.automation_enabled,
        flags.shadow_mode,
        channels.join("\n")
    );
    for (template, enabled) in &flags.templates {
        out.push_str(&format!("template.{template}={enabled}\n"));
    }
    Ok(out)
}

/// `mw flags set KEY true|false`.
pub fn flags_set(data_dir: &Path, key: &str, value: &str) -> Result<String, OpsError> {
    let parsed: serde_json::Value = match value {
        "true" | "on" | "yes" => true.into(),
        "false" | "off" | "no" => false.into(),
        other => {
            return Err(OpsError::Input(format!(
                "'{other}' is not a flag value; use true or false"
            )));
        }
    };
    store(data_dir)?.write_flag(key, &parsed)?;
    Ok(format!(
        "{key}={parsed} (takes effect within the flags cache window, at most 30 s)\n"
    ))
}

/// `mw dlq list`.
pub fn dlq_list(data_dir: &Path, json: bool) -> Result<String, OpsError> {
    let entries = store(data_dir)?.dlq_list()?;
    if json {
        return Ok(redact(
            &serde_json::to_string_pretty(&entries).unwrap_or_default(),
        ));
    }
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("the dead-letter queue is empty\n");
    }
    for entry in entries {
        out.push_str(&format!(
            "{} {} receives={} conversation={} error={}\n",
            entry
                .failed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            entry.event_key,
            entry.receive_count,
            entry.conversation_id,
            entry.last_error.as_deref().map(redact).unwrap_or_default()
        ));
    }
    Ok(out)
}

/// `mw dlq redrive`.
pub fn dlq_redrive(data_dir: &Path, event_keys: &[String]) -> Result<String, OpsError> {
    let moved = store(data_dir)?.dlq_redrive(event_keys, Utc::now())?;
    Ok(format!("{moved} event(s) moved back to the queue\n"))
}

/// Where `mw replay` sends events.
#[derive(Debug, Clone)]
pub struct ReplayTarget {
    /// Ingress base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Token header value.
    pub token: String,
}

/// Finds a running server of this data directory and its token.
pub fn running_target(data_dir: &Path, tokens: &[String]) -> Option<ReplayTarget> {
    let address = std::fs::read_to_string(address_path(data_dir))
        .ok()
        .filter(|a| !a.trim().is_empty())?;
    let token = tokens
        .first()
        .cloned()
        .or_else(|| std::fs::read_to_string(token_path(data_dir)).ok())?;
    Some(ReplayTarget {
        url: format!("http://{}", address.trim()),
        token: token.trim().to_owned(),
    })
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    /// Lines sent.
    pub sent: usize,
    /// 2xx accepted.
    pub accepted: usize,
    /// 2xx duplicates.
    pub duplicates: usize,
    /// Non-2xx, by status.
    pub rejected: std::collections::BTreeMap<u16, usize>,
    /// Transport errors.
    pub errors: usize,
    /// Events processed to completion during the replay.
    pub processed: u64,
    /// Left in the queue when the wait ended.
    pub still_queued: u64,
    /// In the dead-letter queue at the end.
    pub dead_lettered: u64,
    /// Seconds until everything was processed.
    pub seconds: f64,
}

/// Posts every JSONL line to the ingress, then waits until the queue is empty (or
/// `wait` runs out). `progress` is called after each post.
pub async fn replay(
    data_dir: &Path,
    file: &PathBuf,
    target: &ReplayTarget,
    wait: Duration,
    mut progress: impl FnMut(),
) -> Result<ReplaySummary, OpsError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| OpsError::Input(format!("cannot read {}: {error}", file.display())))?;
    let store = store(data_dir)?;
    let done_before = store.completed_events()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| OpsError::Input(format!("HTTP client: {error}")))?;
    let url = format!("{}/webhook/richpanel", target.url.trim_end_matches('/'));
    let started = Instant::now();
    let mut summary = ReplaySummary::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        summary.sent += 1;
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-richpanel-webhook-token", &target.token)
            .body(line.to_owned())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body.get("status").and_then(|s| s.as_str()) == Some("duplicate") {
                    summary.duplicates += 1;
                } else {
                    summary.accepted += 1;
                }
            }
            Ok(response) => {
                *summary
                    .rejected
                    .entry(response.status().as_u16())
                    .or_default() += 1
            }
            Err(_) => summary.errors += 1,
        }
        progress();
    }
    let deadline = Instant::now() + wait;
    loop {
        let stats = store.stats(Utc::now())?;
        summary.still_queued = stats.depth;
        summary.dead_lettered = stats.dlq_depth;
        if stats.depth == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    summary.processed = store.completed_events()?.saturating_sub(done_before);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The replay summary as a table.
pub fn render_summary(summary: &ReplaySummary) -> String {
    let rejected: Vec<String> = summary
        .rejected
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    format!(
        "sent          {}\naccepted      {}\nduplicates    {}\nrejected      {}\nerrors        {}\nprocessed     {}\nstill queued  {}\ndead-lettered {}\nseconds       {:.1}\n",
        summary.sent,
        summary.accepted,
        summary.duplicates,
        if rejected.is_empty() {
            "0".to_owned()
        } else {
            rejected.join(", ")
        },
        summary.errors,
        summary.processed,
        summary.still_queued,
        summary.dead_lettered,
        summary.seconds
    )
}
