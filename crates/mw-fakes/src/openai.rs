//! Fake OpenAI Chat Completions server.
//!
//! Choices where the documentation is silent or the real API is more permissive:
//!
//! * Every `POST /v1/chat/completions` body is recorded by [`FakeOpenAi::requests`] before any
//!   check (a non-JSON body is recorded as a JSON string holding the raw text), so
//!   [`FakeOpenAi::calls_for_schema`] also counts requests answered 401 or 400.
//! * Authentication is checked first, then validation; neither consumes a scripted reply.
//! * The fake is stricter than the real API: only `system`/`developer`/`user`/`assistant` roles
//!   with string `content` are accepted (no tool messages, no content-part arrays), and a
//!   `json_schema` response format must carry a `schema` object.
//! * Strict-mode errors use the real API's wording: `Invalid schema for response_format
//!   '<name>': In context=('properties', 'x'), …`, with `param` `response_format`.
//! * Token usage is estimated as characters / 4 (at least 1). `x-ratelimit-remaining-requests`
//!   counts down from 10000 per minute (aligned to server start) and is never enforced.
//! * Reply order: scripted replies first, then a random fault from [`FakeOpenAi::set_chaos`]
//!   (if one is drawn), then the responder.

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};

use crate::chaos::Chaos;
use crate::server::{self, Outcome, Req, Server};

/// What the fake answers to one (valid, authenticated) chat completion request.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeReply {
    /// 200; `choices[0].message.content` is this value serialized to a string, `finish_reason`
    /// `stop`, `refusal` null.
    Content(Value),
    /// 200 with this literal content string (e.g. invalid JSON).
    RawContent(String),
    /// 200; `message.content` null, `message.refusal` this text, `finish_reason` `stop`.
    Refusal(String),
    /// 200; `finish_reason` `length`, content this (partial) string.
    Truncated(String),
    /// An error answer, e.g. 429 `insufficient_quota`, 429 `rate_limit_exceeded` with
    /// `retry-after`, 500, 503, 401 `invalid_api_key`.
    Status {
        /// HTTP status code.
        status: u16,
        /// JSON body, typically `{"error":{"message":…,"type":…,"code":…}}`.
        body: Value,
        /// `retry-after` header value in seconds, if any.
        retry_after: Option<u64>,
    },
    /// Wait, then answer with the inner reply.
    Delay(Duration, Box<FakeReply>),
    /// 200 with a body that is not JSON.
    NonJson,
    /// Close the connection without any answer (a dropped response).
    Reset,
}

impl FakeReply {
    /// An OpenAI-style error reply: `{"error":{"message","type","param":null,"code"}}`.
    pub fn error(
        status: u16,
        kind: &str,
        code: Option<&str>,
        message: &str,
        retry_after: Option<u64>,
    ) -> Self {
        let body =
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
        FakeReply::Status {
            status,
            body,
            retry_after,
        }
    }
}

type Responder = Arc<dyn Fn(&Value) -> FakeReply + Send + Sync>;

struct Inner {
    responder: Responder,
    script: VecDeque<FakeReply>,
    chaos: Option<Chaos<FakeReply>>,
    requests: Vec<Value>,
    served: u64,
    window: (u64, u32),
}

struct Shared {
    api_key: String,
    started: Instant,
    state: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake OpenAI server. Stops on [`FakeOpenAi::stop`] or when dropped.
pub struct FakeOpenAi {
    shared: Arc<Shared>,
    server: Server,
    base_url: String,
}

impl fmt::Debug for FakeOpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeOpenAi")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeOpenAi {
    /// Starts on 127.0.0.1 with an ephemeral port; requires `Authorization: Bearer <api_key>`.
    pub async fn start(api_key: &str) -> std::io::Result<FakeOpenAi> {
        let (listener, addr) = Server::bind().await?;
        let no_responder: Responder = Arc::new(|_| {
            FakeReply::error(
                500,
                "server_error",
                None,
                "FakeOpenAi: no responder configured",
                None,
            )
        });
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            started: Instant::now(),
            state: Mutex::new(Inner {
                responder: no_responder,
                script: VecDeque::new(),
                chaos: None,
                requests: Vec::new(),
                served: 0,
                window: (0, 0),
            }),
        });
        let for_handler = shared.clone();
        let server = Server::spawn(
            listener,
            Arc::new(move |req| Box::pin(handle(for_handler.clone(), req))),
        );
        Ok(FakeOpenAi {
            shared,
            server,
            base_url: format!("http://{addr}/v1"),
        })
    }

    /// `http://127.0.0.1:PORT/v1`; the endpoint is `POST {base_url}/chat/completions`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Computes the reply from the request body once the script is exhausted.
    pub fn set_responder(&self, f: impl Fn(&Value) -> FakeReply + Send + Sync + 'static) {
        self.shared.lock().responder = Arc::new(f);
    }

    /// Appends one-shot replies, used in order before the responder.
    pub fn script(&self, replies: Vec<FakeReply>) {
        self.shared.lock().script.extend(replies);
    }

    /// Random faults (`None` stops them): a valid chat completion request that no
    /// scripted reply is left for draws from `chaos` before the responder is asked.
    pub fn set_chaos(&self, chaos: Option<Chaos<FakeReply>>) {
        self.shared.lock().chaos = chaos;
    }

    /// `(requests seen, faults injected)` by the chaos settings, if any.
    pub fn chaos_counts(&self) -> Option<(u64, u64)> {
        self.shared.lock().chaos.as_ref().map(Chaos::counts)
    }

    /// Every chat completion request body received, including failed ones.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// How many recorded requests have `response_format.json_schema.name == name`.
    pub fn calls_for_schema(&self, name: &str) -> usize {
        let st = self.shared.lock();
        st.requests
            .iter()
            .filter(|r| r["response_format"]["json_schema"]["name"] == name)
            .count()
    }

    /// Stops the server, aborting in-flight requests.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn error_body(message: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

async fn handle(shared: Arc<Shared>, req: Req) -> Outcome {
    let authorized = req.headers.get_all("authorization").iter().any(|v| {
        let v = String::from_utf8_lossy(v.as_bytes());
        v.split_once(' ').is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == shared.api_key
        })
    });
    let minute = shared.started.elapsed().as_secs() / 60;
    let (n, remaining) = {
        let mut st = shared.lock();
        st.served += 1;
        if st.window.0 != minute {
            st.window = (minute, 0);
        }
        st.window.1 = st.window.1.saturating_add(1);
        (st.served, 10_000u32.saturating_sub(st.window.1))
    };
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let is_chat = req.method.as_str() == "POST" && segs == ["v1", "chat", "completions"];
    let mut body_value = Value::Null;
    if is_chat {
        body_value = serde_json::from_slice(&req.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
        shared.lock().requests.push(body_value.clone());
    }
    let (status, body, retry_after) = if !authorized {
        let msg = "Incorrect API key provided";
        (
            401,
            Some(error_body(msg, None, Some("invalid_api_key"))),
            None,
        )
    } else if req.too_large {
        (
            413,
            Some(error_body("Request body too large", None, None)),
            None,
        )
    } else if is_chat {
        match validate(&req.body) {
            Err((param, msg, code)) => (400, Some(error_body(&msg, param.as_deref(), code)), None),
            Ok(()) => {
                let (scripted, responder) = {
                    let mut st = shared.lock();
                    let scripted = st.script.pop_front();
                    let scripted = scripted.or_else(|| st.chaos.as_mut().and_then(Chaos::draw));
                    (scripted, st.responder.clone())
                };
                let mut reply = scripted.unwrap_or_else(|| responder(&body_value));
                while let FakeReply::Delay(d, inner) = reply {
                    tokio::time::sleep(d).await;
                    reply = *inner;
                }
                if reply == FakeReply::Reset {
                    return Outcome::Reset;
                }
                render(reply, &body_value, n)
            }
        }
    } else if let ("GET", ["v1", "models", model]) = (req.method.as_str(), segs.as_slice()) {
        let m =
            json!({"id": model, "object": "model", "created": 1_686_935_002, "owned_by": "openai"});
        (200, Some(m), None)
    } else {
        let msg = format!("Invalid URL ({} {})", req.method, req.path);
        (404, Some(error_body(&msg, None, None)), None)
    };
    let mut resp = match body {
        Some(b) => server::json(status, &b),
        None => server::response(
            status,
            "<html><body>upstream hiccup</body></html>",
            "text/html",
        ),
    };
    let request_id = format!("req_fake{n:024x}");
    let remaining = remaining.to_string();
    for (name, value) in [
        ("x-request-id", request_id.as_str()),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", remaining.as_str()),
        ("x-ratelimit-limit-tokens", "2000000"),
        ("x-ratelimit-remaining-tokens", "1999000"),
        ("openai-processing-ms", "1"),
    ] {
        server::set_header(&mut resp, name, value);
    }
    if let Some(s) = retry_after {
        server::set_header(&mut resp, "retry-after", &s.to_string());
    }
    Outcome::Respond(resp)
}

/// `(status, body (None = non-JSON), retry-after)` for a reply.
fn render(reply: FakeReply, request: &Value, n: u64) -> (u16, Option<Value>, Option<u64>) {
    let (content, refusal, finish) = match reply {
        FakeReply::Content(v) => (Value::String(v.to_string()), Value::Null, "stop"),
        FakeReply::RawContent(s) => (Value::String(s), Value::Null, "stop"),
        FakeReply::Refusal(s) => (Value::Null, Value::String(s), "stop"),
        FakeReply::Truncated(s) => (Value::String(s), Value::Null, "length"),
        FakeReply::Status {
            status,
            body,
            retry_after,
        } => return (status, Some(body), retry_after),
        FakeReply::NonJson => return (200, None, None),
        // Resets are handled by the caller, which closes the connection instead.
        FakeReply::Reset => return (502, None, None),
        // Delays are unwrapped by the caller; a nested one here answers immediately.
        FakeReply::Delay(_, inner) => return render(*inner, request, n),
    };
    let tokens = |chars: usize| u64::try_from(chars / 4).unwrap_or(u64::MAX).max(1);
    let prompt_chars: usize = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["content"].as_str().map_or(0, str::len) + 16)
        .sum();
    let completion_chars = content.as_str().or(refusal.as_str()).map_or(0, str::len);
    let (prompt_tokens, completion_tokens) = (tokens(prompt_chars), tokens(completion_chars));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = json!({
        "id": format!("chatcmpl-fake{n:020}"),
        "object": "chat.completion",
        "created": created,
        "model": request["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
            "finish_reason": finish,
            "logprobs": null
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake"
    });
    (200, Some(body), None)
}

/// `(param, message, code)` of a 400.
type Invalid = (Option<String>, String, Option<&'static str>);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn missing(param: &str) -> Invalid {
    (
        Some(param.to_owned()),
        format!("Missing required parameter: '{param}'."),
        Some("missing_required_parameter"),
    )
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> Invalid {
    let msg = format!(
        "Invalid type for '{param}': expected {expected}, but got {} instead.",
        type_name(got)
    );
    (Some(param.to_owned()), msg, Some("invalid_type"))
}

/// The request validation the real API performs (the subset this fake supports).
fn validate(body: &[u8]) -> Result<(), Invalid> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        let msg = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";
        (None, msg.to_owned(), None)
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| wrong_type("body", "an object", &v))?;
    match obj.get("model") {
        None => return Err((None, "you must provide a model parameter".into(), None)),
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(other) => return Err(wrong_type("model", "a string", other)),
    }
    let messages = obj.get("messages").ok_or_else(|| missing("messages"))?;
    let messages = messages
        .as_array()
        .ok_or_else(|| wrong_type("messages", "an array", messages))?;
    if messages.is_empty() {
        let msg = "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.";
        return Err((Some("messages".into()), msg.into(), Some("empty_array")));
    }
    for (i, m) in messages.iter().enumerate() {
        let p = format!("messages[{i}]");
        let m = m
            .as_object()
            .ok_or_else(|| wrong_type(&p, "an object", m))?;
        let role = m.get("role").ok_or_else(|| missing(&format!("{p}.role")))?;
        if !role
            .as_str()
            .is_some_and(|r| ["system", "developer", "user", "assistant"].contains(&r))
        {
            let msg = format!(
                "Invalid value: {role}. Supported values are: 'system', 'developer', 'user', and 'assistant'."
            );
            return Err((Some(format!("{p}.role")), msg, Some("invalid_value")));
        }
        let content = m
            .get("content")
            .ok_or_else(|| missing(&format!("{p}.content")))?;
        if !content.is_string() {
            return Err(wrong_type(&format!("{p}.content"), "a string", content));
        }
    }
    if let Some(rf) = obj.get("response_format") {
        validate_response_format(rf)?;
    }
    Ok(())
}

fn validate_response_format(rf: &Value) -> Result<(), Invalid> {
    let rf = rf
        .as_object()
        .ok_or_else(|| wrong_type("response_format", "an object", rf))?;
    let kind = rf
        .get("type")
        .ok_or_else(|| missing("response_format.type"))?;
    match kind.as_str() {
        Some("text" | "json_object") => return Ok(()),
        Some("json_schema") => {}
        _ => {
            let msg = format!(
                "Invalid value: {kind}. Supported values are: 'text', 'json_object', and 'json_schema'."
            );
            return Err((
                Some("response_format.type".into()),
                msg,
                Some("invalid_value"),
            ));
        }
    }
    let js = rf
        .get("json_schema")
        .ok_or_else(|| missing("response_format.json_schema"))?;
    let js = js
        .as_object()
        .ok_or_else(|| wrong_type("response_format.json_schema", "an object", js))?;
    let name = js
        .get("name")
        .ok_or_else(|| missing("response_format.json_schema.name"))?;
    let name = name
        .as_str()
        .ok_or_else(|| wrong_type("response_format.json_schema.name", "a string", name))?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        let msg = "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.";
        return Err((
            Some("response_format.json_schema.name".into()),
            msg.into(),
            Some("invalid_value"),
        ));
    }
    let schema = js.get("schema").unwrap_or(&Value::Null);
    if !schema.is_object() {
        return Err(wrong_type(
            "response_format.json_schema.schema",
            "an object",
            schema,
        ));
    }
    if js.get("strict") == Some(&Value::Bool(true)) {
        let fail = |problem: String| {
            let msg = format!("Invalid schema for response_format '{name}': {problem}");
            (Some("response_format".to_owned()), msg, None)
        };
        if schema.get("type") != Some(&json!("object")) {
            let got = schema
                .get("type")
                .map_or("None".to_owned(), Value::to_string);
            return Err(fail(format!(
                "schema must be a JSON Schema of 'type: \"object\"', got 'type: {got}'."
            )));
        }
        check_strict(schema, &mut Vec::new()).map_err(fail)?;
    }
    Ok(())
}

fn context(ctx: &[String]) -> String {
    let parts: Vec<String> = ctx.iter().map(|c| format!("'{c}'")).collect();
    match parts.len() {
        1 => format!("In context=({},), ", parts[0]),
        _ => format!("In context=({}), ", parts.join(", ")),
    }
}

/// OpenAI strict-mode rules: every object schema has `additionalProperties: false` and lists
/// all of its properties (and nothing else) in `required`; applied recursively.
fn check_strict(schema: &Value, ctx: &mut Vec<String>) -> Result<(), String> {
    let Some(m) = schema.as_object() else {
        return Ok(());
    };
    let is_object = m.contains_key("properties")
        || match m.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        };
    let empty = Map::new();
    let props = m
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if is_object {
        if m.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(format!(
                "{}'additionalProperties' is required to be supplied and to be false.",
                context(ctx)
            ));
        }
        let required: Vec<&str> = m
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let base = "'required' is required to be supplied and to be an array including every key in properties.";
        if !m.get("required").is_some_and(Value::is_array) && !props.is_empty() {
            return Err(format!("{}{base}", context(ctx)));
        }
        if let Some(k) = props.keys().find(|k| !required.contains(&k.as_str())) {
            return Err(format!("{}{base} Missing '{k}'.", context(ctx)));
        }
        if let Some(k) = required.iter().find(|k| !props.contains_key(**k)) {
            return Err(format!(
                "{}Extra required key '{k}' supplied.",
                context(ctx)
            ));
        }
    }
    let mut children: Vec<(Vec<String>, &Value)> = Vec::new();
    for (k, v) in props {
        children.push((vec!["properties".into(), k.clone()], v));
    }
    for key in ["$defs", "definitions"] {
        for (k, v) in m.get(key).and_then(Value::as_object).into_iter().flatten() {
            children.push((vec![key.into(), k.clone()], v));
        }
    }
    match m.get("items") {
        Some(Value::Array(items)) => {
            children.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (vec!["items".into(), i.to_string()], v)),
            );
        }
        Some(v) => children.push((vec!["items".into()], v)),
        None => {}
    }
    for key in ["anyOf", "allOf", "oneOf", "prefixItems"] {
        for (i, v) in m
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            children.push((vec![key.into(), i.to_string()], v));
        }
    }
    for (path, child) in children {
        let depth = ctx.len();
        ctx.extend(path);
        check_strict(child, ctx)?;
        ctx.truncate(depth);
    }
    Ok(())
}
