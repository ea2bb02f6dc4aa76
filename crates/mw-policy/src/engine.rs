//! The tier policy: kill switch, Gate A (Tier 0), the injection screen, multi-intent priority,
//! confidence, team fallback, Gate C (Tier 3), Gate B (Tier 2), Tier 1, Gate D
//! (templates only), reply limits and auto-close — in that order. Pure.

use chrono::Duration;
use mw_core::{
    AppliedTier, AutomationAction, Gate, Intent, Language, Marker, MaxTier, ModelDecision, Policy,
    PolicyInput, Reason, ReplyPlan, Team, TemplateInfo, Tier, Verdict, VerifierRequest,
    VerifierState,
};
use mw_core::{DowngradeTier, Eta, redact, variable_present};

use crate::PolicyError;
use crate::config::PolicyConfig;
use crate::injection::{InjectionHit, InjectionScreen};
use crate::prescreen::Prescreen;
use crate::text::word_count;

/// The authoritative tier policy (implements [`Policy`]).
#[derive(Debug, Clone)]
pub struct TierPolicy {
    config: PolicyConfig,
    prescreen: Prescreen,
    /// `None` when the screen could not be compiled: every message is then
    /// treated as suspect (fail closed).
    injection: Option<InjectionScreen>,
}

/// Where a verdict routes, before any reply.
struct Route {
    tier: AppliedTier,
    intent: Intent,
    team: Team,
    language: Language,
    confidence: f64,
}

/// What the automation gates settled on.
enum Candidate {
    Route,
    Escalate,
    Reply {
        tier: AppliedTier,
        template_id: String,
        automation_confidence: Option<f64>,
    },
}

const ETA_TEMPLATE: &str = "t_order_eta_no_tracking_verified";
const TRACKING_TEMPLATE: &str = "t_order_status_verified";
const DELAY_TEMPLATE: &str = "t_shipping_delay_verified";
/// The templates Gate B chooses from.
const TIER2_TEMPLATES: [&str; 3] = [TRACKING_TEMPLATE, DELAY_TEMPLATE, ETA_TEMPLATE];

impl TierPolicy {
    /// A policy with an explicit configuration and pre-screen, and the shipped
    /// injection screen.
    pub fn new(config: PolicyConfig, prescreen: Prescreen) -> TierPolicy {
        TierPolicy {
            config,
            prescreen,
            injection: InjectionScreen::embedded().ok(),
        }
    }

    /// The same policy with another injection screen.
    pub fn with_injection_screen(mut self, screen: InjectionScreen) -> TierPolicy {
        self.injection = Some(screen);
        self
    }

    /// The SPEC defaults and the shipped pre-screen.
    pub fn with_defaults() -> Result<TierPolicy, PolicyError> {
        Ok(TierPolicy::new(
            PolicyConfig::default(),
            Prescreen::embedded()?,
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The Tier 0 pre-screen.
    pub fn prescreen(&self) -> &Prescreen {
        &self.prescreen
    }

    /// Runs the injection screen on raw text (a screen that failed to load
    /// reports every text, so nothing is automated).
    pub fn injection_scan(&self, text: &str) -> Option<InjectionHit> {
        match &self.injection {
            Some(screen) => screen.scan(text),
            None => Some(InjectionHit {
                category: "screen_unavailable".to_owned(),
            }),
        }
    }

    /// Every template the policy may ever send for an intent when it is the routed
    /// intent: its Tier 1 template and, for order-status intents, the Tier 2
    /// templates of Gate B.
    pub fn permitted_templates(&self, intent: Intent) -> Vec<String> {
        let mut templates: Vec<String> = self
            .config
            .tier1_templates
            .get(&intent)
            .cloned()
            .into_iter()
            .collect();
        if intent.max_tier() == MaxTier::Tier2 {
            for template in TIER2_TEMPLATES {
                if !templates.iter().any(|known| known == template) {
                    templates.push(template.to_owned());
                }
            }
        }
        templates
    }

    fn team_name(&self, team: Team, reasons: &mut Vec<Reason>) -> (String, bool) {
        if let Some(name) = self.config.tenant_team(team) {
            return (name.to_owned(), false);
        }
        reasons.push(Reason::new(
            Gate::Team,
            "team_fallback",
            format!("'{team}' is not configured for this tenant; routed to Email Support Team"),
        ));
        let fallback = self
            .config
            .tenant_team(Team::EmailSupport)
            .unwrap_or(Team::EmailSupport.as_str());
        (fallback.to_owned(), true)
    }

    /// Gate D: may this template be sent here, now?
    fn usable<'c>(
        &self,
        input: &PolicyInput<'c>,
        id: &str,
        tier: u8,
    ) -> Result<&'c TemplateInfo, String> {
        let info = input
            .catalog
            .template(id)
            .ok_or_else(|| format!("'{id}' is not in the catalog"))?;
        if info.tier != tier {
            return Err(format!(
                "'{id}' is a Tier {} template, Tier {tier} expected",
                info.tier
            ));
        }
        if !info.enabled {
            return Err(format!("'{id}' is disabled in the catalog"));
        }
        if !input.flags.is_some_and(|flags| flags.template_enabled(id)) {
            return Err(format!("'{id}' is disabled by a runtime flag"));
        }
        if !input
            .channel
            .is_some_and(|channel| info.channels.contains(&channel))
        {
            return Err(format!("'{id}' is not allowed on this channel"));
        }
        if let Some(missing) = info
            .required
            .iter()
            .find(|name| !variable_present(input.variables, name))
        {
            return Err(format!(
                "'{id}' needs variable '{missing}', which is not available"
            ));
        }
        Ok(info)
    }

    fn tier1(
        &self,
        input: &PolicyInput<'_>,
        intent: Intent,
        confidence: f64,
        reasons: &mut Vec<Reason>,
    ) -> Candidate {
        let Some(template) = self.config.tier1_templates.get(&intent) else {
            reasons.push(Reason::new(
                Gate::Tier1,
                "no_tier1_template",
                format!("no Tier 1 template is configured for {intent}"),
            ));
            return Candidate::Route;
        };
        let threshold = self.config.tier1_threshold(intent);
        if confidence < threshold {
            reasons.push(Reason::new(
                Gate::Tier1,
                "below_tier1_threshold",
                format!("confidence {confidence:.2} < {threshold:.2} for {intent}"),
            ));
            return Candidate::Route;
        }
        match self.usable(input, template, 1) {
            Ok(_) => {
                reasons.push(Reason::new(
                    Gate::Tier1,
                    "tier1_template",
                    format!("{template} for {intent}"),
                ));
                Candidate::Reply {
                    tier: AppliedTier::Tier1,
                    template_id: template.clone(),
                    automation_confidence: Some(confidence),
                }
            }
            Err(why) => {
                reasons.push(Reason::new(Gate::Template, "template_unusable", why));
                Candidate::Route
            }
        }
    }

    fn tier2(
        &self,
        input: &PolicyInput<'_>,
        intent: Intent,
        confidence: f64,
        reasons: &mut Vec<Reason>,
        markers: &mut Vec<Marker>,
        verifier_request: &mut Option<VerifierRequest>,
    ) -> Candidate {
        let t = &self.config.thresholds;
        let fallback = |code: &str, detail: String, reasons: &mut Vec<Reason>| {
            reasons.push(Reason::new(Gate::Tier2, code, detail));
            self.tier1(input, intent, confidence, reasons)
        };
        if confidence < t.tier2 {
            return fallback(
                "tier2_low_confidence",
                format!("confidence {confidence:.2} < {:.2}", t.tier2),
                reasons,
            );
        }
        if input.order.lookup_failed {
            markers.push(Marker::OrderLookupFailed);
            return fallback(
                "order_lookup_failed",
                "the linked order could not be read".into(),
                reasons,
            );
        }
        if !input.order.deterministic_match {
            return fallback(
                "no_deterministic_match",
                "not exactly one linked order, or the customer names a different order".into(),
                reasons,
            );
        }
        if input.order.cancelled {
            reasons.push(Reason::new(
                Gate::Tier2,
                "order_cancelled",
                "the order is cancelled or refunded; a human answers",
            ));
            return Candidate::Route;
        }
        let template = if input.order.has_tracking {
            if intent == Intent::ShippingDelayNotShipped {
                DELAY_TEMPLATE
            } else {
                TRACKING_TEMPLATE
            }
        } else {
            match input.order.eta {
                Eta::Remaining { .. } => ETA_TEMPLATE,
                Eta::Elapsed { .. } => {
                    reasons.push(Reason::new(
                        Gate::Tier2,
                        "eta_elapsed",
                        "no tracking and the delivery promise has passed; a human answers",
                    ));
                    return Candidate::Route;
                }
                Eta::Unknown => {
                    reasons.push(Reason::new(
                        Gate::Tier2,
                        "eta_unknown",
                        "no tracking and no order date or known shipping method",
                    ));
                    return Candidate::Route;
                }
            }
        };
        reasons.push(Reason::new(
            Gate::Tier2,
            "order_checks_passed",
            format!(
                "one linked order matches; {}",
                if input.order.has_tracking {
                    "tracking present"
                } else {
                    "no tracking yet, inside the delivery promise"
                }
            ),
        ));
        if let Err(why) = self.usable(input, template, 2) {
            reasons.push(Reason::new(Gate::Template, "template_unusable", why));
            return fallback(
                "tier2_downgraded",
                "the Tier 2 template cannot be used; trying Tier 1".into(),
                reasons,
            );
        }
        match input.verifier {
            VerifierState::NotRun => {
                *verifier_request = Some(VerifierRequest {
                    deterministic_match: input.order.deterministic_match,
                    proposed_intent: intent,
                    proposed_template: template.to_owned(),
                    redacted_message: redact(input.text),
                });
                fallback(
                    "verifier_pending",
                    "Tier 2 needs the verifier; until it answers, Tier 1 applies".into(),
                    reasons,
                )
            }
            VerifierState::Failed(why) => fallback("verifier_failed", why.clone(), reasons),
            VerifierState::Answered(answer)
                if answer.allow_tier2 && answer.confidence >= t.verifier =>
            {
                reasons.push(Reason::new(
                    Gate::Verifier,
                    "verifier_allowed",
                    format!("confidence {:.2} ≥ {:.2}", answer.confidence, t.verifier),
                ));
                reasons.push(Reason::new(Gate::Tier2, "tier2_verified", template));
                Candidate::Reply {
                    tier: AppliedTier::Tier2,
                    template_id: template.to_owned(),
                    automation_confidence: Some(confidence.min(answer.confidence)),
                }
            }
            VerifierState::Answered(answer) => {
                let detail = format!(
                    "{} (allow={}, confidence {:.2}, downgrade {})",
                    answer.reason_code,
                    answer.allow_tier2,
                    answer.confidence,
                    answer.downgrade_to_tier
                );
                match answer.downgrade_to_tier {
                    DowngradeTier::RouteOnly => {
                        reasons.push(Reason::new(
                            Gate::Verifier,
                            "verifier_denied_route_only",
                            detail,
                        ));
                        Candidate::Route
                    }
                    DowngradeTier::Tier0Escalation => {
                        reasons.push(Reason::new(Gate::Verifier, "verifier_escalated", detail));
                        Candidate::Escalate
                    }
                    DowngradeTier::Tier1SafeAssist => fallback("verifier_denied", detail, reasons),
                }
            }
        }
    }

    fn rate_limited(&self, input: &PolicyInput<'_>) -> Option<String> {
        let limits = &self.config.reply_limits;
        let within = |times: &[chrono::DateTime<chrono::Utc>], window: Duration| {
            times
                .iter()
                .filter(|at| **at <= input.now && input.now - **at < window)
                .count()
        };
        let conversation_10m = within(&input.history.conversation, Duration::minutes(10));
        let conversation_24h = within(&input.history.conversation, Duration::hours(24));
        let customer_24h = within(&input.history.customer, Duration::hours(24));
        if conversation_10m >= limits.per_conversation_10m {
            Some(format!(
                "{conversation_10m} automated repl(ies) on this conversation in 10 min"
            ))
        } else if conversation_24h >= limits.per_conversation_24h {
            Some(format!(
                "{conversation_24h} automated replies on this conversation in 24 h"
            ))
        } else if customer_24h >= limits.per_customer_24h {
            Some(format!(
                "{customer_24h} automated replies to this customer in 24 h"
            ))
        } else {
            None
        }
    }

    fn tier0_verdict(
        &self,
        intent: Intent,
        secondary: Vec<Intent>,
        language: Language,
        routing_confidence: f64,
        mut reasons: Vec<Reason>,
        mut markers: Vec<Marker>,
    ) -> Verdict {
        let team = if intent.is_tier0() {
            intent.default_team()
        } else {
            Team::Leadership
        };
        markers.push(Marker::Tier0Override);
        reasons.push(Reason::new(
            Gate::Tier0,
            "tier0_route_only",
            format!("escalated to {team}; never automated"),
        ));
        self.verdict(
            Route {
                tier: AppliedTier::Tier0,
                intent,
                team,
                language,
                confidence: routing_confidence,
            },
            &secondary,
            reasons,
            markers,
        )
    }

    /// A route-only verdict to `route.team` (tenant fallback applied); callers add
    /// a reply when one is allowed.
    fn verdict(
        &self,
        route: Route,
        others: &[Intent],
        mut reasons: Vec<Reason>,
        markers: Vec<Marker>,
    ) -> Verdict {
        let (team_name, team_fallback) = self.team_name(route.team, &mut reasons);
        let assigned = if team_fallback {
            Team::EmailSupport
        } else {
            route.team
        };
        Verdict {
            tier: route.tier,
            language: route.language,
            primary_intent: route.intent,
            secondary_intents: others
                .iter()
                .copied()
                .filter(|other| *other != route.intent)
                .take(2)
                .collect(),
            team: route.team,
            assignee_id: self.config.assignees.get(&assigned).cloned(),
            team_name,
            team_fallback,
            routing_confidence: route.confidence,
            automation_confidence: None,
            markers,
            reply: None,
            verifier_request: None,
            reasons,
        }
    }
}

fn intents_of(model: &ModelDecision) -> Vec<Intent> {
    let mut intents = vec![model.primary_intent];
    for intent in &model.secondary_intents {
        if !intents.contains(intent) {
            intents.push(*intent);
        }
    }
    intents
}

impl Policy for TierPolicy {
    fn evaluate(&self, input: &PolicyInput<'_>) -> Verdict {
        let t = &self.config.thresholds;
        let mut reasons = Vec::new();
        let mut markers = Vec::new();

        // Kill switch: recorded first, enforced before anything is sent.
        let blocked = match input.flags {
            None => Some((
                "flags_unreadable",
                "runtime flags could not be read; behaving as safe mode",
            )),
            Some(flags) if flags.safe_mode => {
                Some(("safe_mode", "safe mode is on: route-only for everything"))
            }
            Some(flags) if !flags.automation_enabled => Some((
                "automation_disabled",
                "automation is disabled: no customer message",
            )),
            Some(flags) => match input.channel {
                None => Some((
                    "channel_unknown",
                    "the channel is unknown: no customer message",
                )),
                Some(channel) if !flags.channel_enabled(channel) => {
                    Some(("channel_disabled", "automation is disabled on this channel"))
                }
                Some(_) => None,
            },
        };
        if let Some((code, detail)) = blocked {
            reasons.push(Reason::new(Gate::KillSwitch, code, detail));
        }

        let model = match input.model {
            Ok(model) => Some(model),
            Err(why) => {
                markers.push(Marker::ModelFailure);
                reasons.push(Reason::new(Gate::Model, "model_output_rejected", why));
                None
            }
        };
        let language = model
            .map_or(Language::Unknown, |m| m.language)
            .reply_language();
        let intents = model.map(intents_of).unwrap_or_default();

        // Gate A — Tier 0.
        let prescreen = self.prescreen.scan(input.text);
        let flags = model.map(|m| m.risk.flags.clone()).unwrap_or_default();
        let model_tier0 = intents.iter().copied().find(|intent| intent.is_tier0());
        if let Some(hit) = prescreen {
            reasons.push(Reason::new(
                Gate::Tier0,
                "prescreen_match",
                format!("keyword category {}", hit.intent),
            ));
        }
        if let Some(intent) = model_tier0 {
            reasons.push(Reason::new(
                Gate::Tier0,
                "model_tier0_intent",
                intent.as_str(),
            ));
        }
        if !flags.is_empty() {
            let names: Vec<&str> = flags.iter().map(|flag| flag.into()).collect();
            reasons.push(Reason::new(Gate::Tier0, "risk_flags", names.join(", ")));
        }
        if prescreen.is_some() || model_tier0.is_some() || !flags.is_empty() {
            let intent = model_tier0
                .or(prescreen.map(|hit| hit.intent))
                .or(flags.iter().find_map(|flag| flag.intent()))
                .or(intents.first().copied())
                .unwrap_or(Intent::UnknownOther);
            let confidence = if prescreen.is_some() {
                1.0
            } else {
                model.map_or(1.0, |m| m.routing.confidence)
            };
            return self.tier0_verdict(intent, intents, language, confidence, reasons, markers);
        }

        // Prompt injection: the model may have been steered, so nothing it proposes
        // reaches the customer. Tier 0 above is decided first and never lowered.
        let injection = self.injection_scan(input.text);
        if let Some(hit) = &injection {
            markers.push(Marker::InjectionSuspected);
            reasons.push(Reason::new(
                Gate::Injection,
                "injection_suspected",
                format!(
                    "the message tries to instruct the automation ({}); no automated reply",
                    hit.category
                ),
            ));
        }

        let Some(model) = model else {
            markers.push(Marker::NeedsManualTriage);
            let route = Route {
                tier: AppliedTier::RouteOnly,
                intent: Intent::UnknownOther,
                team: Team::EmailSupport,
                language,
                confidence: 0.0,
            };
            return self.verdict(route, &[], reasons, markers);
        };

        let secondary: Vec<&str> = model
            .secondary_intents
            .iter()
            .map(|intent| intent.as_str())
            .collect();
        reasons.push(Reason::new(
            Gate::Model,
            "classified",
            format!(
                "{} at {:.2}{}",
                model.primary_intent,
                model.routing.confidence,
                if secondary.is_empty() {
                    String::new()
                } else {
                    format!(", also {}", secondary.join(", "))
                }
            ),
        ));

        // Multi-intent priority.
        let routed = intents
            .iter()
            .copied()
            .min_by_key(|intent| intent.priority())
            .unwrap_or(model.primary_intent);
        if routed != model.primary_intent {
            reasons.push(Reason::new(
                Gate::Priority,
                "multi_intent_priority",
                format!(
                    "{routed} (P{}) outranks {} (P{})",
                    routed.priority(),
                    model.primary_intent,
                    model.primary_intent.priority()
                ),
            ));
        }

        // Confidence adjustments.
        let mut confidence = model.routing.confidence;
        let mut scores: Vec<f64> = input.scores.iter().map(|score| score.confidence).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let mut penalise = |code: &str, detail: String, reasons: &mut Vec<Reason>| {
            confidence -= t.penalty;
            reasons.push(Reason::new(Gate::Confidence, code, detail));
        };
        if scores.len() >= 2 && scores[0] - scores[1] < t.margin {
            penalise(
                "low_margin",
                format!(
                    "top-two margin {:.2} < {:.2}",
                    scores[0] - scores[1],
                    t.margin
                ),
                &mut reasons,
            );
        }
        let words = word_count(input.text);
        if words < t.min_words {
            penalise(
                "short_message",
                format!("{words} word(s) < {}", t.min_words),
                &mut reasons,
            );
        }
        let multi = if scores.is_empty() {
            !model.secondary_intents.is_empty()
        } else {
            scores
                .iter()
                .filter(|score| **score > t.multi_intent)
                .count()
                >= 2
        };
        if multi {
            penalise(
                "multi_intent",
                "two or more intents are likely".into(),
                &mut reasons,
            );
        }
        let confidence = confidence.clamp(0.0, 1.0);

        let team = if confidence >= t.route {
            reasons.push(Reason::new(
                Gate::Confidence,
                "routed",
                format!(
                    "confidence {confidence:.2} ≥ {:.2}: {routed} goes to {}",
                    t.route,
                    routed.default_team()
                ),
            ));
            routed.default_team()
        } else if confidence >= t.uncertain {
            markers.push(Marker::Uncertain);
            reasons.push(Reason::new(
                Gate::Confidence,
                "uncertain",
                format!(
                    "confidence {confidence:.2} in [{:.2}, {:.2})",
                    t.uncertain, t.route
                ),
            ));
            Team::EmailSupport
        } else {
            markers.push(Marker::NeedsManualTriage);
            reasons.push(Reason::new(
                Gate::Confidence,
                "manual_triage",
                format!("confidence {confidence:.2} < {:.2}", t.uncertain),
            ));
            Team::EmailSupport
        };
        let route = Route {
            tier: AppliedTier::RouteOnly,
            intent: routed,
            team,
            language,
            confidence,
        };
        let mut verdict = self.verdict(route, &intents, reasons, markers);

        // Automation.
        let mut verifier_request = None;
        let (reasons, markers) = (&mut verdict.reasons, &mut verdict.markers);
        let candidate = if injection.is_some() {
            Candidate::Route
        } else if model.routing.needs_manual_triage {
            markers.push(Marker::NeedsManualTriage);
            reasons.push(Reason::new(
                Gate::Model,
                "model_needs_manual_triage",
                "the classifier asked for manual triage",
            ));
            Candidate::Route
        } else if model.risk.force_human {
            reasons.push(Reason::new(
                Gate::Model,
                "force_human",
                "the classifier asked for a human",
            ));
            Candidate::Route
        } else if model.automation.tier == Tier::Tier3AutoAction {
            reasons.push(Reason::new(
                Gate::Tier3,
                "tier3_disabled",
                "Tier 3 automatic actions are disabled; route-only",
            ));
            Candidate::Route
        } else if model.automation.action == AutomationAction::RouteOnly {
            reasons.push(Reason::new(
                Gate::Model,
                "model_advised_route_only",
                "the classifier advised route-only",
            ));
            Candidate::Route
        } else if confidence < t.route {
            Candidate::Route
        } else {
            match routed.max_tier() {
                MaxTier::Tier2 => self.tier2(
                    input,
                    routed,
                    confidence,
                    reasons,
                    markers,
                    &mut verifier_request,
                ),
                MaxTier::Tier1 => self.tier1(input, routed, confidence, reasons),
                MaxTier::RouteOnly | MaxTier::Tier0 => {
                    reasons.push(Reason::new(
                        Gate::Tier1,
                        "intent_route_only",
                        format!("{routed} is never automated"),
                    ));
                    Candidate::Route
                }
            }
        };

        match candidate {
            Candidate::Route => {}
            Candidate::Escalate => {
                let Verdict {
                    reasons,
                    markers,
                    secondary_intents,
                    ..
                } = verdict;
                return self.tier0_verdict(
                    routed,
                    secondary_intents,
                    language,
                    confidence,
                    reasons,
                    markers,
                );
            }
            Candidate::Reply {
                tier,
                template_id,
                automation_confidence,
            } => {
                if let Some(why) = self.rate_limited(input) {
                    verdict.markers.push(Marker::AutoRateLimited);
                    verdict
                        .reasons
                        .push(Reason::new(Gate::ReplyLimit, "reply_limit", why));
                } else if blocked.is_some() {
                    verdict.reasons.push(Reason::new(
                        Gate::KillSwitch,
                        "reply_suppressed",
                        "the kill switch allows no customer message",
                    ));
                } else {
                    let auto_close = tier == AppliedTier::Tier2
                        && self.config.auto_close_templates.contains(&template_id)
                        && input
                            .catalog
                            .template(&template_id)
                            .is_some_and(|info| info.auto_close_allowed);
                    if auto_close {
                        verdict.reasons.push(Reason::new(
                            Gate::AutoClose,
                            "auto_close_whitelisted",
                            template_id.as_str(),
                        ));
                    }
                    verdict.tier = tier;
                    verdict.automation_confidence = automation_confidence;
                    verdict.reply = Some(ReplyPlan {
                        template_id,
                        auto_close,
                    });
                    verdict.verifier_request = verifier_request;
                }
            }
        }
        verdict
    }
}
