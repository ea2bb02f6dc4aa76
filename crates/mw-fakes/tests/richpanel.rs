//! Contract tests of the fake Richpanel server itself.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use http::Method;
use mw_fakes::{FakeRichpanel, Fault, RetryAfter, RouteMatch};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "rp-test-key";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(fake: &FakeRichpanel) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: fake.base_url(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-richpanel-key", KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }
}

fn last_comment(ticket: &Value) -> Value {
    ticket["comments"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

async fn raw_request(base: &str, request: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn auth_is_required_on_every_route_with_any_header_case() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    fake.insert_ticket(json!({"id": "t1"}));
    let http = reqwest::Client::new();
    for path in ["/v1/tickets/t1", "/v1/tags", "/v1/nope"] {
        let missing = http
            .get(format!("{}{path}", fake.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 401);
        assert!(missing.headers().contains_key("x-ratelimit-limit"));
        assert!(missing.headers().contains_key("x-ratelimit-remaining"));
        let body: Value = missing.json().await.unwrap();
        assert!(body["error"].is_string());
        let wrong = http
            .get(format!("{}{path}", fake.base_url()))
            .header("x-richpanel-key", "nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    let host = fake.base_url().trim_start_matches("http://").to_owned();
    let upper = format!(
        "GET /v1/tickets/t1 HTTP/1.1\r\nHost: {host}\r\nX-RICHPANEL-KEY: {KEY}\r\nConnection: close\r\n\r\n"
    );
    assert!(
        raw_request(&fake.base_url(), &upper)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mixed = format!(
        "GET /v1/tickets/t1 HTTP/1.1\r\nHost: {host}\r\nX-Richpanel-Key: wrong\r\nConnection: close\r\n\r\n"
    );
    assert!(
        raw_request(&fake.base_url(), &mixed)
            .await
            .starts_with("HTTP/1.1 401")
    );
    let journal = fake.journal();
    assert_eq!(journal.len(), 8);
    assert_eq!(journal.iter().filter(|e| e.status == 401).count(), 7);
    assert_eq!(journal[6].header("x-richpanel-key"), Some(KEY));
    assert!(
        !format!("{journal:?}").contains(KEY),
        "Debug output must not leak the key"
    );
    fake.stop().await;
}

#[tokio::test]
async fn tickets_get_number_email_create_and_update() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    let agent = fake.add_user("Bot", "bot@shop.example");
    let vip = fake.add_tag("vip");
    fake.insert_ticket(json!({"id": "t1", "conversation_no": 48213, "status": "open",
        "via": {"channel": "email", "source": {"from": {"address": "jane@example.com"}}},
        "comments": [{"id": "c1", "body": "<p>Where is #1001?</p>", "via": {"isOperator": false}}]}));
    let (s, t) = c.get("/v1/tickets/t1?show_visitor_profile=false").await;
    assert_eq!(s, 200);
    assert_eq!(t["ticket"]["status"], "OPEN");
    let first = &t["ticket"]["comments"][0];
    assert_eq!(
        (
            first["is_operator"].clone(),
            first["via"]["isOperator"].clone()
        ),
        (json!(false), json!(false))
    );
    assert_eq!(first["plain_body"], "Where is #1001?");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c.get("/v1/tickets/nope").await.0, 404);
    assert_eq!(
        c.get("/v1/tickets/number/48213").await.1["ticket"]["id"],
        "t1"
    );
    assert_eq!(c.get("/v1/tickets/number/1").await.0, 404);
    assert_eq!(c.get("/v1/tickets/number/abc").await.0, 400);
    let (s, list) = c.get("/v1/tickets/email/JANE%40example.com").await;
    assert_eq!((s, list["tickets"][0]["id"].clone()), (200, json!("t1")));

    let create = json!({"ticket": {"status": "OPEN", "subject": "Order question", "tags": [vip],
        "comment": {"sender_type": "customer", "body": "Where is order #1001?"}, "via": {"channel": "chat"}}});
    let (s, created) = c.send(Method::POST, "/v1/tickets", Some(create)).await;
    assert_eq!(s, 200);
    let id = created["ticket"]["id"].as_str().unwrap().to_owned();
    assert!(created["ticket"]["conversation_no"].as_u64().unwrap() > 48213);
    assert_eq!(created["ticket"]["tags"], json!(["vip"]));
    assert_eq!(last_comment(&created["ticket"])["is_operator"], false);
    let path = format!("/v1/tickets/{id}");
    assert_eq!(
        c.put(&path, json!({"ticket": {"status": "PENDING"}}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.put(&path, json!({"ticket": {"assignee_id": "usr_nope"}}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.put(&path, json!({"ticket": {"tags": ["vip"]}})).await.0,
        400,
        "tags are ids"
    );
    assert_eq!(
        c.put("/v1/tickets/nope", json!({"ticket": {"status": "OPEN"}}))
            .await
            .0,
        404
    );
    assert_eq!(c.send(Method::PUT, &path, None).await.0, 400);
    let update = json!({"ticket": {"state": "closed", "status": "closed", "assignee_id": agent,
        "comment": {"sender_type": "operator", "body": "Done", "public": true}}});
    let (s, updated) = c.put(&path, update).await;
    assert_eq!(s, 200);
    let t = &updated["ticket"];
    assert_eq!(
        (
            t["status"].clone(),
            t["state"].clone(),
            t["assignee_id"].clone()
        ),
        (json!("CLOSED"), json!("closed"), json!(agent))
    );
    let reply = last_comment(t);
    assert_eq!(
        (
            reply["is_operator"].clone(),
            reply["via"]["isOperator"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(reply["via"]["channel"], "chat");
    assert_eq!(t["comments"].as_array().unwrap().len(), 2);
    // A customer message reopens the conversation.
    fake.add_customer_message(&id, "Thanks!");
    assert_eq!(fake.ticket(&id).unwrap()["status"], "OPEN");
    assert_eq!(fake.ticket(&id).unwrap()["state"], "open");
}

#[tokio::test]
async fn tags_have_set_semantics_and_accept_ids_or_names() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    let vip = fake.add_tag("vip");
    fake.insert_ticket(json!({"id": "t1"}));
    for _ in 0..2 {
        let (s, t) = c
            .put(
                "/v1/tickets/t1/add-tags",
                json!({"tags": ["mw-auto-replied", vip]}),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(t["ticket"]["tags"], json!(["mw-auto-replied", "vip"]));
    }
    let (_, tags) = c.get("/v1/tags").await;
    let names: Vec<&str> = tags["tag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["vip", "mw-auto-replied"],
        "unknown names are registered"
    );
    let (_, t) = c
        .put(
            "/v1/tickets/t1/remove-tags",
            json!({"tags": [vip, "absent"]}),
        )
        .await;
    assert_eq!(t["ticket"]["tags"], json!(["mw-auto-replied"]));
    assert_eq!(c.put("/v1/tickets/t1/add-tags", json!({})).await.0, 400);
    assert_eq!(
        c.put("/v1/tickets/t1/add-tags", json!({"tags": "vip"}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.put("/v1/tickets/t1/add-tags", json!({"tags": [1]}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.put("/v1/tickets/nope/add-tags", json!({"tags": ["x"]}))
            .await
            .0,
        404
    );
    let (s, created) = c
        .send(
            Method::POST,
            "/v1/tags",
            Some(json!({"name": "new", "description": "d"})),
        )
        .await;
    assert_eq!((s, created["tag"]["name"].clone()), (200, json!("new")));
    assert_eq!(
        c.send(Method::POST, "/v1/tags", Some(json!({"name": "new"})))
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn send_message_validates_and_appends_an_operator_comment() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    let bot = fake.add_user("Bot", "bot@shop.example");
    fake.add_customer_message("t1", "Where is my order?");
    let p = "/v1/tickets/t1/send-message";
    assert_eq!(c.put(p, json!({"author_id": bot})).await.0, 400);
    assert_eq!(c.put(p, json!({"body": "", "author_id": bot})).await.0, 400);
    assert_eq!(c.put(p, json!({"body": "Hi"})).await.0, 400);
    assert_eq!(
        c.put(p, json!({"body": "Hi", "author_id": "usr_unknown"}))
            .await
            .0,
        400
    );
    assert_eq!(
        c.put(
            p,
            json!({"body": "Hi", "author_id": bot, "attachments": [1]})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        c.put(
            "/v1/tickets/nope/send-message",
            json!({"body": "Hi", "author_id": bot})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        fake.ticket("t1").unwrap()["comments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (s, r) = c
        .put(
            p,
            json!({"body": "<p>It shipped.</p><p>Bye</p>", "author_id": bot}),
        )
        .await;
    assert_eq!(s, 200);
    let comment = last_comment(&fake.ticket("t1").unwrap());
    assert_eq!(r["comment_id"], comment["id"]);
    assert_eq!(
        (
            comment["is_operator"].clone(),
            comment["via"]["isOperator"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(
        (comment["author_id"].clone(), comment["plain_body"].clone()),
        (json!(bot), json!("It shipped.\nBye"))
    );
    assert_eq!(
        c.put(p, json!({"body": "Hi", "author_id": "operator"}))
            .await
            .0,
        200
    );
    let comments = fake.ticket("t1").unwrap()["comments"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        comments
            .windows(2)
            .all(|w| w[0]["created_at"].as_str() < w[1]["created_at"].as_str())
    );
}

#[tokio::test]
async fn lists_paginate_with_absolute_next_page() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    for i in 0..30 {
        fake.add_user(&format!("Agent {i}"), &format!("a{i}@x.example"));
    }
    fake.add_team("Support");
    let (_, p1) = c.get("/v1/users?per_page=20").await;
    assert_eq!(
        (p1["users"].as_array().unwrap().len(), p1["count"].clone()),
        (20, json!(30))
    );
    assert_eq!(p1["previous_page"], Value::Null);
    let next = p1["next_page"].as_str().unwrap();
    assert!(next.starts_with(&fake.base_url()));
    let (_, p2) = c.get(next.trim_start_matches(&fake.base_url())).await;
    assert_eq!(p2["users"].as_array().unwrap().len(), 10);
    assert_eq!(p2["next_page"], Value::Null);
    assert!(p2["previous_page"].as_str().unwrap().contains("page=1"));
    assert_eq!(
        c.get("/v1/users").await.1["users"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
    assert_eq!(
        c.get("/v1/users?per_page=500").await.1["users"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    assert!(c.get("/v1/users?per_page=500").await.1["next_page"].is_null());
    assert_eq!(c.get("/v1/users?page=0").await.0, 400);
    let (_, teams) = c.get("/v1/teams").await;
    assert_eq!(
        (teams["team"][0]["name"].clone(), teams["count"].clone()),
        (json!("Support"), json!(1))
    );
    let id = p1["users"][0]["id"].as_str().unwrap();
    assert_eq!(
        c.get(&format!("/v1/users/{id}")).await.1["user"]["name"],
        "Agent 0"
    );
    assert_eq!(c.get("/v1/users/nope").await.0, 404);
}

#[tokio::test]
async fn fixed_window_limiter_answers_429_with_retry_after() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{}/v1/tags", fake.base_url()))
            .header("x-richpanel-key", KEY)
            .send()
    };
    let r = get().await.unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "50");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "49");
    fake.set_rate_limit(Some((2, Duration::from_secs(60))));
    for remaining in ["1", "0"] {
        let r = get().await.unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["x-ratelimit-remaining"].to_str().unwrap()
            ),
            (200, remaining)
        );
    }
    let r = get().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("Rate limit")
    );
    fake.set_rate_limit(None);
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(
        fake.journal().iter().map(|e| e.status).collect::<Vec<_>>(),
        [200, 200, 200, 429, 200]
    );
}

#[tokio::test]
async fn status_and_rate_limit_faults() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    fake.insert_ticket(json!({"id": "t1"}));
    fake.fault(
        RouteMatch::any("/v1/tickets/*"),
        Fault::Status {
            status: 503,
            body: "{\"error\":\"down\"}".into(),
        },
        2,
    );
    fake.fault(
        RouteMatch::new(Method::GET, "/v1/tags"),
        Fault::RateLimited(RetryAfter::Seconds(7)),
        1,
    );
    fake.fault(
        RouteMatch::new(Method::GET, "/v1/tags"),
        Fault::RateLimited(RetryAfter::Absent),
        1,
    );
    fake.fault(
        RouteMatch::new(Method::GET, "/v1/teams"),
        Fault::RateLimited(RetryAfter::HttpDate(5)),
        1,
    );
    assert_eq!(
        c.get("/v1/tickets/t1").await,
        (503, json!({"error": "down"}))
    );
    assert_eq!(c.get("/v1/tickets/t1").await.0, 503);
    assert_eq!(c.get("/v1/tickets/t1").await.0, 200);
    let http = reqwest::Client::new();
    let get = |p: &str| {
        http.get(format!("{}{p}", fake.base_url()))
            .header("x-richpanel-key", KEY)
            .send()
    };
    let r = get("/v1/tags").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    let r = get("/v1/tags").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("retry-after"));
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    let r = get("/v1/teams").await.unwrap();
    let date = r.headers()["retry-after"].to_str().unwrap().to_owned();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert_eq!(get("/v1/tags").await.unwrap().status(), 200);
    // Faults in the wrong method do not match.
    fake.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*"),
        Fault::Status {
            status: 500,
            body: "x".into(),
        },
        1,
    );
    assert_eq!(c.get("/v1/tickets/t1").await.0, 200);
    let r = http
        .put(format!("{}/v1/tickets/t1", fake.base_url()))
        .header("x-richpanel-key", KEY)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (500, "x".to_owned())
    );
}

#[tokio::test]
async fn reset_delay_and_apply_faults() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let bot = fake.add_user("Bot", "bot@x.example");
    fake.add_customer_message("t1", "hello");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let send = |text: &str| {
        http.put(format!("{}/v1/tickets/t1/send-message", fake.base_url()))
            .header("x-richpanel-key", KEY)
            .json(&json!({"body": text, "author_id": bot}))
            .send()
    };
    let route = RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message");
    let count = || {
        fake.ticket("t1").unwrap()["comments"]
            .as_array()
            .unwrap()
            .len()
    };

    fake.fault(route.clone(), Fault::Reset, 1);
    let err = send("a").await.unwrap_err();
    assert!(!err.is_timeout() && !err.is_status(), "{err}");
    assert_eq!(count(), 1, "reset applies nothing");

    fake.fault(route.clone(), Fault::ApplyThenReset, 1);
    assert!(send("b").await.is_err());
    assert_eq!(count(), 2, "apply-then-reset commits the write");
    assert_eq!(last_comment(&fake.ticket("t1").unwrap())["body"], "b");

    fake.fault(
        route.clone(),
        Fault::ApplyThenDelay(Duration::from_millis(600)),
        1,
    );
    assert!(send("c").await.unwrap_err().is_timeout());
    assert_eq!(count(), 3, "apply-then-delay commits before the timeout");

    fake.fault(route.clone(), Fault::Delay(Duration::from_millis(600)), 1);
    assert!(send("d").await.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(), 3, "an abandoned delayed request applies nothing");

    fake.fault(route.clone(), Fault::Delay(Duration::from_millis(50)), 1);
    assert_eq!(send("e").await.unwrap().status(), 200);
    assert_eq!(count(), 4);

    fake.fault(route.clone(), Fault::NonJson, 1);
    let r = send("f").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    fake.fault(route.clone(), Fault::MissingFields, 1);
    assert_eq!(
        send("g").await.unwrap().json::<Value>().await.unwrap(),
        json!({})
    );
    assert_eq!(count(), 6, "200 faults commit the write");

    let statuses: Vec<u16> = fake.journal().iter().map(|e| e.status).collect();
    // Nothing was answered to the reset and timed-out requests.
    assert_eq!(statuses, [0, 0, 0, 0, 200, 200, 200]);
    let first = &fake.journal()[0];
    assert_eq!(
        (
            first.method.as_str(),
            first.body.as_ref().unwrap()["body"].as_str()
        ),
        ("PUT", Some("a"))
    );
    assert!(fake.journal().windows(2).all(|w| w[0].at <= w[1].at));
    fake.clear_journal();
    assert!(fake.journal().is_empty());
}

#[tokio::test]
async fn orders_links_and_invalid_json() {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let c = Client::new(&fake);
    fake.insert_ticket(json!({"id": "t1"}));
    fake.insert_order(
        "shop",
        json!({"orderId": 1001, "orderName": "#1001", "status": "processing"}),
    );
    assert_eq!(c.get("/v1/order/t1").await, (200, json!({})));
    assert_eq!(
        c.get("/v1/order/shop/1001").await.1["order"]["orderName"],
        "#1001"
    );
    assert_eq!(c.get("/v1/order/shop/9").await.0, 404);
    let (s, m) = c
        .put("/v1/tickets/t1/attach-order/shop/1001", json!(null))
        .await;
    assert_eq!(s, 200);
    assert!(m["message"].is_string());
    assert_eq!(
        c.get("/v1/order/t1").await.1,
        json!({"orderId": "1001", "appClientId": "shop"})
    );
    fake.link_order("t2", "shop", "77");
    assert_eq!(c.get("/v1/order/t2").await.1["orderId"], "77");
    let order = json!({"orderId": "77", "orderDbKey": "k", "amount": 10});
    assert_eq!(
        c.send(
            Method::POST,
            "/v1/order/shop",
            Some(json!({"orders": [order]}))
        )
        .await
        .0,
        200
    );
    assert_eq!(c.get("/v1/order/shop/77").await.1["order"]["amount"], 10);
    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"orderId": i, "orderDbKey": "k", "amount": 1}))
        .collect();
    assert_eq!(
        c.send(
            Method::POST,
            "/v1/order/shop",
            Some(json!({"orders": too_many}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        c.send(
            Method::POST,
            "/v1/order/shop",
            Some(json!({"orders": [{"orderId": 1}]}))
        )
        .await
        .0,
        400
    );
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/tickets", fake.base_url()))
        .header("x-richpanel-key", KEY)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let entry = fake.journal().pop().unwrap();
    assert_eq!(
        (entry.body, entry.raw_body.as_str(), entry.status),
        (None, "{oops", 400)
    );
}
