//! The Richpanel REST client (RICHPANEL_API.md): conversations, linked orders,
//! tags, assignment, status, replies through `send-message` with the bot author,
//! and the tenant's tags, teams and users.
//!
//! One client per tenant shares one rate limiter (default 50 requests per 30 s,
//! spaced so that no fixed window ever sees more), plus a cooldown that every
//! request respects after a 429. Reads, tag changes, assignment and closing are
//! safe to repeat and are retried; a reply that may have reached Richpanel is never
//! sent blindly again: the ticket is re-read first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::Method;
use mw_core::{
    Action, ActionOutcome, Actions, Channel, Conversation, Conversations, Customer, Message, Order,
    OrderLookup, Orders, PortError, Sender, parse_timestamp,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::http::{Failed, RetryPolicy, status_failure, transport_failure, with_retries};
use crate::metrics::Metrics;
use crate::webhook::id_string;

const VENDOR: &str = "Richpanel";
const CHECK_KEY: &str = "check MW_RICHPANEL_API_KEY (Settings → Integrations → API Keys)";

/// How the client reaches one Richpanel tenant.
#[derive(Clone)]
pub struct RichpanelConfig {
    /// API root without `/v1`, e.g. `https://api.richpanel.com`.
    pub base_url: String,
    /// The tenant's API key (`x-richpanel-key`). Never logged.
    pub api_key: String,
    /// The Richpanel user id our replies are sent as (the bot agent).
    pub bot_author_id: String,
    /// Requests allowed per `rate_window` (Richpanel: 50 per 30 s).
    pub rate_limit: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
    /// Timeouts and retries.
    pub retry: RetryPolicy,
    /// Send tag ids instead of names to `add-tags` (names are resolved through
    /// `GET /v1/tags` and cached; missing tags are created).
    pub tags_as_ids: bool,
}

impl std::fmt::Debug for RichpanelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RichpanelConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("bot_author_id", &self.bot_author_id)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("retry", &self.retry)
            .field("tags_as_ids", &self.tags_as_ids)
            .finish()
    }
}

impl RichpanelConfig {
    /// Richpanel's production API with the documented defaults.
    pub fn new(api_key: &str, bot_author_id: &str) -> RichpanelConfig {
        RichpanelConfig {
            base_url: "https://api.richpanel.com".into(),
            api_key: api_key.into(),
            bot_author_id: bot_author_id.into(),
            rate_limit: 50,
            rate_window: Duration::from_secs(30),
            retry: RetryPolicy::RICHPANEL,
            tags_as_ids: false,
        }
    }
}

/// A named tenant resource (tag, team, user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Richpanel id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A Richpanel client for one tenant.
pub struct RichpanelClient {
    http: reqwest::Client,
    config: RichpanelConfig,
    limiter: DefaultDirectRateLimiter,
    cooldown: Mutex<Option<tokio::time::Instant>>,
    tag_ids: tokio::sync::Mutex<Option<HashMap<String, String>>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for RichpanelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RichpanelClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The limiter's quota: requests spaced `window / (limit - 1)` apart with no burst,
/// so that any window of that length holds at most `limit` requests.
fn quota(limit: u32, window: Duration) -> Quota {
    let spacing = window / limit.saturating_sub(1).max(1);
    Quota::with_period(spacing.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
}

/// Everything but RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, percent-encoded.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

impl RichpanelClient {
    /// A client; fails only when the TLS back-end cannot initialise.
    pub fn new(config: RichpanelConfig) -> Result<RichpanelClient, PortError> {
        let http = crate::http::client(&config.retry)?;
        Ok(RichpanelClient {
            http,
            limiter: RateLimiter::direct(quota(config.rate_limit, config.rate_window)),
            config,
            cooldown: Mutex::new(None),
            tag_ids: tokio::sync::Mutex::new(None),
            metrics: None,
        })
    }

    /// Reports call latencies to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> RichpanelClient {
        self.metrics = Some(metrics);
        self
    }

    /// The configuration (the key stays redacted in `Debug`).
    pub fn config(&self) -> &RichpanelConfig {
        &self.config
    }

    /// Waits for the shared cooldown (after a 429) and for a limiter slot.
    async fn wait_turn(&self) {
        loop {
            let until = *self
                .cooldown
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => break,
            }
        }
        self.limiter.until_ready().await;
    }

    fn cool_down(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut cooldown = self
            .cooldown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cooldown.is_none_or(|current| current < until) {
            *cooldown = Some(until);
        }
    }

    /// One API call with retries. `idempotent` requests are repeated after a
    /// timeout or a 5xx; others only when they certainly did not arrive (429,
    /// connection refused).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value, PortError> {
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        with_retries(&self.config.retry, || async {
            self.wait_turn().await;
            let started = Instant::now();
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("x-richpanel-key", &self.config.api_key)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request.send().await;
            if let Some(metrics) = &self.metrics {
                metrics.vendor_latency("richpanel", started.elapsed().as_secs_f64());
            }
            let response = sent.map_err(|error| transport_failure(VENDOR, &error, idempotent))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|error| transport_failure(VENDOR, &error, idempotent))?;
            if !(200..300).contains(&status) {
                let mut failed = status_failure(VENDOR, status, &headers, CHECK_KEY, idempotent);
                if status == 429 {
                    self.cool_down(failed.retry_after.unwrap_or(Duration::from_secs(1)));
                    failed.retry_after.get_or_insert(Duration::from_secs(1));
                }
                if let PortError::Invalid(message) = &mut failed.error {
                    message.push_str(&format!(" ({method} {path}){}", error_detail(&bytes)));
                }
                return Err(failed);
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&bytes).map_err(|_| {
                let error = PortError::Invalid(format!(
                    "{VENDOR} answered {status} to {method} {path} with a body that is not JSON"
                ));
                if idempotent {
                    Failed::retry(error, None)
                } else {
                    Failed::stop(error)
                }
            })
        })
        .await
    }

    /// The raw ticket object (`GET /v1/tickets/{id}`).
    pub async fn ticket(&self, id: &str) -> Result<Value, PortError> {
        let body = self
            .call(
                Method::GET,
                &format!("/v1/tickets/{}?show_visitor_profile=false", segment(id)),
                None,
                true,
            )
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => PortError::NotFound(format!("conversation {id}")),
                other => other,
            })?;
        let ticket = body.get("ticket").cloned().unwrap_or(body);
        if !ticket.is_object() {
            return Err(PortError::Invalid(format!(
                "{VENDOR} returned no ticket object for conversation {id}"
            )));
        }
        Ok(ticket)
    }

    /// Adds tags (set semantics; safe to repeat).
    pub async fn add_tags(&self, id: &str, tags: &[String]) -> Result<(), PortError> {
        self.change_tags(id, tags, "add-tags").await
    }

    /// Removes tags (set semantics; safe to repeat).
    pub async fn remove_tags(&self, id: &str, tags: &[String]) -> Result<(), PortError> {
        self.change_tags(id, tags, "remove-tags").await
    }

    async fn change_tags(&self, id: &str, tags: &[String], verb: &str) -> Result<(), PortError> {
        let tags = self.tag_references(tags).await?;
        self.call(
            Method::PUT,
            &format!("/v1/tickets/{}/{verb}", segment(id)),
            Some(&json!({ "tags": tags })),
            true,
        )
        .await
        .map(drop)
    }

    /// Assigns the conversation to a user (`"unassigned"` clears it).
    pub async fn assign(&self, id: &str, assignee_id: &str) -> Result<(), PortError> {
        self.update(id, json!({ "assignee_id": assignee_id })).await
    }

    /// Sets the status: open or closed (closing also sets `state`, which is what
    /// made closing reliable in practice).
    pub async fn set_status(&self, id: &str, open: bool) -> Result<(), PortError> {
        let fields = if open {
            json!({ "status": "OPEN", "state": "open" })
        } else {
            json!({ "status": "CLOSED", "state": "closed" })
        };
        self.update(id, fields).await
    }

    async fn update(&self, id: &str, fields: Value) -> Result<(), PortError> {
        self.call(
            Method::PUT,
            &format!("/v1/tickets/{}", segment(id)),
            Some(&json!({ "ticket": fields })),
            true,
        )
        .await
        .map(drop)
    }

    /// Sends a customer-visible reply as the bot author. Not repeated on an
    /// ambiguous failure: the caller reconciles first.
    pub async fn send_message(&self, id: &str, body: &str) -> Result<(), PortError> {
        self.call(
            Method::PUT,
            &format!("/v1/tickets/{}/send-message", segment(id)),
            Some(&json!({ "body": body, "author_id": self.config.bot_author_id })),
            false,
        )
        .await
        .map(drop)
    }

    /// One order (`GET /v1/order/{appClientId}/{orderId}`); `None` when unknown.
    pub async fn order(
        &self,
        app_client_id: &str,
        order_id: &str,
    ) -> Result<Option<Order>, PortError> {
        let body = match self
            .call(
                Method::GET,
                &format!("/v1/order/{}/{}", segment(app_client_id), segment(order_id)),
                None,
                true,
            )
            .await
        {
            Ok(body) => body,
            Err(PortError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let order = body.get("order").cloned().unwrap_or(body);
        if !order.is_object() {
            return Err(PortError::Invalid(format!(
                "{VENDOR} returned no order object"
            )));
        }
        serde_json::from_value(order)
            .map(Some)
            .map_err(|_| PortError::Invalid(format!("{VENDOR} returned an unreadable order")))
    }

    /// All pages of a list (`tags`, `teams`, `users`).
    async fn list(&self, path: &str, key: &str) -> Result<Vec<Named>, PortError> {
        const PER_PAGE: usize = 100;
        let mut items = Vec::new();
        for page in 1..=100 {
            let body = self
                .call(
                    Method::GET,
                    &format!("{path}?page={page}&per_page={PER_PAGE}"),
                    None,
                    true,
                )
                .await?;
            let entries = body
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| PortError::Invalid(format!("{VENDOR} {path}: no '{key}' list")))?;
            items.extend(entries.iter().filter_map(|entry| {
                Some(Named {
                    id: id_string(entry.get("id"))?,
                    name: entry.get("name")?.as_str()?.to_owned(),
                })
            }));
            let more = body.get("next_page").is_some_and(|next| !next.is_null());
            if !more || entries.len() < PER_PAGE {
                break;
            }
        }
        Ok(items)
    }

    /// The tenant's tags.
    pub async fn tags(&self) -> Result<Vec<Named>, PortError> {
        self.list("/v1/tags", "tag").await
    }

    /// The tenant's teams.
    pub async fn teams(&self) -> Result<Vec<Named>, PortError> {
        self.list("/v1/teams", "team").await
    }

    /// The tenant's users (agents).
    pub async fn users(&self) -> Result<Vec<Named>, PortError> {
        self.list("/v1/users", "users").await
    }

    /// One user; `None` when unknown.
    pub async fn user(&self, id: &str) -> Result<Option<Value>, PortError> {
        match self
            .call(
                Method::GET,
                &format!("/v1/users/{}", segment(id)),
                None,
                true,
            )
            .await
        {
            Ok(body) => Ok(Some(body.get("user").cloned().unwrap_or(body))),
            Err(PortError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Creates a tag and returns its id.
    pub async fn create_tag(&self, name: &str) -> Result<String, PortError> {
        let body = self
            .call(
                Method::POST,
                "/v1/tags",
                Some(&json!({ "name": name })),
                false,
            )
            .await?;
        let tag = body.get("tag").unwrap_or(&body);
        let id = id_string(tag.get("id")).ok_or_else(|| {
            PortError::Invalid(format!("{VENDOR} created tag '{name}' but returned no id"))
        })?;
        if let Some(cache) = self.tag_ids.lock().await.as_mut() {
            cache.insert(name.to_lowercase(), id.clone());
        }
        Ok(id)
    }

    /// What to send to `add-tags`: the names, or (with `tags_as_ids`) their ids,
    /// creating tags the tenant does not have yet.
    async fn tag_references(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        if !self.config.tags_as_ids {
            return Ok(names.to_vec());
        }
        let mut references = Vec::with_capacity(names.len());
        for name in names {
            let known = self.tag_id(name).await?;
            references.push(match known {
                Some(id) => id,
                None => self.create_tag(name).await?,
            });
        }
        Ok(references)
    }

    /// A tag's id from the cached tag list (loaded on first use).
    async fn tag_id(&self, name: &str) -> Result<Option<String>, PortError> {
        let mut cache = self.tag_ids.lock().await;
        if cache.is_none() {
            let tags = self.tags().await?;
            *cache = Some(
                tags.into_iter()
                    .map(|tag| (tag.name.to_lowercase(), tag.id))
                    .collect(),
            );
        }
        Ok(cache
            .as_ref()
            .and_then(|cache| cache.get(&name.to_lowercase()).cloned()))
    }

    /// Whether a sent reply is visible on the ticket: a comment by our bot with the
    /// same text, or any bot comment newer than the customer's newest message.
    fn reply_visible(&self, ticket: &Value, body: &str) -> bool {
        let conversation = ticket_conversation(ticket, &self.config.bot_author_id);
        let wanted = normalize_text(body);
        let newest_customer = conversation
            .messages
            .iter()
            .filter(|m| m.sender == Sender::Customer)
            .filter_map(|m| m.created_at)
            .max();
        conversation.messages.iter().any(|message| {
            message.sender == Sender::Bot
                && (normalize_text(&message.text) == wanted
                    || matches!((message.created_at, newest_customer), (Some(at), Some(customer)) if at > customer))
        })
    }
}

/// The `error`/`message` of an error body, redacted and shortened, for operators.
fn error_detail(bytes: &[u8]) -> String {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        return String::new();
    };
    let detail = ["error", "message", "errors"]
        .iter()
        .find_map(|key| body.get(*key))
        .map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        });
    match detail {
        Some(text) => {
            let text: String = mw_core::redact(&text).chars().take(200).collect();
            format!(": {text}")
        }
        None => String::new(),
    }
}

/// Text without HTML tags and with whitespace collapsed.
fn normalize_text(text: &str) -> String {
    strip_html(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Plain text of an HTML body: tags dropped, line breaks kept, common entities
/// decoded.
fn strip_html(html: &str) -> String {
    static TAG: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|<[^>]*>").ok()
    });
    let Some(tag) = TAG.as_ref() else {
        return html.to_owned();
    };
    let text = tag.replace_all(html, |captures: &regex::Captures<'_>| {
        let tag = captures[0].to_ascii_lowercase();
        if tag.starts_with("<br") || tag.starts_with("</p") || tag.starts_with("</div") {
            "\n"
        } else {
            ""
        }
    });
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
}

/// A ticket as the core's [`Conversation`]. The sender is read from `is_operator`,
/// `isOperator`, then `via.isOperator` (documented default: operator); operator
/// comments by `bot_author_id` are our bot's.
pub fn ticket_conversation(ticket: &Value, bot_author_id: &str) -> Conversation {
    let messages = ticket
        .get("comments")
        .and_then(Value::as_array)
        .map(|comments| {
            comments
                .iter()
                .filter_map(|comment| {
                    let id = id_string(comment.get("id"))?;
                    let operator = flag(comment.get("is_operator"))
                        .or_else(|| flag(comment.get("isOperator")))
                        .or_else(|| flag(comment.get("via").and_then(|via| via.get("isOperator"))))
                        .unwrap_or(true);
                    let author = id_string(comment.get("author_id"));
                    let sender = match (operator, author) {
                        (false, _) => Sender::Customer,
                        (true, Some(author)) if author == bot_author_id => Sender::Bot,
                        (true, _) => Sender::Agent,
                    };
                    let text = text_at(comment, &["plain_body"])
                        .map(str::to_owned)
                        .or_else(|| text_at(comment, &["body"]).map(strip_html))
                        .unwrap_or_default();
                    let created_at = match comment.get("created_at") {
                        Some(Value::String(text)) => parse_timestamp(text),
                        Some(Value::Number(number)) => parse_timestamp(&number.to_string()),
                        _ => None,
                    };
                    Some(Message {
                        id,
                        sender,
                        created_at,
                        text,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let tags = ticket
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|tag| match tag {
                    Value::String(name) => Some(name.clone()),
                    other => other.get("name").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    let email = text_at(ticket, &["via", "source", "from", "address"])
        .or_else(|| text_at(ticket, &["customer", "email"]))
        .map(str::to_owned);
    let name = text_at(ticket, &["customer", "name"])
        .or_else(|| text_at(ticket, &["customer_profile", "firstName"]))
        .or_else(|| text_at(ticket, &["customer_profile", "name"]))
        .map(str::to_owned);
    let customer_id = id_string(ticket.get("customer_id"))
        .or_else(|| ticket.get("customer").and_then(|c| id_string(c.get("id"))));
    Conversation {
        id: id_string(ticket.get("id")).unwrap_or_default(),
        channel: text_at(ticket, &["via", "channel"]).and_then(Channel::from_richpanel),
        tags,
        messages,
        customer: Customer {
            id: customer_id.or_else(|| email.clone()),
            name,
            email,
        },
    }
}

#[async_trait]
impl Conversations for RichpanelClient {
    async fn conversation(&self, id: &str) -> Result<Conversation, PortError> {
        let ticket = self.ticket(id).await?;
        let mut conversation = ticket_conversation(&ticket, &self.config.bot_author_id);
        if conversation.id.is_empty() {
            conversation.id = id.to_owned();
        }
        Ok(conversation)
    }
}

#[async_trait]
impl Orders for RichpanelClient {
    /// `GET /v1/order/{conversationId}`: `{}` means no order. A link is then read
    /// with `GET /v1/order/{appClientId}/{orderId}`; a link to an order that cannot
    /// be read fails the lookup (fail closed).
    async fn linked_order(&self, conversation_id: &str) -> Result<OrderLookup, PortError> {
        let body = match self
            .call(
                Method::GET,
                &format!("/v1/order/{}", segment(conversation_id)),
                None,
                true,
            )
            .await
        {
            Ok(body) => body,
            Err(PortError::NotFound(_)) => return Ok(OrderLookup::None),
            Err(error) => return Err(error),
        };
        let links: Vec<&Value> = match &body {
            Value::Array(items) => items.iter().collect(),
            Value::Object(map) if map.is_empty() => Vec::new(),
            Value::Null => Vec::new(),
            other => match other.get("orders").and_then(Value::as_array) {
                Some(items) => items.iter().collect(),
                None => vec![other.get("order").unwrap_or(other)],
            },
        };
        let link = match links.as_slice() {
            [] => return Ok(OrderLookup::None),
            [one] => *one,
            several => {
                return Ok(OrderLookup::Several {
                    count: several.len(),
                });
            }
        };
        let order_id = id_string(link.get("orderId")).or_else(|| id_string(link.get("order_id")));
        let app =
            id_string(link.get("appClientId")).or_else(|| id_string(link.get("app_client_id")));
        match (app, order_id) {
            (Some(app), Some(order_id)) => Ok(match self.order(&app, &order_id).await? {
                Some(order) => OrderLookup::One {
                    order: Box::new(order),
                },
                None => OrderLookup::Failed,
            }),
            _ => Ok(OrderLookup::Failed),
        }
    }
}

#[async_trait]
impl Actions for RichpanelClient {
    async fn execute(
        &self,
        conversation_id: &str,
        action: &Action,
        key: &str,
    ) -> Result<ActionOutcome, PortError> {
        match action {
            Action::AddTags { tags } => self.add_tags(conversation_id, tags).await?,
            Action::Assign { assignee_id, .. } => self.assign(conversation_id, assignee_id).await?,
            Action::Close => self.set_status(conversation_id, false).await?,
            Action::SendReply { body, .. } => {
                if let Err(error) = self.send_message(conversation_id, body).await {
                    // The reply may have arrived although the answer did not: look
                    // before anyone sends it again.
                    if error.is_transient()
                        && self
                            .already_applied(conversation_id, action, key)
                            .await
                            .unwrap_or(false)
                    {
                        return Ok(ActionOutcome::Applied);
                    }
                    return Err(error);
                }
            }
        }
        Ok(ActionOutcome::Applied)
    }

    async fn already_applied(
        &self,
        conversation_id: &str,
        action: &Action,
        _key: &str,
    ) -> Result<bool, PortError> {
        let ticket = self.ticket(conversation_id).await?;
        Ok(match action {
            Action::AddTags { tags } => {
                let present = ticket_conversation(&ticket, &self.config.bot_author_id).tags;
                let mut present: Vec<String> = present.iter().map(|t| t.to_lowercase()).collect();
                if self.config.tags_as_ids {
                    for tag in tags {
                        if let Some(id) = self.tag_id(tag).await?
                            && present.contains(&id.to_lowercase())
                        {
                            present.push(tag.to_lowercase());
                        }
                    }
                }
                tags.iter().all(|tag| present.contains(&tag.to_lowercase()))
            }
            Action::Assign { assignee_id, .. } => {
                id_string(ticket.get("assignee_id")).as_deref() == Some(assignee_id.as_str())
            }
            Action::Close => ["status", "state"].iter().any(|key| {
                ticket
                    .get(*key)
                    .and_then(Value::as_str)
                    .is_some_and(|value| value.eq_ignore_ascii_case("closed"))
            }),
            Action::SendReply { body, .. } => self.reply_visible(&ticket, body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_parse_leniently() {
        let ticket = json!({"id":"t_9f2c","conversation_no":48213,"status":"OPEN",
            "via":{"channel":"email","source":{"from":{"address":"jane@example.com"}}},"tags":["vip", {"name": "x"}],
            "comments":[
              {"id":"c1","author_id":"cust_77","created_at":"2025-05-01T10:00:00Z","plain_body":"Where is #1001?",
               "body":"<p>Where is #1001?</p>","via":{"channel":"email","isOperator":false}},
              {"id":"c2","author_id":"agent_bot","created_at":"2025-05-01T10:02:00Z",
               "body":"It <b>shipped</b>.<br>Thanks","is_operator":true},
              {"id":3,"author_id":"agent_7","created_at":1746093900000_i64,"body":"noted","isOperator":"true"},
              {"id":"c4","plain_body":"no flags at all"}]});
        let conversation = ticket_conversation(&ticket, "agent_bot");
        assert_eq!(conversation.id, "t_9f2c");
        assert_eq!(conversation.channel, Some(Channel::Email));
        assert_eq!(conversation.tags, vec!["vip".to_owned(), "x".to_owned()]);
        assert_eq!(
            conversation.customer.email.as_deref(),
            Some("jane@example.com")
        );
        let senders: Vec<Sender> = conversation.messages.iter().map(|m| m.sender).collect();
        assert_eq!(
            senders,
            vec![Sender::Customer, Sender::Bot, Sender::Agent, Sender::Agent]
        );
        assert_eq!(conversation.messages[1].text, "It shipped.\nThanks");
        assert_eq!(conversation.messages[2].id, "3");
        assert!(conversation.messages[2].created_at.is_some());
    }

    #[test]
    fn the_quota_keeps_every_window_within_the_limit() {
        // 50 per 30 s ⇒ one request every 30/49 s, so 50 fit in any 30 s window.
        let quota = quota(50, Duration::from_secs(30));
        let spacing = quota.replenish_interval();
        assert!(spacing * 49 <= Duration::from_secs(30));
        assert!(spacing * 50 > Duration::from_secs(30));
        assert_eq!(quota.burst_size().get(), 1);
    }

    #[test]
    fn html_bodies_become_text() {
        assert_eq!(
            normalize_text("<p>Hi &amp; welcome</p><p>Line  two</p>"),
            "Hi & welcome Line two"
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("t_9f2c-1.x~"), "t_9f2c-1.x~");
    }

    #[test]
    fn the_key_is_never_debug_printed() {
        let config = RichpanelConfig::new("secret-key-123", "bot");
        assert!(!format!("{config:?}").contains("secret-key-123"));
    }
}
