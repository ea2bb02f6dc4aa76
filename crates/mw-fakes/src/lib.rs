//! Faithful, stateful fake HTTP servers for tests, benchmarks and soak runs.
//!
//! * [`FakeRichpanel`] implements the Richpanel REST API as documented in
//!   `RICHPANEL_API.md` (§2–§4, and every point of the §6 "fake server contract"): tickets,
//!   orders, tags, teams and users, `x-richpanel-key` authentication, rate-limit headers, an
//!   optional fixed-window limiter, scripted per-route [`Fault`]s and a request [`JournalEntry`]
//!   journal.
//! * [`FakeOpenAi`] implements `POST /v1/chat/completions` (and `GET /v1/models/{model}`) with
//!   OpenAI's documented request validation, including strict structured-output schema rules,
//!   and scripted or computed [`FakeReply`]s.
//!
//! Both servers listen on `127.0.0.1` with an ephemeral port and stop on [`FakeRichpanel::stop`]
//! / [`FakeOpenAi::stop`] or when dropped. They never print the API key.

pub mod chaos;
pub mod openai;
pub mod richpanel;
mod server;

pub use chaos::Chaos;
pub use openai::{FakeOpenAi, FakeReply};
pub use richpanel::{FakeRichpanel, Fault, JournalEntry, RetryAfter, RouteMatch};
