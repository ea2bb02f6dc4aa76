//! The domain model: inbound events, conversations, linked orders, runtime flags and
//! reply history.
//!
//! Vendor JSON is parsed leniently (RICHPANEL_API.md): ids may be strings or numbers,
//! timestamps may be ISO-8601 strings or epoch milliseconds, unknown fields are
//! ignored and missing ones default.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::vocab::Channel;

/// A webhook delivery after validation: the conversation it concerns and whatever
/// else the HTTP Target chose to send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Richpanel conversation (ticket) id.
    pub conversation_id: String,
    /// Id of the message that triggered the call, when the payload carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Caller-supplied event id, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Channel, when the payload names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Message text, when the payload carries it (the worker fetches it otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Customer fields, when present.
    #[serde(default)]
    pub customer: Customer,
}

/// What we know about the customer. Personal data: never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Stable customer id or email used for per-customer reply limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The customer.
    Customer,
    /// A human agent (operator).
    Agent,
    /// Our own bot identity.
    Bot,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Richpanel comment id.
    pub id: String,
    /// Who wrote it.
    pub sender: Sender,
    /// When it was written, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Plain text body.
    pub text: String,
}

/// A conversation (Richpanel "ticket") with its messages, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Richpanel conversation id.
    pub id: String,
    /// Channel, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Tags currently on the conversation.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Messages, oldest first.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// The customer.
    #[serde(default)]
    pub customer: Customer,
}

impl Conversation {
    /// The newest message (by `created_at`, else array order).
    pub fn newest_message(&self) -> Option<&Message> {
        self.messages
            .iter()
            .enumerate()
            .max_by_key(|(index, message)| (message.created_at, *index))
            .map(|(_, message)| message)
    }

    /// The customer's text since the last operator (agent or bot) message, joined
    /// with blank lines: what the customer is asking now.
    pub fn pending_customer_text(&self) -> String {
        let mut ordered: Vec<&Message> = self.messages.iter().collect();
        ordered.sort_by_key(|message| message.created_at);
        let start = ordered
            .iter()
            .rposition(|message| message.sender != Sender::Customer)
            .map_or(0, |index| index + 1);
        ordered[start..]
            .iter()
            .map(|message| message.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// A linked order, in Richpanel's order shape (camelCase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Store order id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_id: Option<String>,
    /// The store's own key, e.g. a Shopify global id `gid://shopify/Order/…`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_db_key: Option<String>,
    /// Customer-facing order number, e.g. `#10482`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_name: Option<String>,
    /// Free-text order status (`confirmed`, `processing`, `cancelled`, …).
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    /// `fulfilled`, `unfulfilled`, `partially_fulfilled` or free text.
    #[serde(default, deserialize_with = "lenient_string")]
    pub fulfillment_status: Option<String>,
    /// `paid`, `refunded`, … (`paymentStatus` accepted too).
    #[serde(default, alias = "paymentStatus", deserialize_with = "lenient_string")]
    pub financial_status: Option<String>,
    /// When the order was placed.
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub created_at: Option<DateTime<Utc>>,
    /// When the order was processed (used when `createdAt` is missing).
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub processed_at: Option<DateTime<Utc>>,
    /// Customer-facing order status page.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status_url: Option<String>,
    /// Shipping method name, e.g. `Standard Shipping`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub shipping_method: Option<String>,
    /// Fulfillments with their tracking.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub fulfillment: Vec<Fulfillment>,
}

/// One fulfillment (shipment) of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    /// Fulfillment id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// Shipment status, e.g. `in_transit`, `delivered`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    /// When the fulfillment was created.
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub created_at: Option<DateTime<Utc>>,
    /// Tracking entries.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub tracking: Vec<Tracking>,
}

/// A carrier tracking entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracking {
    /// Carrier tracking number.
    #[serde(default, deserialize_with = "lenient_string")]
    pub tracking_number: Option<String>,
    /// Carrier name.
    #[serde(default, deserialize_with = "lenient_string")]
    pub tracking_company: Option<String>,
    /// Carrier tracking page.
    #[serde(default, deserialize_with = "lenient_string")]
    pub tracking_url: Option<String>,
}

/// The outcome of looking up the order(s) linked to a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderLookup {
    /// No order is linked.
    #[default]
    None,
    /// Exactly one order is linked.
    One {
        /// The order.
        order: Box<Order>,
    },
    /// Several orders are linked: no deterministic match is possible.
    Several {
        /// How many.
        count: usize,
    },
    /// The lookup failed (fail closed: treated as no match, tagged).
    Failed,
}

impl OrderLookup {
    /// The linked order when exactly one is linked.
    pub fn single(&self) -> Option<&Order> {
        match self {
            OrderLookup::One { order } => Some(order),
            _ => None,
        }
    }
}

/// Runtime flags: the kill switch and per-channel/per-template enablement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeFlags {
    /// Route-only for everything.
    pub safe_mode: bool,
    /// `false` ⇒ no customer message is ever sent.
    pub automation_enabled: bool,
    /// Decide and audit everything, write nothing to Richpanel.
    pub shadow_mode: bool,
    /// Per-channel enablement overrides (default: email and livechat on).
    pub channels: BTreeMap<Channel, bool>,
    /// Per-template enablement overrides (default: as the catalog says).
    pub templates: BTreeMap<String, bool>,
}

impl Default for RuntimeFlags {
    fn default() -> Self {
        RuntimeFlags {
            safe_mode: false,
            automation_enabled: true,
            shadow_mode: false,
            channels: BTreeMap::new(),
            templates: BTreeMap::new(),
        }
    }
}

impl RuntimeFlags {
    /// Whether automation may send on `channel` (default: email and livechat only).
    pub fn channel_enabled(&self, channel: Channel) -> bool {
        self.channels
            .get(&channel)
            .copied()
            .unwrap_or(matches!(channel, Channel::Email | Channel::Livechat))
    }

    /// Whether the flags allow `template_id` (default: yes; the catalog's own
    /// `enabled` is checked separately).
    pub fn template_enabled(&self, template_id: &str) -> bool {
        self.templates.get(template_id).copied().unwrap_or(true)
    }
}

/// When our automation last replied, for reply limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplyHistory {
    /// Automated replies sent on this conversation.
    pub conversation: Vec<DateTime<Utc>>,
    /// Automated replies sent to this customer across conversations.
    pub customer: Vec<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Int(i64),
    Float(f64),
}

fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value: Option<serde_json::Value> = Option::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Some(text),
        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
        _ => None,
    })
}

fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value: Option<serde_json::Value> = Option::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Parses an ISO-8601/RFC 3339 string, a date, or epoch milliseconds (number or
/// numeric string). Anything else is `None`.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(Utc.from_utc_datetime(&naive));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|naive| Utc.from_utc_datetime(&naive));
    }
    text.parse::<i64>().ok().and_then(from_epoch_millis)
}

fn from_epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

fn lenient_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value: Option<StringOrNumber> = Option::deserialize(deserializer).unwrap_or(None);
    Ok(match value {
        Some(StringOrNumber::String(text)) => parse_timestamp(&text),
        Some(StringOrNumber::Int(millis)) => from_epoch_millis(millis),
        Some(StringOrNumber::Float(millis)) => from_epoch_millis(millis as i64),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse_leniently() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "orderId": 1234567, "orderName": "#10482", "paymentStatus": "paid",
            "createdAt": 1763474580000_i64, "unknownField": {"x": 1},
            "fulfillment": [{"status": "in_transit", "createdAt": "2026-11-17T10:00:00Z",
                "tracking": [{"trackingNumber": "1Z999AA10123456784", "trackingCompany": "UPS"}]},
                "garbage"]
        }))
        .unwrap();
        assert_eq!(order.order_id.as_deref(), Some("1234567"));
        assert_eq!(order.financial_status.as_deref(), Some("paid"));
        assert!(order.created_at.is_some());
        assert_eq!(order.fulfillment.len(), 1);
        assert_eq!(
            order.fulfillment[0].tracking[0].tracking_company.as_deref(),
            Some("UPS")
        );
    }

    #[test]
    fn timestamps_in_every_documented_form() {
        let iso = parse_timestamp("2026-11-18T15:00:00Z").unwrap();
        assert_eq!(
            parse_timestamp(&iso.timestamp_millis().to_string()),
            Some(iso)
        );
        assert!(parse_timestamp("2026-11-18").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn pending_customer_text_starts_after_the_last_operator_message() {
        let at = |minute: u32| Utc.with_ymd_and_hms(2026, 11, 18, 10, minute, 0).single();
        let message = |id: &str, sender, minute, text: &str| Message {
            id: id.into(),
            sender,
            created_at: at(minute),
            text: text.into(),
        };
        let conversation = Conversation {
            messages: vec![
                message("c1", Sender::Customer, 0, "first"),
                message("c2", Sender::Agent, 1, "answer"),
                message("c3", Sender::Customer, 2, "second"),
                message("c4", Sender::Customer, 3, "third"),
            ],
            ..Conversation::default()
        };
        assert_eq!(conversation.pending_customer_text(), "second\n\nthird");
        assert_eq!(
            conversation.newest_message().map(|m| m.id.as_str()),
            Some("c4")
        );
    }

    #[test]
    fn flag_defaults() {
        let flags = RuntimeFlags::default();
        assert!(flags.channel_enabled(Channel::Email));
        assert!(flags.channel_enabled(Channel::Livechat));
        assert!(!flags.channel_enabled(Channel::Tiktok));
        assert!(flags.template_enabled("t_anything"));
    }
}
