//! Cross-crate end-to-end tests of the mw middleware live in `tests/tests/`; this
//! library holds their shared helpers.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The golden set's lines.
pub fn golden_lines() -> Result<Vec<mw_cli::eval::GoldenLine>, String> {
    let path = repo_root().join("golden/golden_v1.jsonl");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    mw_cli::eval::parse_golden(&text).map_err(|error| error.to_string())
}
