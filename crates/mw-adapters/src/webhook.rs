//! The webhook contract (SPEC §7): authentication (static token, HMAC with
//! timestamp, URL token; several active secrets for rotation; constant-time),
//! payload validation against `schemas/webhook_v1.json`, and event parsing.

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use mw_core::{Channel, Customer, InboundEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `webhook_v1` JSON Schema text, as shipped in `schemas/`.
pub const WEBHOOK_SCHEMA_JSON: &str = include_str!("../../../schemas/webhook_v1.json");

static WEBHOOK_VALIDATOR: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(WEBHOOK_SCHEMA_JSON).ok()?;
    jsonschema::validator_for(&schema).ok()
});

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// How callers authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// A static token in a header (default `x-richpanel-webhook-token`).
    Token {
        /// Header name (case-insensitive).
        header: String,
    },
    /// HMAC-SHA256 over `timestamp + "." + raw_body`, hex in `X-Signature`
    /// (optionally prefixed `sha256=`), Unix seconds in `X-Timestamp`.
    Hmac {
        /// Accepted clock skew, seconds (default 300).
        window_secs: i64,
    },
    /// A token in the URL query (`?token=…`), for callers that cannot set headers.
    UrlToken,
}

/// Webhook authentication: one mode, one or more active secrets.
#[derive(Clone)]
pub struct WebhookAuth {
    mode: AuthMode,
    /// SHA-256 of each secret (tokens are compared as digests, in constant time).
    digests: Vec<[u8; 32]>,
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("mode", &self.mode)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl WebhookAuth {
    /// Auth with these secrets. Empty secrets are ignored; with none left, every
    /// request is rejected (never an open endpoint).
    pub fn new(mode: AuthMode, secrets: &[String]) -> WebhookAuth {
        let secrets: Vec<Vec<u8>> = secrets
            .iter()
            .map(|secret| secret.trim().as_bytes().to_vec())
            .filter(|secret| !secret.is_empty())
            .collect();
        WebhookAuth {
            mode,
            digests: secrets.iter().map(|s| sha256(s)).collect(),
            secrets,
        }
    }

    /// The mode.
    pub fn mode(&self) -> &AuthMode {
        &self.mode
    }

    fn token_matches(&self, candidate: &[u8]) -> bool {
        let digest = sha256(candidate);
        let mut matched = subtle::Choice::from(0);
        for secret in &self.digests {
            matched |= secret.ct_eq(&digest);
        }
        bool::from(matched)
    }

    /// Whether the request is authentic. `now_secs` is Unix time.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now_secs: i64,
    ) -> bool {
        if self.secrets.is_empty() {
            return false;
        }
        match &self.mode {
            AuthMode::Token { header } => headers
                .get(header.as_str())
                .is_some_and(|value| self.token_matches(value.as_bytes())),
            AuthMode::UrlToken => query
                .and_then(|query| {
                    query
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("token="))
                        .map(str::to_owned)
                })
                .is_some_and(|token| self.token_matches(token.as_bytes())),
            AuthMode::Hmac { window_secs } => {
                let (Some(signature), Some(timestamp)) =
                    (headers.get("x-signature"), headers.get("x-timestamp"))
                else {
                    return false;
                };
                let Some(timestamp) = timestamp
                    .to_str()
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                else {
                    return false;
                };
                if (now_secs - timestamp).abs() > *window_secs {
                    return false;
                }
                let signature = signature.to_str().unwrap_or_default().trim();
                let Ok(signature) =
                    hex::decode(signature.strip_prefix("sha256=").unwrap_or(signature))
                else {
                    return false;
                };
                let mut matched = false;
                for secret in &self.secrets {
                    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                        continue;
                    };
                    mac.update(timestamp.to_string().as_bytes());
                    mac.update(b".");
                    mac.update(body);
                    matched |= mac.verify_slice(&signature).is_ok();
                }
                matched
            }
        }
    }

    /// Signs a body the way a caller must in HMAC mode (`sha256=<hex>`).
    pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return String::new();
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Why a payload was rejected (400). Messages never quote the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON.
    #[error("the body is not valid JSON ({0}); send a JSON object")]
    NotJson(String),
    /// Fails `webhook_v1`.
    #[error("the body does not match webhook_v1 at '{path}': {message}")]
    Schema {
        /// JSON pointer.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The schema could not be compiled (a build defect).
    #[error("the webhook schema is unavailable; rebuild from a clean checkout")]
    SchemaUnavailable,
}

/// Sorts object keys recursively, so equal payloads hash equally.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A string or numeric id as a string.
pub(crate) fn id_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A webhook id: a non-empty string, or a whole number up to 2^53 − 1 (the schema's
/// bound: JSON's safe integers), written `42` or `42.0`. Ids are kept exactly as the
/// caller meant them: a number that is not whole counts as absent.
fn webhook_id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|id| id.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(id))
                    .map(|id| id as u64)
            })
            .map(|id| id.to_string()),
        other => id_string(Some(other)),
    }
}

fn text_field(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|text| !text.trim().is_empty())
}

/// Parses and validates a body into an event.
pub fn parse_payload(body: &[u8]) -> Result<(InboundEvent, Value), PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    let validator = WEBHOOK_VALIDATOR
        .as_ref()
        .ok_or(PayloadError::SchemaUnavailable)?;
    if !validator.is_valid(&value)
        && let Some(error) = validator.iter_errors(&value).next()
    {
        return Err(PayloadError::Schema {
            path: error.instance_path().to_string(),
            message: error.masked().to_string(),
        });
    }
    let conversation_id = ["conversation_id", "ticket_id", "id"]
        .iter()
        .find_map(|key| webhook_id(value.get(*key)))
        .ok_or_else(|| PayloadError::Schema {
            path: String::new(),
            message: "a conversation id is required".into(),
        })?;
    let customer = value.get("customer");
    let event = InboundEvent {
        conversation_id,
        message_id: webhook_id(value.get("message_id"))
            .or_else(|| webhook_id(value.get("dedupe_id"))),
        event_id: webhook_id(value.get("event_id")),
        channel: value
            .get("channel")
            .and_then(Value::as_str)
            .and_then(Channel::from_richpanel),
        text: text_field(&value, "text"),
        customer: Customer {
            id: customer.and_then(|c| text_field(c, "id")),
            name: customer
                .and_then(|c| text_field(c, "name"))
                .or_else(|| text_field(&value, "customer_name")),
            email: customer
                .and_then(|c| text_field(c, "email"))
                .or_else(|| text_field(&value, "customer_email")),
        },
    };
    Ok((event, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_compiles() {
        assert!(WEBHOOK_VALIDATOR.is_some());
    }

    #[test]
    fn payloads_parse_with_every_id_spelling() {
        for body in [
            r#"{"conversation_id":"t_1"}"#,
            r#"{"ticket_id":"t_1"}"#,
            r#"{"id":"t_1"}"#,
        ] {
            assert_eq!(
                parse_payload(body.as_bytes()).unwrap().0.conversation_id,
                "t_1"
            );
        }
        let (event, _) = parse_payload(br#"{"ticket_id": 42, "message_id": 7, "channel": "Chat", "text": "hi", "customer_name": "Ana"}"#).unwrap();
        assert_eq!(event.conversation_id, "42");
        assert_eq!(event.message_id.as_deref(), Some("7"));
        assert_eq!(event.channel, Some(Channel::Livechat));
        assert_eq!(event.customer.name.as_deref(), Some("Ana"));
    }

    #[test]
    fn bad_payloads_are_rejected_clearly() {
        assert!(matches!(
            parse_payload(b"not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            parse_payload(br#"{"text":"no id"}"#),
            Err(PayloadError::Schema { .. })
        ));
        assert!(matches!(
            parse_payload(br#"{"conversation_id":"../../etc"}"#),
            Err(PayloadError::Schema { .. })
        ));
        assert!(matches!(
            parse_payload(br#"[1,2]"#),
            Err(PayloadError::Schema { .. })
        ));
    }

    #[test]
    fn numeric_ids_are_kept_exactly_or_not_at_all() {
        // Found by the `webhook_payload` fuzz target: a 57-digit id became "1.7e+56".
        let huge = br#"{"id": 170000000000000000000000000000000000000000000000000000005}"#;
        assert!(matches!(
            parse_payload(huge),
            Err(PayloadError::Schema { .. })
        ));
        let too_big = br#"{"ticket_id": 9007199254740992}"#;
        assert!(matches!(
            parse_payload(too_big),
            Err(PayloadError::Schema { .. })
        ));
        let (event, _) =
            parse_payload(br#"{"ticket_id": 9007199254740991, "message_id": 1e3}"#).unwrap();
        assert_eq!(event.conversation_id, "9007199254740991");
        assert_eq!(event.message_id.as_deref(), Some("1000"));
        let (event, _) = parse_payload(br#"{"ticket_id": 0.0}"#).unwrap();
        assert_eq!(event.conversation_id, "0");
    }

    #[test]
    fn tokens_rotate_and_compare_in_constant_time() {
        let auth = WebhookAuth::new(
            AuthMode::Token {
                header: "x-richpanel-webhook-token".into(),
            },
            &["old".into(), "new".into()],
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-richpanel-webhook-token", "new".parse().unwrap());
        assert!(auth.verify(&headers, None, b"", 0));
        headers.insert("x-richpanel-webhook-token", "old".parse().unwrap());
        assert!(auth.verify(&headers, None, b"", 0));
        headers.insert("x-richpanel-webhook-token", "nope".parse().unwrap());
        assert!(!auth.verify(&headers, None, b"", 0));
        assert!(
            !WebhookAuth::new(AuthMode::Token { header: "x".into() }, &[]).verify(
                &HeaderMap::new(),
                None,
                b"",
                0
            )
        );
    }

    #[test]
    fn hmac_checks_signature_and_window() {
        let auth = WebhookAuth::new(AuthMode::Hmac { window_secs: 300 }, &["s3cret".into()]);
        let body = br#"{"conversation_id":"t_1"}"#;
        let mut headers = HeaderMap::new();
        headers.insert("x-timestamp", "1000".parse().unwrap());
        headers.insert(
            "x-signature",
            WebhookAuth::sign("s3cret", 1000, body).parse().unwrap(),
        );
        assert!(auth.verify(&headers, None, body, 1100));
        assert!(
            !auth.verify(&headers, None, body, 1000 + 301),
            "replay outside the window"
        );
        assert!(!auth.verify(&headers, None, b"{}", 1100), "tampered body");
        let url = WebhookAuth::new(AuthMode::UrlToken, &["tok".into()]);
        assert!(url.verify(&HeaderMap::new(), Some("a=1&token=tok"), body, 0));
        assert!(!url.verify(&HeaderMap::new(), Some("token=bad"), body, 0));
    }
}
