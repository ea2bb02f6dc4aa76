//! Helpers shared by the tests that run `mw` as a child process.
#![allow(dead_code, reason = "each test file uses a subset")]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A fresh, unique temporary directory path (not created).
pub fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("mw-{name}-{}-{nanos}", std::process::id()))
}

/// Starts `mw serve` on an ephemeral port with these extra environment variables;
/// returns the child (stderr piped) and its base URL, read from the listening line.
pub fn spawn_serve(data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("MW_DATA_DIR", data_dir)
        .env_remove("MW_WEBHOOK_TOKENS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("mw serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .expect("listening line")
        .to_owned();
    (child, url)
}
