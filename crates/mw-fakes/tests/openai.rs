//! Contract tests of the fake OpenAI Chat Completions server itself.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use mw_fakes::{FakeOpenAi, FakeReply};
use serde_json::{Value, json};

const KEY: &str = "sk-test";

fn strict_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["reply", "items"],
        "properties": {
            "reply": {"type": "string"},
            "items": {"type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["sku"],
                "properties": {"sku": {"type": ["string", "null"]}}
            }}
        }
    })
}

fn request(name: &str, schema: Value) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my order?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": name, "strict": true, "schema": schema}}
    })
}

async fn post(fake: &FakeOpenAi, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.base_url()))
        .json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn error_of(fake: &FakeOpenAi, body: &Value) -> (u16, Value) {
    let r = post(fake, Some(KEY), body).await;
    (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap()["error"].clone(),
    )
}

#[tokio::test]
async fn requires_bearer_key() {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    fake.set_responder(|_| FakeReply::Content(json!({"ok": true})));
    for key in [None, Some("sk-wrong")] {
        let r = post(&fake, key, &request("reply", strict_schema())).await;
        assert_eq!(r.status(), 401);
        let e = r.json::<Value>().await.unwrap()["error"].clone();
        assert_eq!(
            (e["code"].clone(), e["type"].clone()),
            (json!("invalid_api_key"), json!("invalid_request_error"))
        );
    }
    assert_eq!(
        post(&fake, Some(KEY), &request("reply", strict_schema()))
            .await
            .status(),
        200
    );
    assert_eq!(fake.requests().len(), 3, "failed requests are recorded too");
    let model = reqwest::Client::new()
        .get(format!("{}/models/gpt-4o-mini", fake.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(model.json::<Value>().await.unwrap()["object"], "model");
    fake.stop().await;
}

#[tokio::test]
async fn success_shape_and_headers() {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    fake.set_responder(|req| FakeReply::Content(json!({"echo": req["messages"][1]["content"]})));
    let r = post(&fake, Some(KEY), &request("reply", strict_schema())).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "10000");
    assert!(r.headers().contains_key("x-ratelimit-remaining-requests"));
    let body: Value = r.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        (body["object"].clone(), body["model"].clone()),
        (json!("chat.completion"), json!("gpt-4o-mini"))
    );
    let choice = &body["choices"][0];
    assert_eq!(
        (choice["finish_reason"].clone(), choice["logprobs"].clone()),
        (json!("stop"), Value::Null)
    );
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    let content: Value =
        serde_json::from_str(choice["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"echo": "Where is my order?"}));
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn validation_rejects_invalid_requests_and_non_strict_schemas() {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    fake.set_responder(|_| FakeReply::Content(json!({})));
    let mut loose = strict_schema();
    loose
        .as_object_mut()
        .unwrap()
        .remove("additionalProperties");
    let (s, e) = error_of(&fake, &request("reply", loose)).await;
    assert_eq!(
        (s, e["type"].clone(), e["param"].clone()),
        (
            400,
            json!("invalid_request_error"),
            json!("response_format")
        )
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("'additionalProperties' is required"),
        "{e}"
    );

    let mut nested = strict_schema();
    nested["properties"]["items"]["items"]["required"] = json!([]);
    let (s, e) = error_of(&fake, &request("reply", nested)).await;
    assert_eq!(s, 400);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("context=('properties', 'items', 'items')") && msg.contains("Missing 'sku'"),
        "{msg}"
    );

    let mut non_strict = request(
        "reply",
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    );
    assert_eq!(error_of(&fake, &non_strict).await.0, 400);
    non_strict["response_format"]["json_schema"]["strict"] = json!(false);
    assert_eq!(
        error_of(&fake, &non_strict).await.0,
        200,
        "non-strict schemas are not checked"
    );

    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            Value::Null,
        ),
        (json!({"model": "m"}), json!("messages")),
        (json!({"model": "m", "messages": []}), json!("messages")),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}),
            json!("messages[0].role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 3}]}),
            json!("messages[0].content"),
        ),
        (
            request("bad name!", strict_schema()),
            json!("response_format.json_schema.name"),
        ),
        (
            request(&"x".repeat(65), strict_schema()),
            json!("response_format.json_schema.name"),
        ),
        (
            request("reply", json!("not an object")),
            json!("response_format.json_schema.schema"),
        ),
    ];
    for (body, param) in cases {
        let (s, e) = error_of(&fake, &body).await;
        assert_eq!((s, e["param"].clone()), (400, param), "{body}");
        assert!(e["message"].is_string() && e.get("code").is_some());
    }
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.base_url()))
        .bearer_auth(KEY)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(fake.requests().len(), 13);
}

#[tokio::test]
async fn script_then_responder_and_every_reply_kind() {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    let body = request("reply", strict_schema());
    let (s, e) = error_of(&fake, &body).await;
    assert_eq!(s, 500, "default responder");
    assert!(e["message"].as_str().unwrap().contains("no responder"));
    let quota = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
    fake.script(vec![
        FakeReply::Status {
            status: 429,
            body: quota.clone(),
            retry_after: Some(3),
        },
        FakeReply::Refusal("I can't help with that.".into()),
        FakeReply::Truncated("{\"reply\": \"It shi".into()),
        FakeReply::RawContent("not json".into()),
        FakeReply::NonJson,
        FakeReply::Delay(
            Duration::from_millis(100),
            Box::new(FakeReply::Content(json!("late"))),
        ),
    ]);
    fake.set_responder(|_| FakeReply::Content(json!({"reply": "from responder"})));
    let r = post(&fake, Some(KEY), &body).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "3")
    );
    assert_eq!(r.json::<Value>().await.unwrap(), quota);
    let m = post(&fake, Some(KEY), &body)
        .await
        .json::<Value>()
        .await
        .unwrap()["choices"][0]
        .clone();
    assert_eq!(
        (
            m["message"]["content"].clone(),
            m["message"]["refusal"].clone()
        ),
        (Value::Null, json!("I can't help with that."))
    );
    let m = post(&fake, Some(KEY), &body)
        .await
        .json::<Value>()
        .await
        .unwrap()["choices"][0]
        .clone();
    assert_eq!(
        (m["finish_reason"].clone(), m["message"]["content"].clone()),
        (json!("length"), json!("{\"reply\": \"It shi"))
    );
    let m = post(&fake, Some(KEY), &body)
        .await
        .json::<Value>()
        .await
        .unwrap()["choices"][0]
        .clone();
    assert_eq!(m["message"]["content"], "not json");
    let r = post(&fake, Some(KEY), &body).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    let started = std::time::Instant::now();
    let m = post(&fake, Some(KEY), &body)
        .await
        .json::<Value>()
        .await
        .unwrap()["choices"][0]
        .clone();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        m["message"]["content"], "\"late\"",
        "content is the value serialized"
    );
    let m = post(&fake, Some(KEY), &body)
        .await
        .json::<Value>()
        .await
        .unwrap()["choices"][0]
        .clone();
    assert_eq!(m["message"]["content"], "{\"reply\":\"from responder\"}");
}

#[tokio::test]
async fn counts_calls_per_schema() {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    fake.set_responder(|_| FakeReply::Content(json!({"reply": "ok", "items": []})));
    for name in ["draft_reply", "draft_reply", "classify"] {
        assert_eq!(
            post(&fake, Some(KEY), &request(name, strict_schema()))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        post(
            &fake,
            Some(KEY),
            &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        )
        .await
        .status(),
        200
    );
    assert_eq!(fake.calls_for_schema("draft_reply"), 2);
    assert_eq!(fake.calls_for_schema("classify"), 1);
    assert_eq!(fake.calls_for_schema("other"), 0);
    assert_eq!(fake.requests().len(), 4);
    fake.clear_requests();
    assert_eq!(fake.calls_for_schema("draft_reply"), 0);
}
