//! Policy configuration: thresholds, reply limits, tenant teams, template mapping.
//! Every field has the SPEC default, so `PolicyConfig::default()` is the product.

use std::collections::BTreeMap;

use mw_core::{Intent, Team};
use serde::{Deserialize, Serialize};

/// Confidence thresholds and adjustments (SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Route to the intent's team at or above this.
    pub route: f64,
    /// Between this and `route`: `mw-uncertain` to Email Support; below: manual triage.
    pub uncertain: f64,
    /// Tier 1 minimum.
    pub tier1: f64,
    /// Tier 1 minimum for returns/refunds/exchanges/cancel/address/subscription.
    pub tier1_sensitive: f64,
    /// Tier 1 minimum for technical support.
    pub tier1_technical: f64,
    /// Tier 2 minimum routing confidence.
    pub tier2: f64,
    /// Minimum verifier confidence for Tier 2.
    pub verifier: f64,
    /// Subtracted for each adjustment below.
    pub penalty: f64,
    /// Margin between top two intents below which the penalty applies.
    pub margin: f64,
    /// Messages with fewer words than this get the penalty.
    pub min_words: usize,
    /// Intents above this confidence count towards multi-intent.
    pub multi_intent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            route: 0.60,
            uncertain: 0.50,
            tier1: 0.60,
            tier1_sensitive: 0.65,
            tier1_technical: 0.70,
            tier2: 0.70,
            verifier: 0.80,
            penalty: 0.10,
            margin: 0.10,
            min_words: 5,
            multi_intent: 0.55,
        }
    }
}

/// Automated reply limits (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplyLimits {
    /// Per conversation within 10 minutes.
    pub per_conversation_10m: usize,
    /// Per conversation within 24 hours.
    pub per_conversation_24h: usize,
    /// Per customer within 24 hours.
    pub per_customer_24h: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            per_conversation_10m: 1,
            per_conversation_24h: 3,
            per_customer_24h: 5,
        }
    }
}

/// The policy's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Confidence thresholds.
    pub thresholds: Thresholds,
    /// Reply limits.
    pub reply_limits: ReplyLimits,
    /// Tenant team names by canonical team. A team absent here keeps its canonical
    /// name; a team mapped to an empty string does not exist in the tenant and falls
    /// back to Email Support Team (tagged `mw-wanted-team-…`).
    pub team_names: BTreeMap<Team, String>,
    /// Optional direct assignee (Richpanel user id) per team.
    pub assignees: BTreeMap<Team, String>,
    /// Tier 1 template per intent.
    pub tier1_templates: BTreeMap<Intent, String>,
    /// Templates that may close the conversation (also need `auto_close_allowed`).
    pub auto_close_templates: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        use Intent::*;
        let tier1 = [
            (OrderStatusTracking, "t_order_status_ask_order_number"),
            (ShippingDelayNotShipped, "t_order_status_ask_order_number"),
            (DeliveredNotReceived, "t_delivered_not_received_intake"),
            (MissingItemsInShipment, "t_missing_items_intake"),
            (WrongItemReceived, "t_wrong_item_intake"),
            (DamagedItem, "t_damaged_item_intake"),
            (CancelOrder, "t_cancel_order_ack_intake"),
            (AddressChangeOrderEdit, "t_address_change_ack_intake"),
            (CancelSubscription, "t_cancel_subscription_ack_intake"),
            (BillingIssue, "t_billing_issue_intake"),
            (ReturnRequest, "t_return_request_intake"),
            (ExchangeRequest, "t_exchange_request_intake"),
            (RefundRequest, "t_refund_request_intake"),
            (TechnicalSupport, "t_technical_support_intake"),
            (PromoDiscountIssue, "t_promo_discount_info"),
            (PrePurchaseQuestion, "t_pre_purchase_info"),
            (InfluencerMarketingInquiry, "t_influencer_inquiry_route"),
        ];
        PolicyConfig {
            thresholds: Thresholds::default(),
            reply_limits: ReplyLimits::default(),
            team_names: BTreeMap::new(),
            assignees: BTreeMap::new(),
            tier1_templates: tier1.into_iter().map(|(i, t)| (i, t.to_owned())).collect(),
            auto_close_templates: vec!["t_order_eta_no_tracking_verified".to_owned()],
        }
    }
}

impl PolicyConfig {
    /// The Tier 1 threshold of an intent.
    pub fn tier1_threshold(&self, intent: Intent) -> f64 {
        use Intent::*;
        match intent {
            ReturnRequest
            | RefundRequest
            | ExchangeRequest
            | CancelOrder
            | AddressChangeOrderEdit
            | CancelSubscription => self.thresholds.tier1_sensitive,
            TechnicalSupport => self.thresholds.tier1_technical,
            _ => self.thresholds.tier1,
        }
    }

    /// The tenant's name for a team, or `None` when the tenant lacks it.
    pub fn tenant_team(&self, team: Team) -> Option<&str> {
        match self.team_names.get(&team) {
            Some(name) if name.trim().is_empty() => None,
            Some(name) => Some(name),
            None => Some(team.as_str()),
        }
    }
}
