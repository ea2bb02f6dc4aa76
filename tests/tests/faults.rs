//! The bounded form of the fault-injection soak (`scripts/soak.sh` runs the long
//! one): `mw serve` as a child process killed at random points, webhooks delivered
//! twice, concurrently and out of order, 20 % of vendor requests faulted. The oracle
//! must count 0 lost events, 0 duplicate replies, 0 unsafe automations and 0
//! per-conversation order violations.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::time::Duration;

use mw_tests::soak::{SoakConfig, mw_binary, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_kills_and_hostile_delivery_lose_nothing_and_never_double_reply() {
    let config = SoakConfig {
        mw: mw_binary(),
        events: 400,
        fault_rate: 0.2,
        kills: 4,
        seed: 0x00fa_0175,
        workers: 8,
        senders: 8,
        limit: Duration::from_secs(300),
    };
    let report = run(&config).await;
    println!("{}", report.table());
    assert!(report.passed(&config), "{}", report.table());
    assert!(report.richpanel_faults > 0 && report.openai_faults > 0);
    assert!(report.tier0_conversations > 0 && report.safe_mode_conversations > 0);
}
