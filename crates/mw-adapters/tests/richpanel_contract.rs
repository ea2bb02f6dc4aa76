//! The Richpanel client against the fake Richpanel (RICHPANEL_API.md §6): request
//! shapes field by field, rate limits, `Retry-After`, 5xx, timeouts, malformed
//! bodies, final errors without retries, and replies whose answer was lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::time::Duration;

use http::Method;
use mw_adapters::http::RetryPolicy;
use mw_adapters::richpanel::{RichpanelClient, RichpanelConfig};
use mw_core::{
    Action, ActionOutcome, Actions, Conversations, OrderLookup, Orders, PortError, Sender,
};
use mw_fakes::{FakeRichpanel, Fault, JournalEntry, RetryAfter, RouteMatch};
use serde_json::{Value, json};

const KEY: &str = "rp-test-key";

struct Setup {
    fake: FakeRichpanel,
    client: RichpanelClient,
    bot: String,
}

async fn setup(tweak: impl FnOnce(&mut RichpanelConfig)) -> Setup {
    let fake = FakeRichpanel::start(KEY).await.unwrap();
    let bot = fake.add_user("Support Bot", "bot@shop.example");
    let mut config = RichpanelConfig::new(KEY, &bot);
    config.base_url = fake.base_url();
    config.rate_limit = 1000;
    config.rate_window = Duration::from_secs(1);
    config.retry = RetryPolicy {
        timeout: Duration::from_millis(500),
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(10),
    };
    tweak(&mut config);
    let client = RichpanelClient::new(config).unwrap();
    fake.insert_ticket(json!({"id": "t1", "status": "OPEN",
        "via": {"channel": "email", "source": {"from": {"address": "jane@example.com"}}}, "tags": [], "comments": []}));
    fake.add_customer_message("t1", "Where is my order?");
    Setup { fake, client, bot }
}

fn calls(fake: &FakeRichpanel, method: &str, path: &str) -> Vec<JournalEntry> {
    fake.journal()
        .into_iter()
        .filter(|entry| entry.method == method && entry.path == path)
        .collect()
}

fn reply(body: &str) -> Action {
    Action::SendReply {
        template_id: "t_x".into(),
        template_version: 1,
        body: body.into(),
    }
}

#[tokio::test]
async fn requests_have_the_documented_shapes() {
    let Setup { fake, client, bot } = setup(|_| {}).await;
    let conversation = client.conversation("t1").await.unwrap();
    assert_eq!(conversation.messages.len(), 1);
    assert_eq!(conversation.messages[0].sender, Sender::Customer);
    assert_eq!(
        conversation.customer.email.as_deref(),
        Some("jane@example.com")
    );

    client
        .execute(
            "t1",
            &Action::AddTags {
                tags: vec!["route-returns-admin".into(), "mw-routing-applied".into()],
            },
            "k1",
        )
        .await
        .unwrap();
    let assignee = fake.add_user("Agent", "agent@shop.example");
    client
        .execute(
            "t1",
            &Action::Assign {
                team: "Returns Admin".into(),
                assignee_id: assignee.clone(),
            },
            "k2",
        )
        .await
        .unwrap();
    client
        .execute("t1", &reply("Hello, it shipped."), "k3")
        .await
        .unwrap();
    client.execute("t1", &Action::Close, "k4").await.unwrap();

    let journal = fake.journal();
    for entry in &journal {
        assert_eq!(
            entry.header("x-richpanel-key"),
            Some(KEY),
            "{} {}",
            entry.method,
            entry.path
        );
        assert_eq!(entry.header("accept"), Some("application/json"));
    }
    let get = &calls(&fake, "GET", "/v1/tickets/t1")[0];
    assert_eq!(get.query.as_deref(), Some("show_visitor_profile=false"));
    let tags = &calls(&fake, "PUT", "/v1/tickets/t1/add-tags")[0];
    assert_eq!(
        tags.body,
        Some(json!({"tags": ["route-returns-admin", "mw-routing-applied"]}))
    );
    assert_eq!(tags.header("content-type"), Some("application/json"));
    let updates = calls(&fake, "PUT", "/v1/tickets/t1");
    assert_eq!(
        updates[0].body,
        Some(json!({"ticket": {"assignee_id": assignee}}))
    );
    assert_eq!(
        updates[1].body,
        Some(json!({"ticket": {"status": "CLOSED", "state": "closed"}}))
    );
    let send = &calls(&fake, "PUT", "/v1/tickets/t1/send-message")[0];
    assert_eq!(
        send.body,
        Some(json!({"body": "Hello, it shipped.", "author_id": bot}))
    );

    let ticket = fake.ticket("t1").unwrap();
    assert_eq!(ticket["status"], "CLOSED");
    assert_eq!(ticket["assignee_id"], json!(assignee));
    let names: Vec<&str> = ticket["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(names.contains(&"mw-routing-applied"));
    // Our own reply is recognised as the bot's (loop guard).
    let conversation = client.conversation("t1").await.unwrap();
    assert_eq!(conversation.messages.last().unwrap().sender, Sender::Bot);
    for action in [Action::Close, reply("Hello, it shipped.")] {
        assert!(client.already_applied("t1", &action, "k").await.unwrap());
    }
    fake.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_in_every_form() {
    let Setup { fake, client, .. } = setup(|_| {}).await;
    for (form, minimum) in [
        (RetryAfter::Seconds(1), Duration::from_secs(1)),
        (RetryAfter::HttpDate(1), Duration::from_secs(1)),
        (RetryAfter::Absent, Duration::from_millis(900)),
    ] {
        fake.clear_journal();
        fake.fault(
            RouteMatch::any("/v1/tickets/*"),
            Fault::RateLimited(form),
            1,
        );
        client.conversation("t1").await.unwrap();
        let attempts = calls(&fake, "GET", "/v1/tickets/t1");
        assert_eq!(attempts.len(), 2, "{form:?}");
        assert_eq!(attempts[0].status, 429);
        assert_eq!(attempts[1].status, 200);
        let spacing = attempts[1].at - attempts[0].at;
        assert!(spacing >= minimum, "{form:?}: retried after {spacing:?}");
    }
    fake.stop().await;
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_only_where_repeating_is_harmless() {
    let Setup { fake, client, .. } = setup(|_| {}).await;
    fake.fault(
        RouteMatch::any("/v1/tickets/*"),
        Fault::Status {
            status: 503,
            body: "{}".into(),
        },
        2,
    );
    client.conversation("t1").await.unwrap();
    assert_eq!(calls(&fake, "GET", "/v1/tickets/t1").len(), 3);

    fake.clear_journal();
    fake.fault(
        RouteMatch::any("/v1/tickets/*"),
        Fault::Delay(Duration::from_secs(2)),
        3,
    );
    let error = client.conversation("t1").await.unwrap_err();
    assert!(matches!(error, PortError::Timeout(_)), "{error}");
    assert_eq!(calls(&fake, "GET", "/v1/tickets/t1").len(), 3);

    // A reply is not sent again after a 500: the ticket is read instead.
    fake.clear_journal();
    fake.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message"),
        Fault::Status {
            status: 500,
            body: "{}".into(),
        },
        1,
    );
    let error = client.execute("t1", &reply("Hi"), "k").await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(calls(&fake, "PUT", "/v1/tickets/t1/send-message").len(), 1);
    assert_eq!(
        calls(&fake, "GET", "/v1/tickets/t1").len(),
        1,
        "reconciled by reading the ticket"
    );
    fake.stop().await;
}

#[tokio::test]
async fn final_errors_are_not_retried_and_say_what_to_do() {
    let Setup { fake, client, .. } = setup(|_| {}).await;
    for (status, check) in [
        (
            400,
            (|e: &PortError| matches!(e, PortError::Invalid(m) if m.contains("400") && m.contains("bad tag")))
                as fn(&PortError) -> bool,
        ),
        (
            401,
            |e| matches!(e, PortError::Unauthorized(m) if m.contains("MW_RICHPANEL_API_KEY")),
        ),
        (404, |e| matches!(e, PortError::NotFound(_))),
        (409, |e| matches!(e, PortError::Conflict(_))),
        (413, |e| matches!(e, PortError::Invalid(_))),
    ] {
        fake.clear_journal();
        fake.fault(
            RouteMatch::any("/v1/tickets/*/add-tags"),
            Fault::Status {
                status,
                body: json!({"error": "bad tag"}).to_string(),
            },
            1,
        );
        let error = client.add_tags("t1", &["x".into()]).await.unwrap_err();
        assert!(check(&error), "{status}: {error}");
        assert_eq!(
            calls(&fake, "PUT", "/v1/tickets/t1/add-tags").len(),
            1,
            "{status} retried"
        );
    }
    // A wrong key: 401 from the fake itself, and the key never appears in errors.
    let mut config = client.config().clone();
    config.api_key = "wrong".into();
    let error = RichpanelClient::new(config)
        .unwrap()
        .conversation("t1")
        .await
        .unwrap_err();
    assert!(matches!(&error, PortError::Unauthorized(_)), "{error}");
    assert!(!error.to_string().contains(KEY));
    fake.stop().await;
}

#[tokio::test]
async fn malformed_bodies_fail_cleanly() {
    let Setup { fake, client, .. } = setup(|_| {}).await;
    fake.fault(RouteMatch::any("/v1/tickets/*"), Fault::NonJson, 3);
    let error = client.conversation("t1").await.unwrap_err();
    assert!(
        matches!(&error, PortError::Invalid(m) if m.contains("not JSON")),
        "{error}"
    );
    fake.fault(RouteMatch::any("/v1/tickets/*"), Fault::MissingFields, 1);
    let conversation = client.conversation("t1").await.unwrap();
    assert!(
        conversation.messages.is_empty(),
        "an empty ticket has no customer text"
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_reply_whose_answer_is_lost_is_found_on_the_ticket_and_not_sent_again() {
    let Setup { fake, client, bot } = setup(|_| {}).await;
    fake.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message"),
        Fault::ApplyThenReset,
        1,
    );
    let outcome = client
        .execute("t1", &reply("Your order shipped."), "k")
        .await
        .unwrap();
    assert_eq!(outcome, ActionOutcome::Applied);
    assert_eq!(calls(&fake, "PUT", "/v1/tickets/t1/send-message").len(), 1);
    let ticket = fake.ticket("t1").unwrap();
    let bot_comments = ticket["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["author_id"] == json!(bot))
        .count();
    assert_eq!(bot_comments, 1);

    // Timed out after applying: the same.
    fake.add_customer_message("t1", "And the other one?");
    fake.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message"),
        Fault::ApplyThenDelay(Duration::from_secs(2)),
        1,
    );
    let outcome = client
        .execute("t1", &reply("Second answer."), "k2")
        .await
        .unwrap();
    assert_eq!(outcome, ActionOutcome::Applied);
    assert_eq!(calls(&fake, "PUT", "/v1/tickets/t1/send-message").len(), 2);

    // Reset before anything was applied: an error, and nothing on the ticket.
    fake.add_customer_message("t1", "Third question");
    fake.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message"),
        Fault::Reset,
        1,
    );
    let error = client
        .execute("t1", &reply("Third answer."), "k3")
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        !client
            .already_applied("t1", &reply("Third answer."), "k3")
            .await
            .unwrap()
    );
    fake.stop().await;
}

#[tokio::test]
async fn linked_orders_and_lists() {
    let Setup { fake, client, .. } = setup(|_| {}).await;
    assert_eq!(client.linked_order("t1").await.unwrap(), OrderLookup::None);
    fake.insert_order("app1", json!({"orderId": "o-1", "orderDbKey": "gid://shopify/Order/1", "orderName": "#1001",
        "amount": 10, "fulfillment": [{"status": "in_transit", "tracking": [{"trackingNumber": "1Z1", "trackingUrl": "https://t.example/1Z1"}]}]}));
    fake.link_order("t1", "app1", "o-1");
    let OrderLookup::One { order } = client.linked_order("t1").await.unwrap() else {
        panic!("one order")
    };
    assert_eq!(order.order_name.as_deref(), Some("#1001"));
    assert_eq!(
        order.fulfillment[0].tracking[0].tracking_url.as_deref(),
        Some("https://t.example/1Z1")
    );
    // A link to an order the store no longer has: the lookup fails (fail closed).
    fake.link_order("t1", "app1", "o-gone");
    assert_eq!(
        client.linked_order("t1").await.unwrap(),
        OrderLookup::Failed
    );
    assert_eq!(calls(&fake, "GET", "/v1/order/t1").len(), 3);

    for index in 0..130 {
        fake.add_tag(&format!("tag-{index:03}"));
    }
    let tags = client.tags().await.unwrap();
    assert!(tags.len() >= 130 && tags.iter().any(|t| t.name == "tag-129"));
    let pages: Vec<Value> = calls(&fake, "GET", "/v1/tags")
        .iter()
        .map(|e| json!(e.query))
        .collect();
    assert_eq!(
        pages,
        vec![json!("page=1&per_page=100"), json!("page=2&per_page=100")]
    );
    fake.add_team("Returns Admin");
    assert!(
        client
            .teams()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "Returns Admin")
    );
    assert!(!client.users().await.unwrap().is_empty());
    fake.stop().await;
}

#[tokio::test]
async fn tags_can_be_sent_as_ids_resolved_once_and_created_when_missing() {
    let Setup { fake, client, .. } = setup(|config| config.tags_as_ids = true).await;
    let known = fake.add_tag("route-returns-admin");
    let tags = vec!["route-returns-admin".to_owned(), "mw-new-tag".to_owned()];
    client.add_tags("t1", &tags).await.unwrap();
    client.add_tags("t1", &tags).await.unwrap();
    assert_eq!(
        calls(&fake, "GET", "/v1/tags").len(),
        1,
        "the tag list is cached"
    );
    assert_eq!(
        calls(&fake, "POST", "/v1/tags").len(),
        1,
        "the missing tag is created once"
    );
    let sent = calls(&fake, "PUT", "/v1/tickets/t1/add-tags");
    let ids = sent[0].body.as_ref().unwrap()["tags"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ids[0], json!(known));
    assert!(
        ids.iter()
            .all(|id| !id.as_str().unwrap().starts_with("mw-"))
    );
    assert!(
        client
            .already_applied("t1", &Action::AddTags { tags }, "k")
            .await
            .unwrap()
    );
    fake.stop().await;
}

#[tokio::test]
async fn the_shared_limiter_keeps_a_burst_under_the_tenant_limit() {
    // The tenant allows 10 requests per second; 40 concurrent reads go through
    // one client without a single 429.
    let Setup { fake, client, .. } = setup(|config| {
        config.rate_limit = 10;
        config.rate_window = Duration::from_secs(1);
    })
    .await;
    fake.set_rate_limit(Some((10, Duration::from_secs(1))));
    let client = std::sync::Arc::new(client);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.conversation("t1").await.map(drop) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let journal = fake.journal();
    let throttled = journal.iter().filter(|e| e.status == 429).count();
    assert_eq!(throttled, 0, "{} requests answered 429", throttled);
    assert_eq!(journal.len(), 40);
    fake.stop().await;
}
