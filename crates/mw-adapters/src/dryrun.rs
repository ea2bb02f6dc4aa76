//! Stand-ins for Richpanel when no API key is configured: conversations and orders
//! come from the event payload (or a local JSONL file of conversations), and
//! actions go to the `outbox` table, so the whole path runs on a laptop.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use mw_core::{
    Action, ActionOutcome, Actions, Channel, Conversation, Conversations, Customer, InboundEvent,
    Message, Order, OrderLookup, Orders, PortError, Sender, fingerprint, parse_timestamp,
};
use serde::Deserialize;
use serde_json::Value;

use crate::sqlite::SqliteStore;
use crate::webhook::id_string;

/// One line of a conversations file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRecord {
    /// Conversation id.
    pub id: String,
    /// Channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Customer.
    #[serde(default)]
    pub customer: Customer,
    /// Messages, oldest first.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The linked order, if any.
    #[serde(default)]
    pub order: Option<Order>,
}

/// Conversations loaded from a JSONL file.
#[derive(Debug, Default)]
pub struct ConversationFile {
    records: HashMap<String, ConversationRecord>,
}

impl ConversationFile {
    /// Loads a JSONL file (one conversation per line).
    pub fn load(path: &Path) -> Result<ConversationFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut records = HashMap::new();
        for (index, line) in text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
        {
            let record: ConversationRecord = serde_json::from_str(line)
                .map_err(|error| format!("{} line {}: {error}", path.display(), index + 1))?;
            records.insert(record.id.clone(), record);
        }
        Ok(ConversationFile { records })
    }
}

/// Conversations and orders for one event, in dry-run mode.
#[derive(Debug)]
pub struct PayloadVendor {
    event: InboundEvent,
    payload: Value,
    file: Arc<ConversationFile>,
}

impl PayloadVendor {
    /// The vendor view for one event: its parsed form and its raw payload.
    pub fn new(event: InboundEvent, payload: Value, file: Arc<ConversationFile>) -> PayloadVendor {
        PayloadVendor {
            event,
            payload,
            file,
        }
    }

    /// The conversation the payload itself describes: its `messages`, or its `text`
    /// as one customer message. Channel and customer come from the parsed event.
    fn payload_conversation(&self, id: &str) -> Option<Conversation> {
        let messages: Vec<Message> = match self.payload.get("messages").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .filter_map(|item| {
                    Some(Message {
                        id: id_string(item.get("id"))?,
                        sender: match item.get("sender").and_then(Value::as_str) {
                            Some("agent") => Sender::Agent,
                            Some("bot") => Sender::Bot,
                            _ => Sender::Customer,
                        },
                        created_at: item
                            .get("created_at")
                            .and_then(Value::as_str)
                            .and_then(parse_timestamp),
                        text: item.get("text")?.as_str()?.to_owned(),
                    })
                })
                .collect(),
            None => {
                let text = self.payload.get("text").and_then(Value::as_str)?.to_owned();
                let message_id = self
                    .event
                    .message_id
                    .clone()
                    .unwrap_or_else(|| format!("m-{}", &fingerprint(text.as_bytes())[..16]));
                vec![Message {
                    id: message_id,
                    sender: Sender::Customer,
                    created_at: None,
                    text,
                }]
            }
        };
        Some(Conversation {
            id: id.to_owned(),
            channel: self.event.channel,
            tags: Vec::new(),
            messages,
            customer: self.event.customer.clone(),
        })
    }
}

#[async_trait]
impl Conversations for PayloadVendor {
    async fn conversation(&self, id: &str) -> Result<Conversation, PortError> {
        if let Some(conversation) = self.payload_conversation(id) {
            return Ok(conversation);
        }
        self.file
            .records
            .get(id)
            .map(|record| Conversation {
                id: record.id.clone(),
                channel: record.channel,
                tags: record.tags.clone(),
                messages: record.messages.clone(),
                customer: record.customer.clone(),
            })
            .ok_or_else(|| {
                PortError::NotFound(format!(
                    "conversation {id}: dry-run needs the message text in the payload or the conversation in MW_CONVERSATIONS_FILE"
                ))
            })
    }
}

#[async_trait]
impl Orders for PayloadVendor {
    async fn linked_order(&self, conversation_id: &str) -> Result<OrderLookup, PortError> {
        if let Some(order) = self.payload.get("order") {
            return Ok(
                match serde_json::from_value::<Option<Order>>(order.clone()) {
                    Ok(Some(order)) => OrderLookup::One {
                        order: Box::new(order),
                    },
                    Ok(None) => OrderLookup::None,
                    Err(_) => OrderLookup::Failed,
                },
            );
        }
        Ok(self
            .file
            .records
            .get(conversation_id)
            .and_then(|record| record.order.clone())
            .map_or(OrderLookup::None, |order| OrderLookup::One {
                order: Box::new(order),
            }))
    }
}

/// Actions written to the outbox instead of Richpanel.
#[derive(Debug, Clone)]
pub struct OutboxActions {
    store: Arc<SqliteStore>,
}

impl OutboxActions {
    /// Actions into this store's outbox.
    pub fn new(store: Arc<SqliteStore>) -> OutboxActions {
        OutboxActions { store }
    }
}

#[async_trait]
impl Actions for OutboxActions {
    async fn execute(
        &self,
        conversation_id: &str,
        action: &Action,
        key: &str,
    ) -> Result<ActionOutcome, PortError> {
        self.store
            .outbox_append(conversation_id, key, action, Utc::now())?;
        Ok(ActionOutcome::DryRun)
    }

    async fn already_applied(
        &self,
        _conversation_id: &str,
        _action: &Action,
        key: &str,
    ) -> Result<bool, PortError> {
        self.store.outbox_contains(key)
    }
}
