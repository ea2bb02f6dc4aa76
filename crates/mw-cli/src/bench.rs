//! `mw bench ingress`: a loopback load generator against an in-process ingress
//! with durable enqueue. Phase 1 offers a fixed rate (open loop) and reports ACK
//! latency; phase 2 saturates with a fixed number of connections and reports
//! throughput. Every request carries a new message id, so every one is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One phase's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseResult {
    /// What was run.
    pub phase: String,
    /// Requests completed.
    pub requests: u64,
    /// Requests answered 2xx.
    pub accepted: u64,
    /// Accepted per second.
    pub per_second: f64,
    /// Median ACK latency, ms.
    pub p50_ms: f64,
    /// 99th percentile ACK latency, ms.
    pub p99_ms: f64,
    /// Slowest ACK, ms.
    pub max_ms: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summarize(
    phase: String,
    mut latencies: Vec<f64>,
    accepted: u64,
    elapsed: Duration,
) -> PhaseResult {
    latencies.sort_by(f64::total_cmp);
    PhaseResult {
        phase,
        requests: latencies.len() as u64,
        accepted,
        per_second: accepted as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn body() -> String {
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    serde_json::json!({"ticket_id": format!("bench{}", n % 500), "message_id": format!("m{n}"), "channel": "email",
        "text": "Hi, where is my order? It has been a week."})
    .to_string()
}

async fn one(client: &reqwest::Client, url: &str, token: &str) -> (f64, bool) {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("x-richpanel-webhook-token", token)
        .body(body())
        .send()
        .await;
    let ok = matches!(&response, Ok(r) if r.status().is_success());
    if let Ok(response) = response {
        let _ = response.bytes().await;
    }
    (started.elapsed().as_secs_f64() * 1000.0, ok)
}

/// Offers `rate` requests per second for `duration` (open loop).
pub async fn fixed_rate(url: &str, token: &str, rate: u32, duration: Duration) -> PhaseResult {
    let client = reqwest::Client::new();
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(
            async move { one(&client, &url, &token).await },
        ));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut accepted = 0;
    for task in tasks {
        if let Ok((latency, ok)) = task.await {
            latencies.push(latency);
            accepted += u64::from(ok);
        }
    }
    summarize(
        format!("fixed {rate} req/s"),
        latencies,
        accepted,
        started.elapsed(),
    )
}

/// `connections` clients send back to back for `duration` (closed loop).
pub async fn saturation(
    url: &str,
    token: &str,
    connections: usize,
    duration: Duration,
) -> PhaseResult {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (client, url, token, accepted) = (
            client.clone(),
            url.to_owned(),
            token.to_owned(),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let (latency, ok) = one(&client, &url, &token).await;
                latencies.push(latency);
                accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    summarize(
        format!("saturation, {connections} connections"),
        latencies,
        accepted.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

/// The results as a table.
pub fn render(results: &[PhaseResult]) -> String {
    let mut out = format!(
        "{:<34} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}\n",
        "phase", "requests", "accepted", "accepted/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in results {
        out.push_str(&format!(
            "{:<34} {:>9} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2}\n",
            r.phase, r.requests, r.accepted, r.per_second, r.p50_ms, r.p99_ms, r.max_ms
        ));
    }
    out
}
