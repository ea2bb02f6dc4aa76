//! Catalog lint: everything `Catalog::from_strs` checks, plus product rules.

use mw_core::{Channel, Language, Renderer, TemplateCatalog, Variables};
use serde_json::json;

use crate::Catalog;

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintIssue {
    /// Template id (or `catalog`).
    pub template: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for LintIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.template, self.message)
    }
}

/// The templates SPEC §4 requires in catalog v1.
pub const REQUIRED_TEMPLATES: [&str; 19] = [
    "t_order_status_verified",
    "t_shipping_delay_verified",
    "t_order_eta_no_tracking_verified",
    "t_order_status_ask_order_number",
    "t_delivered_not_received_intake",
    "t_missing_items_intake",
    "t_wrong_item_intake",
    "t_damaged_item_intake",
    "t_cancel_order_ack_intake",
    "t_address_change_ack_intake",
    "t_cancel_subscription_ack_intake",
    "t_billing_issue_intake",
    "t_return_request_intake",
    "t_exchange_request_intake",
    "t_refund_request_intake",
    "t_technical_support_intake",
    "t_promo_discount_info",
    "t_pre_purchase_info",
    "t_influencer_inquiry_route",
];

/// A realistic full variable set, used to smoke-render every body.
pub fn sample_variables(language: Language) -> Variables {
    let eta = if language == Language::Es {
        "3 días hábiles"
    } else {
        "3 business days"
    };
    let value = json!({
        "first_name": "Maria", "order_id": "#10482", "order_status": "confirmed",
        "fulfillment_status": "fulfilled", "tracking_number": "1Z999AA10123456784",
        "tracking_company": "UPS", "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "status_url": "https://northwind.example/orders/10482/status",
        "shipments": [
            {"tracking_number": "1Z999AA10123456784", "tracking_company": "UPS", "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"},
            {"tracking_number": "9400111899562537866361", "tracking_company": "USPS", "tracking_url": ""}
        ],
        "shipping_bucket": "Standard", "eta_remaining_human": eta
    });
    serde_json::from_value(value).unwrap_or_default()
}

/// Lints a loaded catalog. An empty list means it passes.
pub fn lint(catalog: &Catalog) -> Vec<LintIssue> {
    let mut issues = Vec::new();
    let mut issue = |template: &str, message: String| {
        issues.push(LintIssue {
            template: template.to_owned(),
            message,
        });
    };
    for id in REQUIRED_TEMPLATES {
        if catalog.template(id).is_none() {
            issue(
                id,
                "required by SPEC §4 but missing from the catalog".into(),
            );
        }
    }
    for spec in catalog.specs() {
        for language in ["en", "es"] {
            match spec.body.get(language) {
                None => issue(
                    &spec.id,
                    format!("has no '{language}' bodies; every template needs English and Spanish"),
                ),
                Some(bodies) => {
                    if spec.channels.contains(&Channel::Livechat)
                        && !bodies.contains_key("livechat")
                    {
                        issue(
                            &spec.id,
                            format!("is allowed on livechat but has no '{language}' livechat body"),
                        );
                    }
                }
            }
        }
        if spec.tier == 0 && spec.enabled {
            issue(
                &spec.id,
                "is a Tier 0 template and must stay disabled (Tier 0 is never automated)".into(),
            );
        }
        if spec.auto_close_allowed && spec.tier != 2 {
            issue(
                &spec.id,
                "allows auto-close but is not Tier 2; only verified Tier 2 replies may close"
                    .into(),
            );
        }
        if spec.channels.is_empty() {
            issue(&spec.id, "allows no channel; list at least one".into());
        }
        for language in [Language::En, Language::Es] {
            for channel in &spec.channels {
                match catalog.render(&spec.id, language, *channel, &sample_variables(language)) {
                    Ok(body) if body.trim().is_empty() => {
                        issue(
                            &spec.id,
                            format!("renders an empty {language}/{channel} body"),
                        );
                    }
                    Ok(body)
                        if body.contains("{{")
                            || body.contains("{%")
                            || body.contains("none") && body.contains("None") =>
                    {
                        issue(
                            &spec.id,
                            format!(
                                "{language}/{channel} leaves template syntax or None in the output"
                            ),
                        );
                    }
                    Ok(_) => {}
                    Err(error) => issue(
                        &spec.id,
                        format!(
                            "{language}/{channel} does not render with a full variable set: {error}"
                        ),
                    ),
                }
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_lint_clean() {
        let catalog = Catalog::embedded().unwrap();
        let issues = lint(&catalog);
        assert!(issues.is_empty(), "{issues:#?}");
    }
}
