//! The webhook ingress handler (`POST /webhook/richpanel`), on plain `http` types
//! so the local server and the Lambda function share it. 2xx only after a durable
//! enqueue; 400 with a clear message, 401 with none, 413, 429.

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{Request, Response, StatusCode, header};
use mw_core::{Enqueued, Queue, ingress_event_key};
use serde_json::json;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::webhook::{MAX_BODY_BYTES, WebhookAuth, canonical, parse_payload};

/// Throttle settings (token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Burst size.
    pub burst: u32,
}

/// The ingress handler.
pub struct Ingress {
    auth: WebhookAuth,
    queue: Arc<dyn Queue>,
    limiter: Option<DefaultDirectRateLimiter>,
    metrics: Arc<Metrics>,
    wake: Option<Arc<Notify>>,
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl Ingress {
    /// A handler storing into `queue`; `throttle: None` disables throttling.
    pub fn new(
        auth: WebhookAuth,
        queue: Arc<dyn Queue>,
        throttle: Option<Throttle>,
        metrics: Arc<Metrics>,
    ) -> Ingress {
        let limiter = throttle.and_then(|throttle| {
            let per_second = NonZeroU32::new(throttle.per_second)?;
            let burst = NonZeroU32::new(throttle.burst.max(1))?;
            Some(RateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ))
        });
        Ingress {
            auth,
            queue,
            limiter,
            metrics,
            wake: None,
        }
    }

    /// Wakes idle workers after each enqueue.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Ingress {
        self.wake = Some(wake);
        self
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<String> {
        let (parts, body) = request.into_parts();
        if body.len() > MAX_BODY_BYTES {
            self.metrics.event_rejected("too_large");
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"status": "error", "error": format!("the body is larger than {MAX_BODY_BYTES} bytes; send only ids and short fields")}),
            );
        }
        if !self.auth.verify(
            &parts.headers,
            parts.uri.query(),
            &body,
            Utc::now().timestamp(),
        ) {
            self.metrics.event_rejected("unauthorized");
            return respond(StatusCode::UNAUTHORIZED, json!({"status": "unauthorized"}));
        }
        if let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            self.metrics.event_rejected("throttled");
            let mut response = respond(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"status": "throttled", "error": "too many requests; retry shortly"}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return response;
        }
        let (event, payload) = match parse_payload(&body) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.metrics.event_rejected("invalid");
                return respond(
                    StatusCode::BAD_REQUEST,
                    json!({"status": "error", "error": error.to_string()}),
                );
            }
        };
        let canonical_bytes = serde_json::to_vec(&canonical(&payload)).unwrap_or_default();
        let event_key = ingress_event_key(&event, &canonical_bytes);
        match self
            .queue
            .enqueue(
                &event.conversation_id,
                &event_key,
                &canonical_bytes,
                Utc::now(),
            )
            .await
        {
            Ok(Enqueued::Accepted) => {
                self.metrics.event_accepted("accepted");
                info!(correlation_id = %crate::worker::correlation_id(&event_key), "event accepted");
                if let Some(wake) = &self.wake {
                    wake.notify_one();
                }
                respond(
                    StatusCode::OK,
                    json!({"status": "accepted", "event_id": event_key}),
                )
            }
            Ok(Enqueued::Duplicate) => {
                self.metrics.event_accepted("duplicate");
                respond(
                    StatusCode::OK,
                    json!({"status": "duplicate", "event_id": event_key}),
                )
            }
            Err(error) => {
                self.metrics.event_rejected("store_failed");
                warn!(error = %error, "could not store an event");
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "error", "error": "the event could not be stored; retry"}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::DateTime;
    use mw_core::{Delivery, PortError};

    use crate::webhook::AuthMode;

    /// A queue whose storage is down.
    struct Unavailable;

    #[async_trait]
    impl Queue for Unavailable {
        async fn enqueue(
            &self,
            _: &str,
            _: &str,
            _: &[u8],
            _: DateTime<Utc>,
        ) -> Result<Enqueued, PortError> {
            Err(PortError::Unavailable("disk full".into()))
        }
        async fn receive(
            &self,
            _: usize,
            _: std::time::Duration,
            _: DateTime<Utc>,
        ) -> Result<Vec<Delivery>, PortError> {
            Ok(Vec::new())
        }
        async fn ack(&self, _: &str) -> Result<(), PortError> {
            Ok(())
        }
        async fn release(&self, _: &str, _: &str, _: DateTime<Utc>) -> Result<(), PortError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_enqueue_is_a_503_never_a_2xx() {
        let auth = WebhookAuth::new(
            AuthMode::Token {
                header: "x-richpanel-webhook-token".into(),
            },
            &["t".into()],
        );
        let metrics = Arc::new(Metrics::new());
        let ingress = Ingress::new(auth, Arc::new(Unavailable), None, metrics.clone());
        let request = Request::builder()
            .method("POST")
            .uri("/webhook/richpanel")
            .header("x-richpanel-webhook-token", "t")
            .body(Bytes::from_static(br#"{"ticket_id":"t_1","text":"hello"}"#))
            .unwrap();
        let response = ingress.handle(request).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !response.body().contains("disk full"),
            "no internal detail leaks"
        );
        assert!(
            metrics
                .render(Default::default())
                .contains("mw_events_rejected_total{reason=\"store_failed\"} 1")
        );
    }
}
