//! # mw-cli
//!
//! The `mw` command-line tool and the pieces it is made of, reusable by tests and
//! embedders: [`Engine`] (policy + catalog + rules classifier + verifier, one call
//! per message), [`eval`] (golden-set evaluation) and [`explain`].

pub mod engine;
pub mod eval;
pub mod explain;

pub use engine::{ClassifierSource, Engine, EngineError, MessageInput};
