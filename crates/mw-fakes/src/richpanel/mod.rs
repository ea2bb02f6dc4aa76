//! Fake Richpanel API server (see `RICHPANEL_API.md` §6 for the contract it implements).
//!
//! Choices where the documentation is silent:
//!
//! * **Pipeline order:** every request is journaled first. A request without the right
//!   `x-richpanel-key` is answered 401 and neither counts against the limiter nor consumes a
//!   scripted fault. Authenticated requests are counted by the limiter, then a scripted [`Fault`]
//!   (if any matches) wins; otherwise a request over the limit gets 429; otherwise it is handled.
//! * **Rate-limit headers:** `X-RateLimit-Limit` / `X-RateLimit-Remaining` are on every response
//!   except resets. Without [`FakeRichpanel::set_rate_limit`] they describe the documented 50
//!   requests per 30 s fixed window (windows aligned to server start), which is counted but never
//!   enforced.
//! * **Random faults:** with [`FakeRichpanel::set_chaos`], a request that no scripted fault
//!   matches draws one at the configured rate; it then behaves exactly like the scripted one. `Retry-After` is only sent on 429.
//! * **Faults and effects:** `Status`, `RateLimited` and `Reset` apply nothing. `Delay` waits and
//!   then handles the request; if the client disconnects during the wait, the request is abandoned
//!   (nothing applied, journal status 0). `ApplyThenReset`, `ApplyThenDelay`, `NonJson` and
//!   `MissingFields` apply the request's effect (a 200 means the write was committed).
//! * `RetryAfter::HttpDate(n)` sends a whole-second date more than `n` and at most `n + 1`
//!   seconds ahead, so a client waiting until that date always waits at least `n` seconds.
//! * Request bodies over 8 MiB are answered 413.

mod handlers;

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{Value, json};

use crate::chaos::Chaos;
use crate::server::{self, Outcome, Req, Server};
use handlers::State;

/// Which requests a scripted fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// The HTTP method, or `None` for any method.
    pub method: Option<Method>,
    /// A path pattern such as `/v1/tickets/*/send-message`; `*` matches exactly one segment.
    pub path: String,
}

impl RouteMatch {
    /// Matches `path` with any method.
    pub fn any(path: impl Into<String>) -> Self {
        Self {
            method: None,
            path: path.into(),
        }
    }

    /// Matches `path` with the given method only.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method: Some(method),
            path: path.into(),
        }
    }

    /// Whether a request with this method and (raw or percent-decoded) path matches.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        pattern.len() == actual.len()
            && pattern
                .iter()
                .zip(&actual)
                .all(|(p, a)| *p == "*" || p == a || *p == server::pct_decode(a, false))
    }
}

/// How a scripted 429 carries `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delta seconds).
    Seconds(u64),
    /// `Retry-After: <HTTP-date>` that many seconds from now.
    HttpDate(u64),
    /// No `Retry-After` header.
    Absent,
}

/// A scripted misbehaviour for the next requests matching a [`RouteMatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with this body (JSON content type if the body parses as JSON); nothing applied.
    Status {
        /// HTTP status code, e.g. 500, 503, 400, 401, 404, 409, 413.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Answer 429 with a JSON reason body; nothing applied.
    RateLimited(RetryAfter),
    /// Wait, then handle normally (use to exceed client timeouts).
    Delay(Duration),
    /// Close the connection without any response; nothing applied.
    Reset,
    /// Apply the request's effect, then close the connection without any response.
    ApplyThenReset,
    /// Apply the request's effect, then wait before answering normally.
    ApplyThenDelay(Duration),
    /// Apply the request's effect, then answer 200 with the non-JSON body `<html>oops</html>`.
    NonJson,
    /// Apply the request's effect, then answer 200 with `{}`.
    MissingFields,
}

/// One journaled request.
#[derive(Clone, PartialEq)]
pub struct JournalEntry {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Raw request path (without query).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Request headers with lowercase names, in arrival order (the `Debug` output redacts keys).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `None` if empty or not JSON.
    pub body: Option<Value>,
    /// The body as (lossy UTF-8) text.
    pub raw_body: String,
    /// Arrival time since server start.
    pub at: Duration,
    /// The status answered; 0 for a reset, or while/if no answer was written.
    pub status: u16,
}

impl JournalEntry {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for JournalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| match k.as_str() {
                "x-richpanel-key" | "authorization" => (k.as_str(), "<redacted>"),
                _ => (k.as_str(), v.as_str()),
            })
            .collect();
        f.debug_struct("JournalEntry")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &self.body)
            .field("at", &self.at)
            .field("status", &self.status)
            .finish()
    }
}

struct Shared {
    api_key: String,
    started: Instant,
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, req: &Req) -> Reply {
        if req.too_large {
            return Reply::Json(413, json!({"error": "Payload too large"}));
        }
        let (status, body) = self.lock().route(
            &self.base_url,
            req.method.as_str(),
            &req.path,
            req.query.as_deref(),
            &req.body,
        );
        Reply::Json(status, body)
    }
}

enum Reply {
    Json(u16, Value),
    Raw(u16, String),
    TooMany(RetryAfter, Value),
    Reset,
}

/// A running fake Richpanel server. Stops on [`FakeRichpanel::stop`] or when dropped.
pub struct FakeRichpanel {
    shared: Arc<Shared>,
    server: Server,
}

impl fmt::Debug for FakeRichpanel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRichpanel")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeRichpanel {
    /// Starts on 127.0.0.1 with an ephemeral port. Every request must carry
    /// `x-richpanel-key: <api_key>` (header name case-insensitive), else 401 on every route.
    pub async fn start(api_key: &str) -> std::io::Result<FakeRichpanel> {
        let (listener, addr) = Server::bind().await?;
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            started: Instant::now(),
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
        });
        let for_handler = shared.clone();
        let server = Server::spawn(
            listener,
            Arc::new(move |req| Box::pin(handle(for_handler.clone(), req))),
        );
        Ok(FakeRichpanel { shared, server })
    }

    /// `http://127.0.0.1:PORT`; request paths then start with `/v1/`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Inserts (or replaces, by `id`) a ticket in Richpanel shape. Missing fields are defaulted
    /// (`id`, `conversation_no`, `status` `OPEN`, `via.channel` `email`, timestamps, comment ids,
    /// `is_operator` and `via.isOperator` kept consistent, `plain_body` from `body`); `tags` are names.
    pub fn insert_ticket(&self, ticket: Value) {
        let mut st = self.shared.lock();
        let ticket = st.normalize_ticket(ticket);
        st.store_ticket(ticket);
    }

    /// Appends a customer comment (fresh id, `created_at` now) and returns its id. Creates the
    /// ticket (OPEN, channel email) if missing; a CLOSED ticket is reopened, as a customer reply
    /// reopens a conversation in a helpdesk.
    pub fn add_customer_message(&self, ticket_id: &str, text: &str) -> String {
        self.shared.lock().add_customer_message(ticket_id, text)
    }

    /// Inserts an open email ticket from `from` with one customer message.
    pub fn insert_email_ticket(&self, id: &str, from: &str, text: &str) {
        self.insert_ticket(
            json!({"id": id, "status": "OPEN", "tags": [], "comments": [],
            "via": {"channel": "email", "source": {"from": {"address": from}}}}),
        );
        self.add_customer_message(id, text);
    }

    /// The plain text of the comments `author_id` wrote on a ticket, oldest first
    /// (empty when the ticket does not exist).
    pub fn comments_by(&self, ticket_id: &str, author_id: &str) -> Vec<String> {
        self.ticket(ticket_id)
            .and_then(|ticket| ticket["comments"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|comment| comment["author_id"].as_str() == Some(author_id))
            .map(|comment| {
                comment["plain_body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// A ticket's tag names (empty when the ticket does not exist).
    pub fn tag_names(&self, ticket_id: &str) -> Vec<String> {
        self.ticket(ticket_id)
            .and_then(|ticket| ticket["tags"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect()
    }

    /// The current ticket, as `GET /v1/tickets/{id}` would return it inside `{"ticket":…}`.
    pub fn ticket(&self, id: &str) -> Option<Value> {
        self.shared.lock().tickets.get(id).cloned()
    }

    /// Every ticket, ordered by id.
    pub fn tickets(&self) -> Vec<Value> {
        self.shared.lock().tickets.values().cloned().collect()
    }

    /// Inserts or replaces an order, keyed by `order["orderId"]` (string or number).
    pub fn insert_order(&self, app_client_id: &str, order: Value) {
        let mut st = self.shared.lock();
        let key = handlers::order_key(&order).unwrap_or_else(|| st.new_id("ord"));
        st.orders.insert((app_client_id.to_owned(), key), order);
    }

    /// Links an order to a conversation, like `PUT …/attach-order/{app}/{order}`.
    pub fn link_order(&self, conversation_id: &str, app_client_id: &str, order_id: &str) {
        self.shared.lock().links.insert(
            conversation_id.to_owned(),
            (app_client_id.to_owned(), order_id.to_owned()),
        );
    }

    /// Registers a tag and returns its id (the existing id if the name is already registered).
    pub fn add_tag(&self, name: &str) -> String {
        self.shared.lock().ensure_tag(name)
    }

    /// Registers a team and returns its id.
    pub fn add_team(&self, name: &str) -> String {
        self.shared.lock().add_team(name)
    }

    /// Registers an agent user and returns its id.
    pub fn add_user(&self, name: &str, email: &str) -> String {
        self.shared.lock().add_user(name, email)
    }

    /// The next `times` requests matching `route` get `fault`. Faults for an identical route are
    /// queued in order; across different routes the first script (in order of creation) that
    /// matches and still has faults wins.
    pub fn fault(&self, route: RouteMatch, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        let mut st = self.shared.lock();
        let idx = match st.faults.iter().position(|(r, _)| *r == route) {
            Some(idx) => idx,
            None => {
                st.faults.push((route, VecDeque::new()));
                st.faults.len() - 1
            }
        };
        if let Some((_, queue)) = st.faults.get_mut(idx) {
            queue.extend(std::iter::repeat_n(fault, times));
        }
    }

    /// Drops every scripted fault not yet used.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Random faults (`None` stops them): every authenticated request that no scripted
    /// fault matches draws from `chaos`.
    pub fn set_chaos(&self, chaos: Option<Chaos<Fault>>) {
        self.shared.lock().chaos = chaos;
    }

    /// `(requests seen, faults injected)` by the chaos settings, if any.
    pub fn chaos_counts(&self) -> Option<(u64, u64)> {
        self.shared.lock().chaos.as_ref().map(Chaos::counts)
    }

    /// Enables (`Some((limit, window))`) or disables the fixed-window limiter: at most `limit`
    /// requests per window (windows aligned to server start); beyond → 429 with `Retry-After` =
    /// whole seconds until the window ends (at least 1). Resets the current window's count.
    pub fn set_rate_limit(&self, limit: Option<(u32, Duration)>) {
        let mut st = self.shared.lock();
        st.limiter = limit;
        st.window = (u128::MAX, 0);
    }

    /// Every request received so far (also those answered 401, 429 or with a fault).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared
            .lock()
            .journal
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Empties the journal.
    pub fn clear_journal(&self) {
        self.shared.lock().journal.clear();
    }

    /// Stops the server, aborting in-flight requests.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

async fn handle(shared: Arc<Shared>, req: Req) -> Outcome {
    let at = shared.started.elapsed();
    let authorized = req
        .headers
        .get_all("x-richpanel-key")
        .iter()
        .any(|v| v.as_bytes() == shared.api_key.as_bytes());
    let (seq, rate, fault) = {
        let mut st = shared.lock();
        let seq = st.journal_start(&req, at);
        let rate = st.rate(at, authorized);
        let fault = if authorized {
            st.take_fault(&req.method, &req.path)
        } else {
            None
        };
        (seq, rate, fault)
    };
    let normal = |shared: &Shared| {
        if rate.over {
            let msg = format!(
                "Rate limit exceeded: at most {} requests per window",
                rate.limit
            );
            Reply::TooMany(RetryAfter::Seconds(rate.retry_after), json!({"error": msg}))
        } else {
            shared.apply(&req)
        }
    };
    let reply = match fault {
        _ if !authorized => Reply::Json(
            401,
            json!({"error": "Unauthorized: missing or invalid x-richpanel-key"}),
        ),
        None => normal(&shared),
        Some(Fault::Status { status, body }) => Reply::Raw(status, body),
        Some(Fault::RateLimited(ra)) => Reply::TooMany(ra, json!({"error": "Rate limit exceeded"})),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            normal(&shared)
        }
        Some(Fault::Reset) => Reply::Reset,
        Some(Fault::ApplyThenReset) => {
            shared.apply(&req);
            Reply::Reset
        }
        Some(Fault::ApplyThenDelay(d)) => {
            let reply = shared.apply(&req);
            tokio::time::sleep(d).await;
            reply
        }
        Some(Fault::NonJson) => {
            shared.apply(&req);
            Reply::Raw(200, "<html>oops</html>".to_owned())
        }
        Some(Fault::MissingFields) => {
            shared.apply(&req);
            Reply::Json(200, json!({}))
        }
    };
    let mut remaining = rate.remaining;
    let mut resp = match reply {
        Reply::Reset => return Outcome::Reset,
        Reply::Json(status, body) => server::json(status, &body),
        Reply::Raw(status, body) => {
            let ct = if serde_json::from_str::<Value>(&body).is_ok() {
                "application/json"
            } else if body.trim_start().starts_with('<') {
                "text/html"
            } else {
                "text/plain"
            };
            server::response(status, body, ct)
        }
        Reply::TooMany(ra, body) => {
            remaining = 0;
            let mut resp = server::json(429, &body);
            match ra {
                RetryAfter::Seconds(s) => {
                    server::set_header(&mut resp, "retry-after", &s.to_string())
                }
                RetryAfter::HttpDate(s) => {
                    server::set_header(&mut resp, "retry-after", &http_date(s))
                }
                RetryAfter::Absent => {}
            }
            resp
        }
    };
    server::set_header(&mut resp, "x-ratelimit-limit", &rate.limit.to_string());
    server::set_header(&mut resp, "x-ratelimit-remaining", &remaining.to_string());
    shared.lock().journal_finish(seq, resp.status().as_u16());
    Outcome::Respond(resp)
}

/// An IMF-fixdate more than `secs` and at most `secs + 1` seconds from now.
fn http_date(secs: u64) -> String {
    let now = DateTime::<Utc>::from(SystemTime::now());
    let whole = now
        .timestamp()
        .saturating_add(1)
        .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX / 2));
    DateTime::<Utc>::from_timestamp(whole, 0)
        .unwrap_or(now)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}
