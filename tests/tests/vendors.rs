//! `mw serve` end to end with the real vendor clients against the fake Richpanel
//! and the fake OpenAI: Tier 0, a verified Tier 2 reply sent exactly once even when
//! its answer is lost, verifier denial, safe mode, shadow mode, and one model call
//! per unique message across redeliveries and retries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Method;
use mw_cli::Engine;
use mw_core::StateStore;
use mw_fakes::{FakeOpenAi, FakeReply, FakeRichpanel, Fault, JournalEntry, RouteMatch};
use mw_tests::{Server, rules_model, start};
use serde_json::json;

const RP_KEY: &str = "rp-e2e-key";
const AI_KEY: &str = "sk-e2e-key";
const TRACKING_URL: &str = "https://carrier.example/track/1Z999AA10123456784";

struct Live {
    server: Server,
    rp: FakeRichpanel,
    ai: FakeOpenAi,
    bot: String,
    verifier_allows: Arc<AtomicBool>,
}

async fn live(name: &str) -> Live {
    let rp = FakeRichpanel::start(RP_KEY).await.unwrap();
    let bot = rp.add_user("Support Bot", "bot@shop.example");
    let ai = FakeOpenAi::start(AI_KEY).await.unwrap();
    // The fake model answers like the embedded rules would; the verifier answers
    // as the test says.
    let verifier_allows = Arc::new(AtomicBool::new(true));
    ai.set_responder(rules_model(
        Engine::embedded().unwrap(),
        verifier_allows.clone(),
    ));
    let (rp_url, ai_url, bot_id) = (rp.base_url(), ai.base_url(), bot.clone());
    let server = start(name, move |settings| {
        settings.richpanel_base_url = Some(rp_url);
        settings.richpanel_api_key = Some(RP_KEY.into());
        settings.richpanel_bot_author_id = Some(bot_id);
        settings.richpanel_rate_limit = Some(1000);
        settings.richpanel_rate_window_secs = Some(1.0);
        settings.richpanel_timeout_secs = Some(1.0);
        settings.openai_base_url = Some(ai_url);
        settings.openai_api_key = Some(AI_KEY.into());
        settings.openai_model = Some("gpt-test".into());
    })
    .await;
    Live {
        server,
        rp,
        ai,
        bot,
        verifier_allows,
    }
}

impl Live {
    fn ticket(&self, id: &str, text: &str) {
        self.rp
            .insert_email_ticket(id, "jane.doe@example.com", text);
    }

    fn shipped_order(&self, conversation: &str) {
        self.rp.insert_order("shop", json!({"orderId": "5100000001001", "orderDbKey": "gid://shopify/Order/5100000001001",
            "orderName": "#1001", "status": "confirmed", "fulfillmentStatus": "fulfilled", "financialStatus": "paid",
            "amount": 42.0, "currency": "USD", "createdAt": "2026-11-16T10:00:00Z",
            "statusUrl": "https://shop.example.com/orders/1001/status", "shippingMethod": "Standard Shipping",
            "fulfillment": [{"id": "f1", "status": "in_transit", "createdAt": "2026-11-17T10:00:00Z",
                "tracking": [{"trackingNumber": "1Z999AA10123456784", "trackingCompany": "UPS", "trackingUrl": TRACKING_URL}]}]}));
        self.rp.link_order(conversation, "shop", "5100000001001");
    }

    async fn deliver(&self, conversation: &str) {
        let (status, body) = self
            .server
            .post_token(&json!({"ticket_id": conversation, "trigger": "customer_message"}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    fn writes(&self, conversation: &str) -> Vec<JournalEntry> {
        self.rp
            .journal()
            .into_iter()
            .filter(|entry| {
                entry.method != "GET"
                    && entry
                        .path
                        .starts_with(&format!("/v1/tickets/{conversation}"))
            })
            .collect()
    }

    fn bot_comments(&self, conversation: &str) -> Vec<String> {
        self.rp.comments_by(conversation, &self.bot)
    }

    fn tags(&self, conversation: &str) -> Vec<String> {
        self.rp.tag_names(conversation)
    }

    async fn template(&self, conversation: &str) -> Option<String> {
        // The newest decided record (a redelivery after our reply is skipped by the
        // loop guard and audited as such).
        let trail = self.server.store.audit_trail(conversation).await.unwrap();
        let decision = trail
            .iter()
            .rev()
            .find_map(|record| record.decision.as_ref())
            .unwrap();
        decision
            .reply
            .as_ref()
            .map(|reply| reply.template_id.clone())
    }

    async fn stop(self) {
        self.server.stop().await;
        self.rp.stop().await;
        self.ai.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier0_gets_only_tags_and_the_tier0_team() {
    let live = live("vendors-tier0").await;
    live.ticket(
        "t_cb",
        "If this isn't refunded today I'm filing a chargeback with my bank.",
    );
    live.deliver("t_cb").await;
    live.server.drain().await;
    let writes = live.writes("t_cb");
    assert!(
        writes.iter().all(|w| w.path.ends_with("/add-tags")),
        "{:?}",
        writes.iter().map(|w| &w.path).collect::<Vec<_>>()
    );
    let tags = live.tags("t_cb");
    for tag in [
        "route-chargebacks-disputes-team",
        "mw-tier-0",
        "mw-routing-applied",
    ] {
        assert!(
            tags.contains(&tag.to_owned()),
            "{tag} missing from {tags:?}"
        );
    }
    assert!(live.bot_comments("t_cb").is_empty());
    assert_eq!(live.ai.calls_for_schema("mw_tier2_verifier_v1"), 0);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_order_status_reply_is_sent_exactly_once_even_when_its_answer_is_lost() {
    let live = live("vendors-tier2").await;
    live.ticket("t_os", "Hi, where is my order #1001? It's been a few days.");
    live.shipped_order("t_os");
    live.rp.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/*/send-message"),
        Fault::ApplyThenReset,
        1,
    );
    live.deliver("t_os").await;
    live.server.drain().await;
    // Redelivered twice, concurrently, after it was processed.
    tokio::join!(live.deliver("t_os"), live.deliver("t_os"));
    live.server.drain().await;

    let replies = live.bot_comments("t_os");
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains(TRACKING_URL), "{}", replies[0]);
    assert_eq!(
        live.template("t_os").await.as_deref(),
        Some("t_order_status_verified")
    );
    let sends = live
        .writes("t_os")
        .into_iter()
        .filter(|w| w.path.ends_with("/send-message"))
        .count();
    assert_eq!(sends, 1, "never sent a second time");
    // Tags and routing before the reply; mw-routing-applied among the first write.
    let writes = live.writes("t_os");
    assert!(writes[0].path.ends_with("/add-tags"));
    let first_tags = writes[0].body.as_ref().unwrap()["tags"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(first_tags.last().unwrap(), "mw-routing-applied");
    assert!(live.tags("t_os").contains(&"mw-auto-replied".to_owned()));
    assert_eq!(live.ai.calls_for_schema("mw_decision_v1"), 1);
    assert_eq!(live.ai.calls_for_schema("mw_tier2_verifier_v1"), 1);
    // No personal data or secrets reached the model.
    for request in live.ai.requests() {
        let text = request.to_string();
        assert!(!text.contains("jane.doe@example.com") && !text.contains(RP_KEY));
    }
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_denial_asks_for_the_order_number_instead() {
    let live = live("vendors-deny").await;
    live.verifier_allows.store(false, Ordering::SeqCst);
    live.ticket("t_deny", "Where is my order #1001? Still waiting for it.");
    live.shipped_order("t_deny");
    live.deliver("t_deny").await;
    live.server.drain().await;
    assert_eq!(
        live.template("t_deny").await.as_deref(),
        Some("t_order_status_ask_order_number")
    );
    let replies = live.bot_comments("t_deny");
    assert_eq!(replies.len(), 1);
    assert!(!replies[0].contains(TRACKING_URL));
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_tags_only_and_shadow_mode_writes_nothing() {
    let live = live("vendors-modes").await;
    live.server
        .store
        .write_flag("safe_mode", &json!(true))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    live.ticket("t_safe", "Where is my order #1001?");
    live.shipped_order("t_safe");
    live.deliver("t_safe").await;
    live.server.drain().await;
    let writes = live.writes("t_safe");
    assert!(!writes.is_empty());
    assert!(writes.iter().all(|w| w.path.ends_with("/add-tags")));
    assert!(live.bot_comments("t_safe").is_empty());

    live.server
        .store
        .write_flag("safe_mode", &json!(false))
        .unwrap();
    live.server
        .store
        .write_flag("shadow_mode", &json!(true))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    live.ticket("t_shadow", "Where is my order #1001?");
    live.shipped_order("t_shadow");
    live.rp.clear_journal();
    live.deliver("t_shadow").await;
    live.server.drain().await;
    let journal = live.rp.journal();
    assert!(
        journal.iter().any(|e| e.path == "/v1/tickets/t_shadow"),
        "it did read the conversation"
    );
    assert!(
        journal.iter().all(|e| e.method == "GET"),
        "shadow mode wrote: {:?}",
        journal
            .iter()
            .filter(|e| e.method != "GET")
            .map(|e| &e.path)
            .collect::<Vec<_>>()
    );
    let trail = live.server.store.audit_trail("t_shadow").await.unwrap();
    let record = trail.last().unwrap();
    assert_eq!(record.mode, "shadow");
    assert!(
        record.decision.as_ref().unwrap().reply.is_some(),
        "the decision is still audited in full"
    );
    assert!(record.actions.iter().all(|a| a.outcome == "skipped_shadow"));
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_classification_per_message_across_redeliveries_and_retries() {
    let live = live("vendors-calls").await;
    // Three conversations; one has a new customer message later; every webhook is
    // delivered twice; the first tagging of t_c2 fails, so its event is retried.
    for (id, text) in [
        ("t_c1", "My mug arrived cracked, what can I do?"),
        ("t_c2", "Where is my order #1001?"),
        ("t_c3", "Do you ship to Canada?"),
    ] {
        live.ticket(id, text);
    }
    live.shipped_order("t_c2");
    live.rp.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/t_c2/add-tags"),
        Fault::Status {
            status: 503,
            body: "{}".into(),
        },
        3,
    );
    for id in ["t_c1", "t_c2", "t_c3", "t_c1", "t_c2", "t_c3"] {
        live.deliver(id).await;
    }
    live.server.drain().await;
    live.rp
        .add_customer_message("t_c1", "Also, the handle is chipped.");
    live.deliver("t_c1").await;
    live.deliver("t_c1").await;
    live.server.drain().await;

    assert_eq!(
        live.ai.calls_for_schema("mw_decision_v1"),
        4,
        "one call per unique customer message"
    );
    assert_eq!(
        live.ai.calls_for_schema("mw_tier2_verifier_v1"),
        1,
        "only the Tier 2 candidate is verified"
    );
    let retried = live
        .rp
        .journal()
        .iter()
        .filter(|e| e.path == "/v1/tickets/t_c2/add-tags")
        .count();
    assert!(
        retried >= 4,
        "the failing event was retried ({retried} tag calls)"
    );
    assert_eq!(live.bot_comments("t_c2").len(), 1);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_under_the_tenant_rate_limit_with_almost_no_429s() {
    // The full-size figures come from `cargo bench -p mw-tests --bench richpanel_drain`.
    let report = mw_tests::drain_backlog("vendors-drain", 100, 50).await;
    assert_eq!(report.replies, 100, "{report:?}");
    assert!(report.throttled_share() < 0.01, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_tenant_fixes_tags_and_prints_no_customer_data() {
    use mw_cli::doctor::{DoctorOptions, Status, doctor, failed, render};
    let rp = FakeRichpanel::start(RP_KEY).await.unwrap();
    let bot = rp.add_user("Support Bot", "bot@shop.example");
    for team in ["Email Support Team", "Returns Admin", "Leadership Team"] {
        rp.add_team(team);
    }
    let ai = FakeOpenAi::start(AI_KEY).await.unwrap();
    ai.set_responder(|_| FakeReply::Content(json!({"ok": true})));
    let live = Live {
        server: start("doctor", |_| {}).await,
        rp,
        ai,
        bot: bot.clone(),
        verifier_allows: Arc::new(AtomicBool::new(true)),
    };
    live.ticket("t_d1", "Where is my order? jane.doe@example.com");
    live.shipped_order("t_d1");
    live.ticket("t_d2", "Hello");
    let settings = mw_cli::serve::ServeSettings {
        richpanel_base_url: Some(live.rp.base_url()),
        richpanel_api_key: Some(RP_KEY.into()),
        richpanel_bot_author_id: Some(bot),
        richpanel_rate_limit: Some(1000),
        richpanel_rate_window_secs: Some(1.0),
        openai_base_url: Some(live.ai.base_url()),
        openai_api_key: Some(AI_KEY.into()),
        ..Default::default()
    };
    let engine = Engine::embedded().unwrap();
    let mut options = DoctorOptions {
        fix: false,
        conversations: vec!["t_d1".into(), "t_d2".into()],
    };
    let checks = doctor(&settings, engine.policy.config(), &options)
        .await
        .unwrap();
    let status = |name: &str| checks.iter().find(|c| c.name == name).map(|c| c.status);
    assert_eq!(status("richpanel key"), Some(Status::Ok));
    assert_eq!(status("tags"), Some(Status::Fail));
    assert_eq!(status("teams"), Some(Status::Warn), "{}", render(&checks));
    assert_eq!(status("bot author"), Some(Status::Ok));
    assert_eq!(status("openai"), Some(Status::Ok));
    let linkage = checks.iter().find(|c| c.name == "order linkage").unwrap();
    assert!(
        linkage
            .detail
            .starts_with("2 sampled: 1 with one linked order (1 with tracking), 1 without"),
        "{}",
        linkage.detail
    );
    assert!(failed(&checks));
    let printed = render(&checks);
    for private in ["jane.doe", "#1001", "1Z999", "Where is my order"] {
        assert!(!printed.contains(private), "doctor printed {private}");
    }

    options.fix = true;
    let checks = doctor(&settings, engine.policy.config(), &options)
        .await
        .unwrap();
    assert_eq!(
        checks.iter().find(|c| c.name == "tags").unwrap().status,
        Status::Fixed
    );
    let checks = doctor(&settings, engine.policy.config(), &options)
        .await
        .unwrap();
    assert_eq!(
        checks.iter().find(|c| c.name == "tags").unwrap().status,
        Status::Ok
    );

    // A wrong key fails clearly and stops the Richpanel checks.
    let wrong = mw_cli::serve::ServeSettings {
        richpanel_api_key: Some("nope".into()),
        ..settings.clone()
    };
    let checks = doctor(&wrong, engine.policy.config(), &options)
        .await
        .unwrap();
    let key = checks.iter().find(|c| c.name == "richpanel key").unwrap();
    assert_eq!(key.status, Status::Fail);
    assert!(
        key.detail.contains("MW_RICHPANEL_API_KEY"),
        "{}",
        key.detail
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_fails_transiently_is_retried_once_and_one_rejected_for_good_is_tagged() {
    let live = live("vendors-sendfail").await;
    // 503, nothing applied: the event is retried, the pending reply reconciled
    // (not there), then sent once.
    live.ticket("t_503", "My mug arrived cracked, what can I do?");
    live.rp.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/t_503/send-message"),
        Fault::Status {
            status: 503,
            body: "{}".into(),
        },
        1,
    );
    live.deliver("t_503").await;
    live.server.drain().await;
    assert_eq!(live.bot_comments("t_503").len(), 1);
    assert!(!live.tags("t_503").contains(&"mw-send-failed".to_owned()));
    let sends = live
        .writes("t_503")
        .into_iter()
        .filter(|w| w.path.ends_with("/send-message"))
        .count();
    assert_eq!(sends, 2, "one failed attempt, one after the retry");

    // 400: the reply is given up, tagged for a human, and not retried.
    live.ticket("t_400", "My mug arrived cracked, what can I do?");
    live.rp.fault(
        RouteMatch::new(Method::PUT, "/v1/tickets/t_400/send-message"),
        Fault::Status {
            status: 400,
            body: json!({"error": "body too long"}).to_string(),
        },
        1,
    );
    live.deliver("t_400").await;
    live.server.drain().await;
    assert!(live.bot_comments("t_400").is_empty());
    assert!(live.tags("t_400").contains(&"mw-send-failed".to_owned()));
    let sends = live
        .writes("t_400")
        .into_iter()
        .filter(|w| w.path.ends_with("/send-message"))
        .count();
    assert_eq!(sends, 1);
    live.stop().await;
}
