//! Fuzz target `rules_classifier`: see `mw_fuzz::checks::check_rules_classifier` for the invariants.
#![no_main]
#![allow(
    clippy::panic,
    reason = "a broken invariant is reported to libFuzzer as a crash"
)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(message) = mw_fuzz::checks::check_rules_classifier(data) {
        panic!("rules_classifier invariant broken: {message}");
    }
});
