//! Fuzz targets of the mw middleware. The invariants live in [`checks`], shared
//! with the regression test `tests/tests/fuzz_corpus.rs` of the main workspace.

pub mod checks;
