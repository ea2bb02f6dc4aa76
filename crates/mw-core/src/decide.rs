//! The pure `decide`: event data + classifier output (+ verifier output) + flags +
//! history + `now` → [`Decision`]. No I/O, no clock, no randomness.
//!
//! Tier 2 is a two-step call: when the policy needs the verifier, the first decision
//! is the fail-closed one and carries a [`VerifierRequest`](crate::VerifierRequest);
//! run the verifier and call `decide` again with its answer.

use chrono::{DateTime, Utc};

use crate::decision::{Action, AppliedTier, Decision, Gate, Reason, Reply, Verdict, tags_for};
use crate::model::{OrderLookup, ReplyHistory, RuntimeFlags};
use crate::order::OrderFacts;
use crate::ports::{
    Classification, ModelOutput, Policy, PolicyInput, Renderer, VerifierInput, VerifierState,
};
use crate::schema::{validate_decision, validate_verifier};
use crate::vocab::{Channel, Language};

/// Everything one decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct DecideInput<'a> {
    /// Conversation channel, if known.
    pub channel: Option<Channel>,
    /// The customer's raw text (never leaves the process).
    pub text: &'a str,
    /// Customer display name, for the greeting.
    pub customer_name: Option<&'a str>,
    /// Linked order(s).
    pub order: &'a OrderLookup,
    /// Classifier output (validated here).
    pub classification: &'a Classification,
    /// Verifier output, when it was run (validated here).
    pub verifier: &'a VerifierInput,
    /// Runtime flags; `None` = unreadable (⇒ safe mode).
    pub flags: Option<&'a RuntimeFlags>,
    /// Past automated replies.
    pub history: &'a ReplyHistory,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Decides what to do with one event. Never panics; any failure ends in route-only.
pub fn decide(input: &DecideInput<'_>, policy: &dyn Policy, renderer: &dyn Renderer) -> Decision {
    let model = match &input.classification.output {
        ModelOutput::Json(value) => validate_decision(value).map_err(|error| error.to_string()),
        ModelOutput::Failed(reason) => Err(format!("classifier failed: {reason}")),
    };
    let verifier = match input.verifier {
        VerifierInput::NotRun => VerifierState::NotRun,
        VerifierInput::Json(value) => match validate_verifier(value) {
            Ok(answer) => VerifierState::Answered(answer),
            Err(error) => VerifierState::Failed(error.to_string()),
        },
        VerifierInput::Failed(reason) => VerifierState::Failed(reason.clone()),
    };
    let facts = OrderFacts::new(input.order, input.text, input.now);
    let language = model
        .as_ref()
        .map_or(Language::Unknown, |m| m.language)
        .reply_language();
    let variables = renderer.variables(input.order.single(), &facts, input.customer_name, language);
    let verdict = policy.evaluate(&PolicyInput {
        channel: input.channel,
        text: input.text,
        model: model.as_ref().map_err(String::as_str),
        scores: &input.classification.scores,
        verifier: &verifier,
        flags: input.flags,
        history: input.history,
        now: input.now,
        order: &facts,
        catalog: renderer,
        variables: &variables,
    });
    finish(
        verdict,
        input,
        renderer,
        &variables,
        facts.deterministic_match,
    )
}

/// Defence in depth: conditions under which no customer message may leave, whatever
/// the policy said. Returns the reason code when one holds.
fn guard(verdict: &Verdict, input: &DecideInput<'_>) -> Option<&'static str> {
    let Some(flags) = input.flags else {
        return Some("flags_unreadable");
    };
    if verdict.tier == AppliedTier::Tier0 {
        Some("tier0_never_automated")
    } else if flags.safe_mode {
        Some("safe_mode")
    } else if !flags.automation_enabled {
        Some("automation_disabled")
    } else if !input
        .channel
        .is_some_and(|channel| flags.channel_enabled(channel))
    {
        Some("channel_disabled")
    } else {
        None
    }
}

fn downgrade(verdict: &mut Verdict, gate: Gate, code: &str, detail: String) {
    verdict.reply = None;
    verdict.automation_confidence = None;
    if verdict.tier != AppliedTier::Tier0 {
        verdict.tier = AppliedTier::RouteOnly;
    }
    verdict.reasons.push(Reason::new(gate, code, detail));
}

fn finish(
    mut verdict: Verdict,
    input: &DecideInput<'_>,
    renderer: &dyn Renderer,
    variables: &crate::ports::Variables,
    deterministic_order_match: bool,
) -> Decision {
    if verdict.reply.is_some()
        && let Some(code) = guard(&verdict, input)
    {
        downgrade(
            &mut verdict,
            Gate::Guard,
            code,
            "no customer message under this condition".into(),
        );
    }
    let mut reply = None;
    if let (Some(plan), Some(channel)) = (verdict.reply.clone(), input.channel) {
        match renderer.render(&plan.template_id, verdict.language, channel, variables) {
            Ok(body) => {
                let version = renderer
                    .template(&plan.template_id)
                    .map_or(0, |info| info.version);
                reply = Some(Reply {
                    template_id: plan.template_id,
                    template_version: version,
                    language: verdict.language,
                    body,
                });
            }
            Err(error) => downgrade(
                &mut verdict,
                Gate::Render,
                "render_failed",
                error.to_string(),
            ),
        }
    }
    let close = reply.is_some() && verdict.reply.as_ref().is_some_and(|plan| plan.auto_close);
    let tags = tags_for(&verdict, reply.is_some(), close);
    let mut actions = vec![Action::AddTags { tags: tags.clone() }];
    if let (Some(assignee_id), false) = (&verdict.assignee_id, close) {
        actions.push(Action::Assign {
            team: verdict.team_name.clone(),
            assignee_id: assignee_id.clone(),
        });
    }
    if let Some(reply) = &reply {
        actions.push(Action::SendReply {
            template_id: reply.template_id.clone(),
            template_version: reply.template_version,
            body: reply.body.clone(),
        });
    }
    if close {
        actions.push(Action::Close);
    }
    Decision {
        tier: verdict.tier,
        language: verdict.language,
        primary_intent: verdict.primary_intent,
        secondary_intents: verdict.secondary_intents,
        team: verdict.team,
        team_name: verdict.team_name,
        routing_confidence: verdict.routing_confidence,
        automation_confidence: verdict.automation_confidence,
        markers: verdict.markers,
        tags,
        reply,
        close,
        actions,
        deterministic_order_match,
        verifier_request: verdict.verifier_request,
        reasons: verdict.reasons,
    }
}
