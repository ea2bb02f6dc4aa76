//! # mw-cli
//!
//! The `mw` command-line tool and the pieces it is made of, reusable by tests and
//! embedders: [`Engine`] (policy + catalog + rules classifier + verifier, one call
//! per message), [`eval`] (golden-set evaluation), [`explain`], [`serve`] settings,
//! [`doctor`] and the operator commands in [`ops`].

pub mod bench;
pub mod doctor;
pub mod engine;
pub mod eval;
pub mod explain;
pub mod ops;
pub mod serve;

pub use engine::{ClassifierSource, Engine, EngineError, MessageInput};
