//! Drains a backlog through `mw serve` against a fake Richpanel that allows R
//! requests per second and answers 429 beyond it, and prints how close to R the
//! shared limiter runs and how many requests were throttled.
//!
//! `cargo bench -p mw-tests --bench richpanel_drain` (environment: `MW_BENCH_EVENTS`,
//! default 1000; `MW_BENCH_RATE`, requests per second, default 50).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events: usize = env_or("MW_BENCH_EVENTS", 1000);
    let rate: u32 = env_or("MW_BENCH_RATE", 50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(mw_tests::drain_backlog("bench-drain", events, rate));
    println!("events             {}", report.events);
    println!("fake limit R       {} requests/s", report.rate);
    println!("requests           {}", report.requests);
    println!(
        "answered 429       {} ({:.2} %)",
        report.throttled,
        100.0 * report.throttled_share()
    );
    println!("replies sent       {}", report.replies);
    println!("drain time         {:.1} s", report.seconds);
    println!(
        "achieved rate      {:.1} requests/s = {:.1} % of R",
        report.requests as f64 / report.seconds,
        100.0 * report.rate_share()
    );
}
