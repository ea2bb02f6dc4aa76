//! The worker pipeline, driven entirely through the ports: loop guard →
//! idempotency → fetch → redact → classify → decide (→ verify → decide) → execute
//! under the action ledger → audit. The same code runs in `mw serve`, the Lambda
//! worker and the tests; no runtime is implied.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::decide::{DecideInput, decide};
use crate::decision::{Action, Decision, TAG_SEND_FAILED};
use crate::model::{Conversation, InboundEvent, OrderLookup, RuntimeFlags, Sender};
use crate::ports::{
    ActionOutcome, ActionRecord, Actions, AuditRecord, Classifier, ClassifyRequest, Conversations,
    EventClaim, LedgerStatus, Orders, Policy, PortError, Renderer, StateStore, Verifier,
    VerifierInput,
};
use crate::redact::redact;

/// Everything the pipeline talks to.
pub struct Pipeline<'a> {
    /// Conversation reader.
    pub conversations: &'a dyn Conversations,
    /// Linked-order reader.
    pub orders: &'a dyn Orders,
    /// Classifier.
    pub classifier: &'a dyn Classifier,
    /// Tier 2 verifier.
    pub verifier: &'a dyn Verifier,
    /// Side effects.
    pub actions: &'a dyn Actions,
    /// Idempotency, ledger, history, audit.
    pub state: &'a dyn StateStore,
    /// The tier policy.
    pub policy: &'a dyn Policy,
    /// The template renderer.
    pub renderer: &'a dyn Renderer,
    /// `dry_run` when actions go to an outbox, `live` otherwise (for the audit).
    pub mode: &'a str,
}

/// Why an event was not decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The message is from an agent or from our bot (loop guard).
    NotFromCustomer,
    /// The message was already processed to completion.
    Duplicate,
    /// There is no customer text to act on.
    NoCustomerText,
}

impl SkipReason {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::NotFromCustomer => "not_from_customer",
            SkipReason::Duplicate => "duplicate",
            SkipReason::NoCustomerText => "no_customer_text",
        }
    }
}

/// What processing one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// Nothing was done.
    Skipped {
        /// Resolved event key.
        event_key: String,
        /// Why.
        reason: SkipReason,
    },
    /// A decision was made and its actions executed (or recorded, in shadow mode).
    Decided {
        /// Resolved event key.
        event_key: String,
        /// The decision.
        decision: Box<Decision>,
        /// What each action did.
        actions: Vec<ActionRecord>,
    },
}

/// The idempotency key of a message: `evt:rp:{conversation}:{message}`.
pub fn message_event_key(conversation_id: &str, message_id: &str) -> String {
    format!("evt:rp:{conversation_id}:{message_id}")
}

/// The key the reply limits count a customer under: a hash of their id (or email,
/// trimmed and lowercased), so no email address or customer id is stored with the
/// reply history.
pub fn customer_key(customer_id: &str) -> String {
    let canonical = customer_id.trim().to_lowercase();
    format!("cust:{}", &fingerprint(canonical.as_bytes())[..32])
}

/// SHA-256 (hex) of bytes: payload fingerprints and hash-based keys.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The ingress event key: by message id when the payload has one, else a hash of
/// the canonical (key-sorted) payload.
pub fn ingress_event_key(event: &InboundEvent, canonical_payload: &[u8]) -> String {
    match &event.message_id {
        Some(message_id) => message_event_key(&event.conversation_id, message_id),
        None => format!(
            "evt:rp:{}:sha256:{}",
            event.conversation_id,
            &fingerprint(canonical_payload)[..32]
        ),
    }
}

/// Which message this event is about, and whether it is the customer's.
fn resolve(
    event: &InboundEvent,
    conversation: &Conversation,
    ingress_key: &str,
) -> (String, Option<Sender>) {
    if let Some(message_id) = &event.message_id {
        let sender = conversation
            .messages
            .iter()
            .find(|m| &m.id == message_id)
            .map(|m| m.sender);
        return (
            message_event_key(&conversation.id, message_id),
            sender.or(Some(Sender::Customer)),
        );
    }
    match conversation.newest_message() {
        Some(newest) => (
            message_event_key(&conversation.id, &newest.id),
            Some(newest.sender),
        ),
        None => (ingress_key.to_owned(), None),
    }
}

fn ledger_key(action: &Action, conversation_id: &str, event_key: &str, index: usize) -> String {
    format!(
        "act:{}:{conversation_id}:{event_key}:{index}",
        action.kind()
    )
}

impl Pipeline<'_> {
    /// Processes one event. An `Err` means "retry later" (the queue redelivers, and
    /// dead-letters after too many attempts); everything on the decision path fails
    /// closed inside.
    pub async fn process(
        &self,
        event: &InboundEvent,
        ingress_key: &str,
        flags: Option<&RuntimeFlags>,
        now: DateTime<Utc>,
    ) -> Result<Processed, PortError> {
        let conversation = self
            .conversations
            .conversation(&event.conversation_id)
            .await?;
        let (event_key, sender) = resolve(event, &conversation, ingress_key);
        if matches!(sender, Some(Sender::Agent | Sender::Bot)) {
            return self
                .skip(
                    event_key,
                    &conversation.id,
                    SkipReason::NotFromCustomer,
                    now,
                )
                .await;
        }
        let text = match &event.text {
            Some(text) if !text.trim().is_empty() => text.clone(),
            _ => conversation.pending_customer_text(),
        };
        if text.trim().is_empty() {
            return self
                .skip(event_key, &conversation.id, SkipReason::NoCustomerText, now)
                .await;
        }
        match self
            .state
            .claim_event(&event_key, &fingerprint(text.as_bytes()), now)
            .await?
        {
            EventClaim::Done => {
                return Ok(Processed::Skipped {
                    event_key,
                    reason: SkipReason::Duplicate,
                });
            }
            EventClaim::New | EventClaim::Resume => {}
        }
        let order = self
            .orders
            .linked_order(&conversation.id)
            .await
            .unwrap_or(OrderLookup::Failed);
        let classification = match self.state.stored_classification(&event_key).await? {
            Some(stored) => stored,
            None => {
                let request = ClassifyRequest {
                    channel: event.channel.or(conversation.channel),
                    redacted_text: redact(&text),
                };
                let classification = self.classifier.classify(&request).await;
                self.state
                    .store_classification(&event_key, &classification)
                    .await?;
                classification
            }
        };
        let customer_id = conversation
            .customer
            .id
            .as_deref()
            .or(conversation.customer.email.as_deref())
            .map(customer_key);
        let history = self
            .state
            .reply_history(&conversation.id, customer_id.as_deref())
            .await?;
        let mut input = DecideInput {
            channel: event.channel.or(conversation.channel),
            text: &text,
            customer_name: conversation
                .customer
                .name
                .as_deref()
                .or(event.customer.name.as_deref()),
            order: &order,
            classification: &classification,
            verifier: &VerifierInput::NotRun,
            flags,
            history: &history,
            now,
        };
        let mut decision = decide(&input, self.policy, self.renderer);
        if let Some(request) = decision.verifier_request.clone() {
            let answer = match &classification.verification {
                Some(stored) => stored.clone(),
                None => {
                    let answer = self.verifier.verify(&request).await;
                    let mut with_answer = classification.clone();
                    with_answer.verification = Some(answer.clone());
                    self.state
                        .store_classification(&event_key, &with_answer)
                        .await?;
                    answer
                }
            };
            input.verifier = &answer;
            decision = decide(&input, self.policy, self.renderer);
        }
        let shadow = flags.is_some_and(|flags| flags.shadow_mode);
        let actions = if shadow {
            decision
                .actions
                .iter()
                .enumerate()
                .map(|(index, action)| ActionRecord {
                    kind: action.kind().to_owned(),
                    key: ledger_key(action, &conversation.id, &event_key, index),
                    outcome: "skipped_shadow".to_owned(),
                })
                .collect()
        } else {
            self.execute(
                &decision,
                &conversation.id,
                customer_id.as_deref(),
                &event_key,
                now,
            )
            .await?
        };
        let mode = if shadow { "shadow" } else { self.mode };
        let mut audited = decision.clone();
        if let Some(reply) = audited.reply.as_mut() {
            reply.body.clear();
        }
        for action in &mut audited.actions {
            if let Action::SendReply { body, .. } = action {
                body.clear();
            }
        }
        self.state
            .append_audit(&AuditRecord {
                event_key: event_key.clone(),
                conversation_id: conversation.id.clone(),
                at: now,
                mode: mode.to_owned(),
                skipped: None,
                decision: Some(audited),
                actions: actions.clone(),
            })
            .await?;
        self.state.complete_event(&event_key, mode, now).await?;
        Ok(Processed::Decided {
            event_key,
            decision: Box::new(decision),
            actions,
        })
    }

    async fn skip(
        &self,
        event_key: String,
        conversation_id: &str,
        reason: SkipReason,
        now: DateTime<Utc>,
    ) -> Result<Processed, PortError> {
        self.state
            .append_audit(&AuditRecord {
                event_key: event_key.clone(),
                conversation_id: conversation_id.to_owned(),
                at: now,
                mode: "skipped".to_owned(),
                skipped: Some(reason.code().to_owned()),
                decision: None,
                actions: Vec::new(),
            })
            .await?;
        Ok(Processed::Skipped { event_key, reason })
    }

    /// Executes the actions in order, each under its ledger key: pending before the
    /// call, done after. A pending entry found on a retry is reconciled against the
    /// destination before anything is sent again. A reply rejected for good leaves
    /// `mw-send-failed` and stops (no close); any other failure is retried.
    async fn execute(
        &self,
        decision: &Decision,
        conversation_id: &str,
        customer_id: Option<&str>,
        event_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<ActionRecord>, PortError> {
        let mut records = Vec::new();
        for (index, action) in decision.actions.iter().enumerate() {
            let key = ledger_key(action, conversation_id, event_key, index);
            let record = |outcome: &str| ActionRecord {
                kind: action.kind().to_owned(),
                key: key.clone(),
                outcome: outcome.to_owned(),
            };
            match self.state.ledger(&key).await? {
                Some(LedgerStatus::Done) => {
                    records.push(record("already_applied"));
                    continue;
                }
                Some(LedgerStatus::Failed) => {
                    records.push(record("failed earlier"));
                    break;
                }
                // A pending entry: the call's outcome is unknown. Reconcile against
                // the destination before doing anything again.
                Some(LedgerStatus::Pending)
                    if self
                        .actions
                        .already_applied(conversation_id, action, &key)
                        .await? =>
                {
                    self.state.set_ledger(&key, LedgerStatus::Done, now).await?;
                    if action.is_customer_message() {
                        self.state
                            .record_reply(conversation_id, customer_id, now)
                            .await?;
                    }
                    records.push(record("already_applied"));
                    continue;
                }
                Some(LedgerStatus::Pending) | None => {}
            }
            self.state
                .set_ledger(&key, LedgerStatus::Pending, now)
                .await?;
            match self.actions.execute(conversation_id, action, &key).await {
                Ok(outcome) => {
                    self.state.set_ledger(&key, LedgerStatus::Done, now).await?;
                    if action.is_customer_message() {
                        self.state
                            .record_reply(conversation_id, customer_id, now)
                            .await?;
                    }
                    records.push(record(match outcome {
                        ActionOutcome::Applied => "applied",
                        ActionOutcome::AlreadyApplied => "already_applied",
                        ActionOutcome::DryRun => "dry_run",
                    }));
                }
                // A reply that failed for good: tag it and leave it to a human. A
                // transient failure leaves the entry pending: the retry reconciles.
                Err(error) if action.is_customer_message() && !error.is_transient() => {
                    self.state
                        .set_ledger(&key, LedgerStatus::Failed, now)
                        .await?;
                    records.push(record(&format!("failed: {error}")));
                    let tag = Action::AddTags {
                        tags: vec![TAG_SEND_FAILED.to_owned()],
                    };
                    let tag_key = format!("act:tags:{conversation_id}:{event_key}:send-failed");
                    self.actions
                        .execute(conversation_id, &tag, &tag_key)
                        .await?;
                    records.push(ActionRecord {
                        kind: "tags".into(),
                        key: tag_key,
                        outcome: "applied".into(),
                    });
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_are_stable_hashes_without_personal_data() {
        let key = customer_key("Jane.Doe@Example.com ");
        assert_eq!(key, customer_key("jane.doe@example.com"));
        assert_ne!(key, customer_key("john.doe@example.com"));
        assert!(key.starts_with("cust:") && key.len() == 37, "{key}");
        assert!(!key.contains('@') && !key.contains("jane"));
        assert!(!crate::contains_pii(&key), "{key}");
    }
}
