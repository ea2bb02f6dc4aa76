//! # mw-adapters
//!
//! The I/O side of the mw middleware, for the embedded default (one machine):
//!
//! - [`SqliteStore`]: the core's `Queue` (FIFO per conversation, visibility timeout,
//!   dead-letter queue) and `StateStore` (idempotency, reply log, action ledger,
//!   audit trail, TTL sweep), runtime flags and the dry-run outbox, in one SQLite
//!   file (WAL).
//! - [`richpanel`], [`openai`], [`shopify`]: the vendor clients, behind the core's
//!   `Conversations`, `Orders`, `Actions`, `Classifier` and `Verifier` ports, with
//!   the retry policy of [`http`].
//! - [`Ingress`]: the webhook handler on plain `http` types (shared with Lambda).
//! - [`worker`]: the worker pool driving `mw_core::Pipeline`.
//! - [`serve`]: the local server (`mw serve`).

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod dryrun;
pub mod flags;
pub mod http;
pub mod ingress;
pub mod metrics;
pub mod openai;
pub mod richpanel;
pub mod server;
pub mod shopify;
pub mod sqlite;
pub mod webhook;
pub mod worker;

pub use ingress::{Ingress, Throttle};
pub use server::{Components, ServeConfig, ServeError, serve};
pub use sqlite::{Durability, SqliteStore};
pub use webhook::{AuthMode, WebhookAuth};
