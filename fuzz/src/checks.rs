//! Fuzzing invariants of the mw middleware: one pure function per fuzz target.
//!
//! Each `check_<target>` takes the raw fuzzer input and returns `Err` with a clear
//! message when an invariant does not hold. The functions never panic themselves, so
//! a panic while one runs is a panic in the product code under test.
//!
//! The fuzz targets (`fuzz/fuzz_targets/<target>.rs`) panic on `Err`; the regression
//! test `tests/tests/fuzz_corpus.rs` of the main workspace includes this file with
//! `#[path]` and runs the same checks over `fuzz/regressions/<target>/` and over
//! inputs derived from the golden set, so the logic exists once.

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use mw_adapters::webhook::{canonical, parse_payload};
use mw_core::{
    AppliedTier, AutomationAction, Channel, Classification, DecideInput, Decision, Language,
    Marker, ModelDecision, ModelOutput, Order, OrderFacts, OrderLookup, RenderError, Renderer,
    ReplyHistory, RuntimeFlags, TemplateCatalog, Tier, Variables, VerifierInput, contains_pii,
    decide, ingress_event_key, parse_decision, redact, validate_decision, variable_present,
};
use mw_policy::{Prescreen, RulesClassifier, RulesVerifier, TierPolicy};
use mw_templates::{Catalog, first_name};
use regex::Regex;
use serde_json::Value;

/// The shipped policy, catalog, rules classifier, verifier and pre-screen, assembled
/// as `mw_cli::Engine::embedded()` does (without depending on the CLI crate).
struct Engine {
    policy: TierPolicy,
    catalog: Catalog,
    rules: RulesClassifier,
    verifier: RulesVerifier,
    prescreen: Prescreen,
}

static ENGINE: LazyLock<Result<Engine, String>> = LazyLock::new(|| {
    let rules = RulesClassifier::embedded().map_err(|error| error.to_string())?;
    let prescreen = Prescreen::embedded().map_err(|error| error.to_string())?;
    let policy = TierPolicy::with_defaults().map_err(|error| error.to_string())?;
    let catalog = Catalog::embedded().map_err(|error| error.to_string())?;
    Ok(Engine {
        policy,
        catalog,
        verifier: RulesVerifier::new(rules.clone(), prescreen.clone()),
        rules,
        prescreen,
    })
});

fn engine() -> Result<&'static Engine, String> {
    ENGINE
        .as_ref()
        .map_err(|error| format!("the shipped engine does not load: {error}"))
}

/// A fixed "now" (a Wednesday), so decisions are reproducible.
fn now() -> Result<DateTime<Utc>, String> {
    Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
        .single()
        .ok_or_else(|| "the fixed clock is not a valid time".to_owned())
}

/// A shipped order with tracking: a deterministic match makes Tier 2 reachable.
const ORDER_WITH_TRACKING: &str = r##"{"orderId": "5100000010544", "orderName": "#10544",
    "status": "confirmed", "fulfillmentStatus": "fulfilled", "financialStatus": "paid",
    "createdAt": "2026-11-13T10:00:00Z", "amount": 58.0, "currency": "USD",
    "statusUrl": "https://shop.example.com/account/orders/10544/status",
    "shippingMethod": "Standard Shipping",
    "fulfillment": [{"status": "in_transit", "createdAt": "2026-11-16T10:00:00Z",
        "tracking": [{"trackingNumber": "1Z999AA10123456784", "trackingCompany": "UPS",
                      "trackingUrl": "https://ups.example/1Z999AA10123456784"}]}]}"##;

/// An unshipped order inside its delivery promise: the ETA template is reachable.
const ORDER_WITHOUT_TRACKING: &str = r##"{"orderId": "5100000010600", "orderName": "#10600",
    "status": "confirmed", "fulfillmentStatus": "unfulfilled", "financialStatus": "paid",
    "createdAt": "2026-11-17T10:00:00Z", "amount": 31.5, "currency": "USD",
    "shippingMethod": "Standard Shipping", "fulfillment": []}"##;

fn lookup(order_json: Option<&str>) -> Result<OrderLookup, String> {
    let Some(text) = order_json else {
        return Ok(OrderLookup::None);
    };
    let order: Order = serde_json::from_str(text)
        .map_err(|error| format!("a fixture order does not parse: {error}"))?;
    Ok(OrderLookup::One {
        order: Box::new(order),
    })
}

/// One message context in which a classification is decided on.
struct Scenario {
    name: &'static str,
    channel: Option<Channel>,
    order: Option<&'static str>,
}

/// Contexts where automation is possible (channel enabled, flags default), so a
/// broken gate would show up as a customer message.
const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "email, shipped order",
        channel: Some(Channel::Email),
        order: Some(ORDER_WITH_TRACKING),
    },
    Scenario {
        name: "livechat, unshipped order",
        channel: Some(Channel::Livechat),
        order: Some(ORDER_WITHOUT_TRACKING),
    },
    Scenario {
        name: "email, no order",
        channel: Some(Channel::Email),
        order: None,
    },
];

/// A benign order-status message for the model-output target (the model output is
/// what is fuzzed there, not the text).
const ORDER_STATUS_TEXT: &str =
    "Hi, where is my order? Can you please send me the tracking number for it, thanks";

/// `decide`, then the verifier and `decide` again when the policy asks for it, as
/// the runtime engine does.
fn decide_full(
    engine: &Engine,
    scenario: &Scenario,
    text: &str,
    classification: &Classification,
) -> Result<Decision, String> {
    let order = lookup(scenario.order)?;
    let flags = RuntimeFlags::default();
    let history = ReplyHistory::default();
    let mut input = DecideInput {
        channel: scenario.channel,
        text,
        customer_name: Some("Ana Gómez"),
        order: &order,
        classification,
        verifier: &VerifierInput::NotRun,
        flags: Some(&flags),
        history: &history,
        now: now()?,
    };
    let first = decide(&input, &engine.policy, &engine.catalog);
    let Some(request) = &first.verifier_request else {
        return Ok(first);
    };
    let answer = VerifierInput::Json(engine.verifier.verify_request(request));
    input.verifier = &answer;
    Ok(decide(&input, &engine.policy, &engine.catalog))
}

/// Invariants of every decision: a customer message only at Tier 1 or 2, only from
/// a catalog template of that tier, enabled for the channel, with a non-empty body;
/// Tier 2 only with a deterministic order match; never more than the action budget.
fn check_decision(engine: &Engine, scenario: &Scenario, decision: &Decision) -> Result<(), String> {
    let at = scenario.name;
    let sends = decision.sends_customer_message();
    if sends != decision.reply.is_some() {
        return Err(format!(
            "[{at}] a SendReply action and the reply disagree (sends={sends})"
        ));
    }
    if decision.actions.len() > mw_core::MAX_ACTIONS {
        return Err(format!(
            "[{at}] {} actions exceed MAX_ACTIONS",
            decision.actions.len()
        ));
    }
    let Some(reply) = &decision.reply else {
        if decision.close {
            return Err(format!("[{at}] a conversation is closed without a reply"));
        }
        return Ok(());
    };
    let tier = match decision.tier {
        AppliedTier::Tier1 => 1,
        AppliedTier::Tier2 => 2,
        other => {
            return Err(format!(
                "[{at}] a customer message is sent at tier {}",
                other.as_str()
            ));
        }
    };
    if decision.tier == AppliedTier::Tier2 && !decision.deterministic_order_match {
        return Err(format!(
            "[{at}] a Tier 2 reply without a deterministic order match"
        ));
    }
    let Some(info) = engine.catalog.template(&reply.template_id) else {
        return Err(format!(
            "[{at}] reply template '{}' is not in the catalog",
            reply.template_id
        ));
    };
    if info.tier != tier || !info.enabled {
        return Err(format!(
            "[{at}] reply template '{}' (tier {}, enabled {}) sent at tier {tier}",
            reply.template_id, info.tier, info.enabled
        ));
    }
    if !scenario
        .channel
        .is_some_and(|channel| info.channels.contains(&channel))
    {
        return Err(format!(
            "[{at}] reply template '{}' is not allowed on this channel",
            reply.template_id
        ));
    }
    if reply.body.trim().is_empty() {
        return Err(format!("[{at}] an empty reply body"));
    }
    if reply.body.contains("{{") || reply.body.contains("{%") {
        return Err(format!(
            "[{at}] reply '{}' contains unrendered template syntax",
            reply.template_id
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// webhook_payload
// ---------------------------------------------------------------------------

/// Whether an id is safe inside an event key (`evt:rp:{conversation}:{message}`):
/// non-empty, at most 128 characters, from the schema's id alphabet (numbers print
/// with digits, `.`, `-` and `e`).
fn id_is_key_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

fn event_key(event: &mw_core::InboundEvent, payload: &Value) -> Result<String, String> {
    let bytes = serde_json::to_vec(&canonical(payload))
        .map_err(|error| format!("the canonical payload does not serialise: {error}"))?;
    Ok(ingress_event_key(event, &bytes))
}

/// `webhook_payload`: the bytes are a webhook body.
///
/// - `parse_payload` never panics and gives the same answer for the same bytes;
/// - on `Ok`, the conversation id is non-empty and key-safe (so is the message id),
///   and the event key is deterministic and starts with `evt:rp:{conversation}:`;
/// - `canonical` is idempotent;
/// - the canonical bytes the ingress stores re-parse (as the worker does) to the
///   same event.
pub fn check_webhook_payload(data: &[u8]) -> Result<(), String> {
    let (first, second) = (parse_payload(data), parse_payload(data));
    let ((event, payload), (again, payload_again)) = match (first, second) {
        (Err(a), Err(b)) if a == b => return Ok(()),
        (Err(a), Err(b)) => {
            return Err(format!(
                "the same bytes were rejected differently: {a} / {b}"
            ));
        }
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err("the same bytes were accepted once and rejected once".into()),
    };
    if event != again || payload != payload_again {
        return Err("the same bytes parsed to different events".into());
    }
    if event.conversation_id.trim().is_empty() {
        return Err("an accepted payload has an empty conversation id".into());
    }
    if !id_is_key_safe(&event.conversation_id) {
        return Err(format!(
            "conversation id {:?} is not key-safe",
            event.conversation_id
        ));
    }
    if let Some(message_id) = &event.message_id
        && !id_is_key_safe(message_id)
    {
        return Err(format!("message id {message_id:?} is not key-safe"));
    }
    let key = event_key(&event, &payload)?;
    if key != event_key(&again, &payload_again)? {
        return Err("the event key is not deterministic".into());
    }
    let prefix = format!("evt:rp:{}:", event.conversation_id);
    if !key.starts_with(&prefix) || key.len() <= prefix.len() {
        return Err(format!("event key {key:?} does not start with {prefix:?}"));
    }
    let canonical_once = canonical(&payload);
    if canonical(&canonical_once) != canonical_once {
        return Err("canonical() is not idempotent".into());
    }
    let stored = serde_json::to_vec(&canonical_once)
        .map_err(|error| format!("the canonical payload does not serialise: {error}"))?;
    match parse_payload(&stored) {
        Ok((reparsed, _)) if reparsed == event => Ok(()),
        Ok((reparsed, _)) => Err(format!(
            "the stored canonical payload re-parses to a different event: {:?} vs {:?}",
            reparsed.conversation_id, event.conversation_id
        )),
        Err(error) => Err(format!(
            "the stored canonical payload is rejected by the worker: {error}"
        )),
    }
}

// ---------------------------------------------------------------------------
// model_output
// ---------------------------------------------------------------------------

/// Whether two JSON values are equal, numbers compared to a relative 1e-12 (a float
/// may move by one unit in the last place through serde_json's default parser).
fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_close(x, y)))
        }
        _ => a == b,
    }
}

/// An accepted decision serialises, re-parses, re-validates and is unchanged.
fn check_round_trip(decision: &ModelDecision) -> Result<(), String> {
    let text = serde_json::to_string(decision)
        .map_err(|error| format!("an accepted output does not serialise: {error}"))?;
    let again = parse_decision(&text).map_err(|error| {
        format!("an accepted output fails validation after a serialise/parse round trip: {error}")
    })?;
    let (a, b) = (
        serde_json::to_value(decision).map_err(|error| error.to_string())?,
        serde_json::to_value(&again).map_err(|error| error.to_string())?,
    );
    if !json_close(&a, &b) {
        return Err("an accepted output changes through a serialise/parse round trip".into());
    }
    Ok(())
}

/// Model-advice invariants of a decision made on a *valid* model output.
fn check_advice(
    scenario: &Scenario,
    model: &ModelDecision,
    decision: &Decision,
) -> Result<(), String> {
    let at = scenario.name;
    let sends = decision.sends_customer_message();
    let tier0_intent = std::iter::once(model.primary_intent)
        .chain(model.secondary_intents.iter().copied())
        .any(|intent| intent.is_tier0());
    if (tier0_intent || !model.risk.flags.is_empty())
        && (decision.tier != AppliedTier::Tier0 || sends)
    {
        return Err(format!(
            "[{at}] a Tier 0 intent or risk flag ended at {} (sends={sends})",
            decision.tier.as_str()
        ));
    }
    let route_only = model.risk.force_human
        || model.routing.needs_manual_triage
        || model.automation.tier == Tier::Tier3AutoAction
        || model.automation.action == AutomationAction::RouteOnly;
    if route_only && sends {
        return Err(format!(
            "[{at}] the model asked for a human or route-only, yet a customer message is sent"
        ));
    }
    Ok(())
}

/// `model_output`: the bytes are a raw classifier output (`mw_decision_v1` JSON
/// text, or anything else).
///
/// - `parse_decision` never panics and agrees with `validate_decision` on the same
///   JSON;
/// - an accepted output re-validates, unchanged, after a serialise/parse round trip;
/// - driven through `decide` (with the verifier) in contexts where automation is
///   possible: decisions are deterministic; an output that fails validation never
///   leads to a customer message and is marked `ModelFailure`; Tier 0 intents or
///   risk flags always end at Tier 0; a model asking for a human, manual triage,
///   Tier 3 or route-only never leads to a customer message; any reply is a catalog
///   template of its tier, allowed on the channel.
pub fn check_model_output(data: &[u8]) -> Result<(), String> {
    let engine = engine()?;
    let text = String::from_utf8_lossy(data);
    let parsed = parse_decision(&text);
    let value: Option<Value> = serde_json::from_str(&text).ok();
    match (&parsed, &value) {
        (Ok(_), None) => return Err("parse_decision accepted text that is not JSON".into()),
        (Ok(decision), Some(value)) => match validate_decision(value) {
            Ok(typed) if typed == *decision => {}
            _ => return Err("parse_decision and validate_decision disagree".into()),
        },
        (Err(_), Some(value)) if validate_decision(value).is_ok() => {
            return Err("validate_decision accepts JSON that parse_decision rejects".into());
        }
        (Err(_), _) => {}
    }
    if let Ok(decision) = &parsed {
        check_round_trip(decision)?;
    }
    let classification = Classification {
        output: value.map_or_else(|| ModelOutput::Failed("not JSON".into()), ModelOutput::Json),
        scores: Vec::new(),
        verification: None,
    };
    for (number, scenario) in SCENARIOS.iter().enumerate() {
        let decision = decide_full(engine, scenario, ORDER_STATUS_TEXT, &classification)?;
        if number == 0
            && decide_full(engine, scenario, ORDER_STATUS_TEXT, &classification)? != decision
        {
            return Err(format!("[{}] decide is not deterministic", scenario.name));
        }
        check_decision(engine, scenario, &decision)?;
        match &parsed {
            Err(_) => {
                if decision.sends_customer_message() || decision.reply.is_some() {
                    return Err(format!(
                        "[{}] an output that fails validation led to a customer message",
                        scenario.name
                    ));
                }
                if !decision.markers.contains(&Marker::ModelFailure) {
                    return Err(format!(
                        "[{}] an output that fails validation is not marked as a model failure",
                        scenario.name
                    ));
                }
            }
            Ok(model) => check_advice(scenario, model, &decision)?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// template_render
// ---------------------------------------------------------------------------

/// Field separator of `template_render` inputs: never part of valid UTF-8, so every
/// UTF-8 string can be a value.
pub const TEMPLATE_FIELD_SEPARATOR: u8 = 0xFF;

/// The scalar variables, in input field order (fields 1 to 10).
pub const TEMPLATE_SCALARS: [&str; 10] = [
    "first_name",
    "order_id",
    "order_status",
    "fulfillment_status",
    "tracking_number",
    "tracking_company",
    "tracking_url",
    "status_url",
    "shipping_bucket",
    "eta_remaining_human",
];

/// The keys of one `shipments` entry, in input field order.
const SHIPMENT_KEYS: [&str; 3] = ["tracking_number", "tracking_company", "tracking_url"];

/// Values the shipped templates compare variables against (`==`): such a value
/// changes control flow, so it is kept rather than replaced by a sentinel.
const COMPARED_LITERALS: [&str; 4] = ["partially fulfilled", "Standard", "Rushed", "Priority"];

/// Most packages whose render must always succeed (more may run out of fuel).
const MAX_PACKAGES_ALWAYS_RENDERED: usize = 50;

/// A sentinel standing for value number `index` (private-use characters).
fn sentinel(index: usize) -> String {
    format!("\u{E000}{index}\u{E001}")
}

/// Replaces every sentinel in `text` by its value, in one pass (values are never
/// scanned, so a value that looks like a sentinel stays as it is).
fn substitute(text: &str, values: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{E000}') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '\u{E000}'.len_utf8()..];
        let end = after
            .find('\u{E001}')
            .ok_or("an unterminated sentinel in the rendered body")?;
        let index: usize = after[..end]
            .parse()
            .map_err(|_| "a malformed sentinel in the rendered body")?;
        let value = values
            .get(index)
            .ok_or("a sentinel with an unknown index in the rendered body")?;
        out.push_str(value);
        rest = &after[end + '\u{E001}'.len_utf8()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What one `template_render` input decodes to.
struct TemplateCase {
    template_id: String,
    language: Language,
    channel: Channel,
    /// Every string value, in input order (the sentinels' indexes).
    values: Vec<String>,
    /// Variables with the hostile values.
    real: Variables,
    /// The same variables with each value replaced by its sentinel.
    sentinels: Variables,
    packages: usize,
}

fn decode_template_case(catalog: &Catalog, data: &[u8]) -> Result<TemplateCase, String> {
    let mut fields = data.split(|byte| *byte == TEMPLATE_FIELD_SEPARATOR);
    let header = fields.next().unwrap_or_default();
    let byte = |index: usize| usize::from(header.get(index).copied().unwrap_or(0));
    let ids: Vec<&str> = catalog.specs().map(|spec| spec.id.as_str()).collect();
    let template_id = ids
        .get(byte(0) % ids.len().max(1))
        .ok_or("the catalog is empty")?
        .to_string();
    let language = if byte(1) % 2 == 0 {
        Language::En
    } else {
        Language::Es
    };
    let channels: Vec<Channel> = Channel::all().collect();
    let channel = channels
        .get(byte(2) % channels.len().max(1))
        .copied()
        .unwrap_or(Channel::Email);
    let values: Vec<String> = fields
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    let mut case = TemplateCase {
        template_id,
        language,
        channel,
        values: Vec::new(),
        real: Variables::new(),
        sentinels: Variables::new(),
        packages: 0,
    };
    for (index, (name, value)) in TEMPLATE_SCALARS.iter().zip(&values).enumerate() {
        let keep = value.trim().is_empty() || COMPARED_LITERALS.contains(&value.as_str());
        let stand_in = if keep { value.clone() } else { sentinel(index) };
        case.real
            .insert((*name).to_owned(), Value::from(value.as_str()));
        case.sentinels
            .insert((*name).to_owned(), Value::from(stand_in));
    }
    let mut real_shipments = Vec::new();
    let mut sentinel_shipments = Vec::new();
    let first_package = TEMPLATE_SCALARS.len();
    for (package, chunk) in values
        .get(first_package..)
        .unwrap_or_default()
        .chunks_exact(SHIPMENT_KEYS.len())
        .enumerate()
    {
        let mut real = serde_json::Map::new();
        let mut stand_in = serde_json::Map::new();
        for (offset, (key, value)) in SHIPMENT_KEYS.iter().zip(chunk).enumerate() {
            let index = first_package + package * SHIPMENT_KEYS.len() + offset;
            real.insert((*key).to_owned(), Value::from(value.as_str()));
            let replacement = if value.is_empty() {
                String::new()
            } else {
                sentinel(index)
            };
            stand_in.insert((*key).to_owned(), Value::from(replacement));
        }
        real_shipments.push(Value::Object(real));
        sentinel_shipments.push(Value::Object(stand_in));
    }
    case.packages = real_shipments.len();
    if case.packages > 1 {
        case.real
            .insert("shipments".into(), Value::Array(real_shipments));
        case.sentinels
            .insert("shipments".into(), Value::Array(sentinel_shipments));
    }
    case.values = values;
    Ok(case)
}

/// The greeting sanitiser (`first_name`) only ever yields one letters-only word of
/// at most 30 characters taken from the name.
fn check_first_name(name: &str) -> Result<(), String> {
    let Some(word) = first_name(name) else {
        return Ok(());
    };
    let valid = !word.is_empty()
        && word.chars().count() <= 30
        && word.chars().next().is_some_and(char::is_alphabetic)
        && word
            .chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
        && name.split_whitespace().next() == Some(word.as_str());
    if valid {
        Ok(())
    } else {
        Err(format!("first_name() let {word:?} through"))
    }
}

/// `template_render`: the bytes are fields separated by `0xFF`. Field 0 is a header
/// (byte 0 picks the template in id order, byte 1 the language — even English, odd
/// Spanish —, byte 2 the channel in `Channel::all()` order); fields 1–10 are the
/// values of [`TEMPLATE_SCALARS`]; further fields come three by three as packages
/// (`tracking_number`, `tracking_company`, `tracking_url`), which become
/// `shipments` when there are two or more.
///
/// - rendering never panics and is deterministic;
/// - values are never template source: rendering with the hostile values equals
///   rendering with a sentinel per value and substituting the values afterwards, so
///   a value such as `{{ brand.links }}` or `{% for %}` appears verbatim, neither
///   evaluated nor escaped (bodies are plain text, as the catalog documents);
/// - the catalog's own syntax is fully rendered (no `{{`/`{%` outside values);
/// - a missing required variable is `MissingVariable`; with every required variable
///   present (and a bounded number of packages) rendering succeeds;
/// - the greeting's `first_name` sanitiser only lets a plain word through.
pub fn check_template_render(data: &[u8]) -> Result<(), String> {
    let catalog = &engine()?.catalog;
    let case = decode_template_case(catalog, data)?;
    let id = case.template_id.as_str();
    let info = catalog
        .template(id)
        .ok_or_else(|| format!("'{id}' is listed but not in the catalog"))?;
    let render = |variables: &Variables| catalog.render(id, case.language, case.channel, variables);
    let real = render(&case.real);
    if render(&case.real) != real {
        return Err(format!("rendering '{id}' is not deterministic"));
    }
    let stand_in = render(&case.sentinels);
    let missing = info
        .required
        .iter()
        .find(|name| !variable_present(&case.real, name));
    match (&real, &stand_in, missing) {
        (Ok(body), Ok(template_body), None) => {
            if template_body.contains("{{") || template_body.contains("{%") {
                return Err(format!("'{id}' leaves template syntax unrendered"));
            }
            let expected = substitute(template_body, &case.values)?;
            if expected.trim() != body {
                return Err(format!(
                    "'{id}': a variable value was evaluated or altered instead of inserted verbatim"
                ));
            }
        }
        (Err(RenderError::MissingVariable { variable, .. }), _, Some(name)) if variable == name => {
        }
        (_, _, Some(name)) => {
            return Err(format!(
                "'{id}' without required '{name}' did not fail with MissingVariable"
            ));
        }
        (Err(RenderError::Engine { .. }), Err(RenderError::Engine { .. }), None)
            if case.packages > MAX_PACKAGES_ALWAYS_RENDERED => {}
        (Err(error), _, None) => {
            return Err(format!(
                "'{id}' failed with every required variable present: {error}"
            ));
        }
        (Ok(_), Err(error), None) => {
            return Err(format!(
                "'{id}' rendered the values but not their sentinels: {error}"
            ));
        }
    }
    if let Some(name) = case.values.first() {
        check_first_name(name)?;
        let facts = OrderFacts::new(&OrderLookup::None, "", now()?);
        let variables = catalog.variables(None, &facts, Some(name), case.language);
        if let Some(greeting) = variables.get("first_name") {
            let allowed = first_name(name).map(Value::from);
            if Some(greeting) != allowed.as_ref() {
                return Err("the renderer's first_name variable bypasses the sanitiser".into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// redact
// ---------------------------------------------------------------------------

/// An independent, ASCII-only email pattern (a subset of what the redactor claims).
static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").ok()
});

/// Maximal runs of ASCII digits joined by single spaces or dashes.
static DIGIT_RUN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"[0-9](?:[ -]?[0-9])*").ok());

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, digit)| {
            if !index.is_multiple_of(2) {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                *digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card-like number left in `text`: within a run of ASCII digits joined by
/// single spaces or dashes, any whole groups that together hold 13–19 digits and
/// pass Luhn. Letters around the run do not matter: a card number glued to a word
/// (`visa4111…`, `…1111exp`) is still a card number.
fn card_left(text: &str) -> Result<Option<String>, String> {
    let regex = DIGIT_RUN
        .as_ref()
        .ok_or("the digit-run pattern does not compile")?;
    for found in regex.find_iter(text) {
        let groups: Vec<Vec<u32>> = found
            .as_str()
            .split([' ', '-'])
            .map(|group| group.chars().filter_map(|c| c.to_digit(10)).collect())
            .collect();
        for start in 0..groups.len() {
            let mut digits = Vec::new();
            for group in groups.iter().skip(start) {
                digits.extend_from_slice(group);
                if digits.len() > 19 {
                    break;
                }
                if digits.len() >= 13 && luhn(&digits) {
                    return Ok(Some(found.as_str().to_owned()));
                }
            }
        }
    }
    Ok(None)
}

/// `redact`: the bytes are text (lossy UTF-8).
///
/// - `redact` never panics, is deterministic and idempotent (so `contains_pii` is
///   false on its output: nothing it would replace is left, phones included);
/// - no email address (independent ASCII pattern) and no Luhn-valid 13–19 digit
///   card number (digits joined by single spaces or dashes) is left;
/// - the output is valid UTF-8.
pub fn check_redact(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let once = redact(&text);
    if redact(&text) != once {
        return Err("redact is not deterministic".into());
    }
    // `contains_pii(x)` is `redact(x) != x`: this is the idempotency check.
    if contains_pii(&once) {
        return Err(format!(
            "redact is not idempotent: {once:?} becomes {:?}",
            redact(&once)
        ));
    }
    let email = EMAIL.as_ref().ok_or("the email pattern does not compile")?;
    if email.is_match(&once) {
        return Err("an email address survives redaction".into());
    }
    if let Some(card) = card_left(&once)? {
        return Err(format!(
            "a Luhn-valid card number survives redaction: {card:?} in {once:?}"
        ));
    }
    if std::str::from_utf8(once.as_bytes()).is_err() {
        return Err("the redacted text is not valid UTF-8".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// rules_classifier
// ---------------------------------------------------------------------------

/// `rules_classifier`: the bytes are a customer message (lossy UTF-8).
///
/// - the embedded rules classifier never panics and is deterministic on the
///   redacted text (as the runtime calls it);
/// - its decision, on the redacted and on the raw text, validates against
///   `mw_decision_v1` and agrees with the outcome (primary, secondary, language,
///   confidences in 0..1);
/// - end to end (`decide` with the verifier, in contexts where automation is
///   possible): a message the Tier 0 pre-screen flags always ends at Tier 0 with
///   no customer message, and any reply is a catalog template of its tier.
pub fn check_rules_classifier(data: &[u8]) -> Result<(), String> {
    let engine = engine()?;
    let text = String::from_utf8_lossy(data);
    let redacted = redact(&text);
    let outcome = engine.rules.classify_text(&redacted);
    if engine.rules.classify_text(&redacted) != outcome {
        return Err("the rules classifier is not deterministic".into());
    }
    for (what, outcome) in [
        ("redacted", &outcome),
        ("raw", &engine.rules.classify_text(&text)),
    ] {
        let model = validate_decision(&outcome.decision).map_err(|error| {
            format!("the rules classifier produced an invalid decision on {what} text: {error}")
        })?;
        if model.primary_intent != outcome.primary
            || model.secondary_intents != outcome.secondary
            || model.language != outcome.language
        {
            return Err(format!(
                "the rules decision on {what} text disagrees with its outcome"
            ));
        }
        let confidences = std::iter::once(outcome.confidence)
            .chain(outcome.scores.iter().map(|score| score.confidence));
        for confidence in confidences {
            if !(0.0..=1.0).contains(&confidence) {
                return Err(format!("confidence {confidence} is outside 0..1"));
            }
        }
    }
    let classification = Classification {
        output: ModelOutput::Json(outcome.decision),
        scores: outcome.scores,
        verification: None,
    };
    let flagged = engine.prescreen.scan(&text);
    for (number, scenario) in SCENARIOS.iter().take(2).enumerate() {
        let decision = decide_full(engine, scenario, &text, &classification)?;
        if number == 0 && decide_full(engine, scenario, &text, &classification)? != decision {
            return Err(format!("[{}] decide is not deterministic", scenario.name));
        }
        check_decision(engine, scenario, &decision)?;
        if let Some(hit) = flagged
            && (decision.tier != AppliedTier::Tier0 || decision.sends_customer_message())
        {
            return Err(format!(
                "[{}] the pre-screen flags {} but the decision is {}",
                scenario.name,
                hit.intent,
                decision.tier.as_str()
            ));
        }
    }
    Ok(())
}
