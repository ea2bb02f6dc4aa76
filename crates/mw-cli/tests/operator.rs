//! The operator's first steps: `mw serve` on a fresh data directory with no
//! configuration, one webhook, `mw outbox` and `mw audit`; `mw flags`; `mw replay`
//! with an in-process server; `mw dlq`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mw(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mw"))
        .args(args)
        .env("MW_DATA_DIR", data_dir)
        .env_remove("MW_WEBHOOK_TOKENS")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn tempdir(name: &str) -> PathBuf {
    common::temp_path(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_data_directory_gets_a_private_token_and_the_readme_flow_works() {
    let data_dir = tempdir("fresh");
    let (mut child, url) = common::spawn_serve(&data_dir, &[]);
    let token_file = data_dir.join("webhook_token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the generated token is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.trim().len() >= 32);

    let client = reqwest::Client::new();
    let body = r#"{"ticket_id":"t_1001","message_id":"m1","channel":"email","customer_name":"Maria Lopez","text":"Hi, my mug arrived cracked in two pieces. Can you help?"}"#;
    let open = client
        .post(format!("{url}/webhook/richpanel"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(open.status().as_u16(), 401, "never an open endpoint");
    let response = client
        .post(format!("{url}/webhook/richpanel"))
        .header("x-richpanel-webhook-token", token.trim())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut outbox = String::new();
    for _ in 0..100 {
        outbox = mw(&["outbox"], &data_dir).1;
        if outbox.contains("reply") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(outbox.contains("t_damaged_item_intake"), "{outbox}");
    // The audit record is written right after the actions: wait for it too.
    let mut audit = String::new();
    for _ in 0..100 {
        let (ok, text, _) = mw(&["audit", "t_1001"], &data_dir);
        audit = text;
        if ok && audit.contains("tier_1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        audit.contains("tier_1 · damaged_item → Returns Admin"),
        "{audit}"
    );
    assert!(
        !audit.contains("cracked"),
        "the audit never holds message text"
    );

    let (ok, flags, _) = mw(&["flags", "set", "safe_mode", "true"], &data_dir);
    assert!(ok, "{flags}");
    assert!(
        mw(&["flags", "get"], &data_dir)
            .1
            .contains("safe_mode=true")
    );
    let (ok, _, error) = mw(&["flags", "set", "safe_mod", "true"], &data_dir);
    assert!(!ok && error.contains("unknown flag"), "{error}");

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "SIGINT shuts down cleanly");
    let logs = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!logs.contains(token.trim()), "the token is never logged");
    assert!(!logs.contains("cracked"), "message bodies are never logged");
    assert!(
        logs.lines()
            .filter(|l| l.contains("event processed"))
            .all(|l| l.contains("correlation_id")),
        "{logs}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn replay_starts_an_in_process_server_and_waits_for_processing() {
    let data_dir = tempdir("replay");
    std::fs::create_dir_all(&data_dir).unwrap();
    let file = data_dir.join("events.jsonl");
    let mut lines = Vec::new();
    for i in 0..30 {
        lines.push(format!(r#"{{"ticket_id":"r{}","message_id":"m{i}","channel":"email","text":"where is my order? it has been days"}}"#, i % 7));
    }
    lines.push(r#"{"ticket_id":"r0","message_id":"m0","channel":"email","text":"where is my order? it has been days"}"#.into());
    lines.push(r#"{"no_id": true}"#.into());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (ok, summary, error) = mw(&["replay", file.to_str().unwrap(), "--json"], &data_dir);
    assert!(ok, "{summary}{error}");
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["sent"], 32);
    assert_eq!(
        summary["accepted"].as_u64().unwrap() + summary["duplicates"].as_u64().unwrap(),
        31
    );
    assert_eq!(summary["rejected"]["400"], 1);
    assert_eq!(summary["processed"], 30);
    assert_eq!(summary["still_queued"], 0);
    let (ok, dlq, _) = mw(&["dlq", "list"], &data_dir);
    assert!(ok && dlq.contains("empty"), "{dlq}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
