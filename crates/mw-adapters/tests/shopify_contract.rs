//! The Shopify tracking source against a small fake of the Admin GraphQL endpoint
//! (`POST /admin/api/{version}/graphql.json`, `X-Shopify-Access-Token`, answers
//! `{"data":{"order":…}}`, throttling as a 200 with `THROTTLED`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use mw_adapters::http::RetryPolicy;
use mw_adapters::shopify::{ShopifyConfig, ShopifyTracking};
use mw_core::{Order, OrderLookup, Orders, PortError, order_has_tracking};
use serde_json::{Value, json};

const TOKEN: &str = "shpat_test";

#[derive(Clone, Default)]
struct Shop {
    requests: Arc<Mutex<Vec<Value>>>,
    throttle_first: Arc<Mutex<bool>>,
}

async fn graphql(
    State(shop): State<Shop>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    shop.requests.lock().unwrap().push(body.clone());
    if headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": "[API] Invalid API key or access token"})),
        );
    }
    if version != "2025-01" {
        return (StatusCode::NOT_FOUND, Json(json!({"errors": "Not Found"})));
    }
    if std::mem::take(&mut *shop.throttle_first.lock().unwrap()) {
        return (
            StatusCode::OK,
            Json(
                json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}),
            ),
        );
    }
    let order = match body.pointer("/variables/id").and_then(Value::as_str) {
        Some("gid://shopify/Order/5100000010544") => json!({
            "name": "#10544", "displayFulfillmentStatus": "FULFILLED",
            "fulfillments": [{"status": "SUCCESS", "createdAt": "2026-11-17T10:00:00Z",
                "trackingInfo": [{"number": "1Z999AA10123456784", "company": "UPS", "url": "https://ups.example/1Z999AA10123456784"}]}]}),
        _ => Value::Null,
    };
    (
        StatusCode::OK,
        Json(json!({"data": {"order": order}, "extensions": {"cost": {"requestedQueryCost": 12}}})),
    )
}

/// Richpanel's side: one linked order without tracking.
struct Untracked(&'static str);

#[async_trait]
impl Orders for Untracked {
    async fn linked_order(&self, _conversation_id: &str) -> Result<OrderLookup, PortError> {
        let order: Order = serde_json::from_value(json!({"orderId": self.0, "orderName": "#10544",
            "fulfillmentStatus": "unfulfilled", "fulfillment": []}))
        .unwrap();
        Ok(OrderLookup::One {
            order: Box::new(order),
        })
    }
}

async fn start(shop: Shop) -> String {
    let app = Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql))
        .with_state(shop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn tracking(url: &str, token: &str, order_id: &'static str) -> ShopifyTracking {
    ShopifyTracking::new(
        Arc::new(Untracked(order_id)),
        ShopifyConfig {
            base_url: url.into(),
            access_token: token.into(),
            api_version: "2025-01".into(),
            retry: RetryPolicy {
                timeout: Duration::from_secs(2),
                attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                deadline: Duration::from_secs(5),
            },
        },
    )
    .unwrap()
}

#[tokio::test]
async fn tracking_is_read_from_shopify_when_richpanel_has_none() {
    let shop = Shop::default();
    *shop.throttle_first.lock().unwrap() = true;
    let url = start(shop.clone()).await;
    let lookup = tracking(&url, TOKEN, "5100000010544")
        .linked_order("t1")
        .await
        .unwrap();
    let OrderLookup::One { order } = lookup else {
        panic!("{lookup:?}")
    };
    assert!(order_has_tracking(&order));
    assert_eq!(order.fulfillment_status.as_deref(), Some("fulfilled"));
    let requests = shop.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "throttled once, then answered");
    assert_eq!(
        requests[1]["variables"],
        json!({"id": "gid://shopify/Order/5100000010544"})
    );
    assert!(
        requests[1]["query"]
            .as_str()
            .unwrap()
            .contains("trackingInfo")
    );

    // Unknown to Shopify: the Richpanel order as it was.
    let lookup = tracking(&url, TOKEN, "42")
        .linked_order("t1")
        .await
        .unwrap();
    let OrderLookup::One { order } = lookup else {
        panic!("{lookup:?}")
    };
    assert!(!order_has_tracking(&order));

    // A wrong token: the lookup fails closed.
    let lookup = tracking(&url, "wrong", "5100000010544")
        .linked_order("t1")
        .await
        .unwrap();
    assert_eq!(lookup, OrderLookup::Failed);
}
