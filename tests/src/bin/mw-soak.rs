//! `mw-soak`: the long fault-injection run behind `scripts/soak.sh`. Prints the
//! oracle's counts as a Markdown table and exits 1 if any safety count is not zero.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mw_tests::soak::{SoakConfig, mw_binary, run};

/// Soak `mw serve` under vendor faults, worker kills and hostile webhook delivery.
#[derive(Parser)]
struct Args {
    /// Customer messages (events) to deliver.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Share of Richpanel and OpenAI requests given a fault (0–1).
    #[arg(long, default_value_t = 0.2)]
    fault_rate: f64,
    /// SIGKILLs of `mw serve`, at random points of its work.
    #[arg(long, default_value_t = 25)]
    kills: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0x6d77_50a4)]
    seed: u64,
    /// Worker tasks of `mw serve`.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Conversations delivered at once.
    #[arg(long, default_value_t = 32)]
    senders: usize,
    /// Give up after this many minutes.
    #[arg(long, default_value_t = 60)]
    limit_minutes: u64,
    /// The `mw` binary (default: next to this one).
    #[arg(long)]
    mw: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = SoakConfig {
        mw: args.mw.unwrap_or_else(mw_binary),
        events: args.events,
        fault_rate: args.fault_rate,
        kills: args.kills,
        seed: args.seed,
        workers: args.workers,
        senders: args.senders,
        limit: Duration::from_secs(args.limit_minutes * 60),
    };
    eprintln!(
        "soak: {} events, {:.0} % vendor faults, {} kills, seed {:#x}",
        config.events,
        config.fault_rate * 100.0,
        config.kills,
        config.seed
    );
    let report = run(&config).await;
    println!("{}", report.table());
    if report.passed(&config) {
        println!("PASS: 0 lost, 0 duplicate replies, 0 unsafe automations, order kept");
        ExitCode::SUCCESS
    } else {
        println!("FAIL: see the counts above");
        ExitCode::FAILURE
    }
}
