//! Optional Shopify Admin GraphQL order source, for tenants whose Richpanel orders
//! lack tracking: when the linked order has no tracking number, its fulfillments
//! and tracking are read from Shopify. If Shopify cannot be read, the lookup fails
//! (fail closed: no order-status reply on half the facts).

use std::sync::Arc;

use async_trait::async_trait;
use mw_core::{
    Fulfillment, Order, OrderLookup, Orders, PortError, Tracking, order_has_tracking,
    parse_timestamp,
};
use serde_json::{Value, json};

use crate::http::{Failed, RetryPolicy, status_failure, transport_failure, with_retries};

const VENDOR: &str = "Shopify";

/// The fulfillment query (Admin GraphQL API).
const ORDER_QUERY: &str = "query OrderTracking($id: ID!) { order(id: $id) { name displayFulfillmentStatus fulfillments(first: 20) { status createdAt trackingInfo(first: 10) { number company url } } } }";

/// How to reach one Shopify store.
#[derive(Clone)]
pub struct ShopifyConfig {
    /// Store root, e.g. `https://example.myshopify.com`.
    pub base_url: String,
    /// Admin API access token (`X-Shopify-Access-Token`). Never logged.
    pub access_token: String,
    /// Admin API version, e.g. `2025-01`.
    pub api_version: String,
    /// Timeouts and retries.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ShopifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyConfig")
            .field("base_url", &self.base_url)
            .field("access_token", &"<redacted>")
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Linked orders from another source, completed with Shopify's tracking.
pub struct ShopifyTracking {
    inner: Arc<dyn Orders>,
    http: reqwest::Client,
    config: ShopifyConfig,
}

impl ShopifyTracking {
    /// Wraps `inner`; fails only when the TLS back-end cannot initialise.
    pub fn new(
        inner: Arc<dyn Orders>,
        config: ShopifyConfig,
    ) -> Result<ShopifyTracking, PortError> {
        let http = crate::http::client(&config.retry)?;
        Ok(ShopifyTracking {
            inner,
            http,
            config,
        })
    }

    /// The Shopify `order` object, or `None` when Shopify does not know it.
    async fn shopify_order(&self, gid: &str) -> Result<Option<Value>, PortError> {
        let url = format!(
            "{}/admin/api/{}/graphql.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version
        );
        let body = json!({"query": ORDER_QUERY, "variables": {"id": gid}});
        let answer: Value = with_retries(&self.config.retry, || async {
            let response = self
                .http
                .post(&url)
                .header("X-Shopify-Access-Token", &self.config.access_token)
                .json(&body)
                .send()
                .await
                .map_err(|error| transport_failure(VENDOR, &error, true))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            if !(200..300).contains(&status) {
                return Err(status_failure(
                    VENDOR,
                    status,
                    &headers,
                    "check MW_SHOPIFY_ACCESS_TOKEN",
                    true,
                ));
            }
            let answer: Value = response.json().await.map_err(|_| {
                Failed::stop(PortError::Invalid(format!(
                    "{VENDOR} answered with a body that is not JSON"
                )))
            })?;
            // GraphQL reports throttling as a 200 with an error code.
            let throttled = answer["errors"].as_array().is_some_and(|errors| {
                errors.iter().any(|error| {
                    error.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED")
                })
            });
            if throttled {
                return Err(Failed::retry(
                    PortError::RateLimited {
                        retry_after_secs: Some(1),
                    },
                    Some(std::time::Duration::from_secs(1)),
                ));
            }
            Ok(answer)
        })
        .await?;
        if answer.get("errors").is_some_and(|errors| !errors.is_null()) {
            return Err(PortError::Invalid(format!(
                "{VENDOR} answered the order query with errors"
            )));
        }
        match answer.pointer("/data/order") {
            Some(Value::Null) => Ok(None),
            Some(order @ Value::Object(_)) => Ok(Some(order.clone())),
            _ => Err(PortError::Invalid(format!(
                "{VENDOR} answered without data.order"
            ))),
        }
    }
}

/// The Shopify global id of a Richpanel order: its `orderDbKey` when that is one,
/// else built from a numeric `orderId`.
fn order_gid(order: &Order, db_key: Option<&str>) -> Option<String> {
    if let Some(key) = db_key.filter(|key| key.starts_with("gid://shopify/Order/")) {
        return Some(key.to_owned());
    }
    let id = order.order_id.as_deref()?;
    id.chars()
        .all(|c| c.is_ascii_digit())
        .then(|| format!("gid://shopify/Order/{id}"))
}

/// Copies Shopify's fulfillments and tracking into the order.
fn merge(order: &mut Order, shopify: &Value) {
    let fulfillments: Vec<Fulfillment> = shopify["fulfillments"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| Fulfillment {
                    id: None,
                    status: item["status"].as_str().map(str::to_lowercase),
                    created_at: item["createdAt"].as_str().and_then(parse_timestamp),
                    tracking: item["trackingInfo"]
                        .as_array()
                        .map(|infos| {
                            infos
                                .iter()
                                .map(|info| Tracking {
                                    tracking_number: info["number"].as_str().map(str::to_owned),
                                    tracking_company: info["company"].as_str().map(str::to_owned),
                                    tracking_url: info["url"].as_str().map(str::to_owned),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    if !fulfillments.is_empty() {
        order.fulfillment = fulfillments;
    }
    if let Some(status) = shopify["displayFulfillmentStatus"].as_str() {
        order.fulfillment_status = Some(status.to_lowercase());
    }
}

#[async_trait]
impl Orders for ShopifyTracking {
    async fn linked_order(&self, conversation_id: &str) -> Result<OrderLookup, PortError> {
        let lookup = self.inner.linked_order(conversation_id).await?;
        let OrderLookup::One { mut order } = lookup else {
            return Ok(lookup);
        };
        if order_has_tracking(&order) {
            return Ok(OrderLookup::One { order });
        }
        let Some(gid) = order_gid(&order, order.order_db_key.as_deref()) else {
            return Ok(OrderLookup::One { order });
        };
        match self.shopify_order(&gid).await {
            Ok(Some(shopify)) => {
                merge(&mut order, &shopify);
                Ok(OrderLookup::One { order })
            }
            Ok(None) => Ok(OrderLookup::One { order }),
            Err(error) => {
                tracing::warn!(error = %error, "Shopify tracking lookup failed; no order-status reply");
                Ok(OrderLookup::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_fulfillments_replace_untracked_ones() {
        let mut order: Order = serde_json::from_value(json!({
            "orderId": "5100000010544", "orderName": "#10544", "fulfillmentStatus": "unfulfilled",
            "fulfillment": [{"status": "pending"}]
        }))
        .unwrap();
        assert_eq!(
            order_gid(&order, None).as_deref(),
            Some("gid://shopify/Order/5100000010544")
        );
        assert_eq!(
            order_gid(&order, Some("gid://shopify/Order/7")).as_deref(),
            Some("gid://shopify/Order/7")
        );
        merge(
            &mut order,
            &json!({"displayFulfillmentStatus": "FULFILLED", "fulfillments": [
                {"status": "SUCCESS", "createdAt": "2026-11-17T10:00:00Z",
                 "trackingInfo": [{"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"}]}]}),
        );
        assert!(order_has_tracking(&order));
        assert_eq!(order.fulfillment_status.as_deref(), Some("fulfilled"));
    }
}
