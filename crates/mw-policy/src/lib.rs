//! # mw-policy
//!
//! The authoritative tier policy of the mw middleware and its embedded rules
//! classifier. Pure functions of their inputs: no I/O, no clock.
//!
//! - [`TierPolicy`] implements [`mw_core::Policy`]: the kill switch, Gate A (Tier 0
//!   pre-screen, model Tier 0 intents, risk flags), multi-intent priority, confidence
//!   adjustments and thresholds, team fallback, Gate C (Tier 3 off), Gate B (Tier 2
//!   verified order status), Tier 1 templates, Gate D (templates only), reply limits
//!   and the auto-close whitelist.
//! - [`Prescreen`] is the deterministic English/Spanish Tier 0 keyword screen.
//! - [`InjectionScreen`] is the deterministic English/Spanish prompt-injection
//!   screen: a message that tries to instruct the automation gets no automated
//!   reply, whatever the classifier says.
//! - [`RulesClassifier`] turns a message into a valid `mw_decision_v1` from an
//!   editable rules file; [`RulesVerifier`] is its deterministic Tier 2 verifier.

mod config;
mod engine;
mod injection;
mod prescreen;
mod rules;
mod text;
mod verifier;

pub use config::{PolicyConfig, ReplyLimits, Thresholds};
pub use engine::TierPolicy;
pub use injection::{InjectionHit, InjectionScreen};
pub use prescreen::{Prescreen, Tier0Hit};
pub use rules::{RulesClassifier, RulesOutcome};
pub use text::{normalize, word_count};
pub use verifier::RulesVerifier;

/// Errors loading policy data files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A rules or pre-screen file is invalid.
    #[error("invalid rules: {0}; fix the file and reload")]
    Rules(String),
}
