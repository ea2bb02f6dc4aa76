//! The embedded rules classifier: weighted regex patterns per intent, from a YAML
//! file the operator can edit (`rules/default_rules.yaml` is the shipped default).
//! Produces a valid `mw_decision_v1` with no network.
//!
//! Scoring: the text is stripped of quoted lines (`>`), reply headers and
//! signatures, normalised, and matched against every pattern once; an intent's score
//! is the sum of its matched weights (floored at 0), its confidence
//! `min(0.95, s / (s + 1))`. The top intent wins (ties: higher SPEC priority, then
//! file order); below `min_score` the message is `unknown_other` at 0.40. Other
//! intents at confidence ≥ 0.55 become secondary intents (at most two).

use async_trait::async_trait;
use indexmap::IndexMap;
use mw_core::{
    AutomationAction, Classification, Classifier, ClassifyRequest, Intent, IntentScore, Language,
    MaxTier, ModelOutput, RiskFlag, Tier,
};
use regex::bytes::{Regex, RegexSet};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::PolicyError;
use crate::prescreen::{compile_one, compile_set};
use crate::text::normalize;

const EMBEDDED: &str = include_str!("../rules/default_rules.yaml");
const UNKNOWN_CONFIDENCE: f64 = 0.40;
const SECONDARY_CONFIDENCE: f64 = 0.55;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: u32,
    min_score: f64,
    language: LanguageMarkers,
    #[serde(default)]
    strip: Vec<String>,
    intents: IndexMap<String, Vec<PatternSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageMarkers {
    es: Vec<String>,
    en: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternSpec {
    re: String,
    w: f64,
}

/// The compiled rules classifier.
#[derive(Debug, Clone)]
pub struct RulesClassifier {
    min_score: f64,
    spanish: RegexSet,
    english: RegexSet,
    strip: Vec<Regex>,
    patterns: RegexSet,
    /// Per pattern: (index into `intents`, weight).
    weights: Vec<(usize, f64)>,
    intents: Vec<Intent>,
}

/// What the rules found in one message.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesOutcome {
    /// A valid `mw_decision_v1` value.
    pub decision: Value,
    /// Confidence of every intent that scored.
    pub scores: Vec<IntentScore>,
    /// Raw score per intent that scored.
    pub raw_scores: Vec<(Intent, f64)>,
    /// Primary intent.
    pub primary: Intent,
    /// Secondary intents.
    pub secondary: Vec<Intent>,
    /// Primary confidence.
    pub confidence: f64,
    /// Detected language.
    pub language: Language,
}

fn rules_error(what: &str, error: impl std::fmt::Display) -> PolicyError {
    PolicyError::Rules(format!("{what}: {error}"))
}

/// Confidence of a score.
pub(crate) fn confidence_of(score: f64) -> f64 {
    if score <= 0.0 {
        0.0
    } else {
        (score / (score + 1.0)).min(0.95)
    }
}

impl RulesClassifier {
    /// The shipped default rules.
    pub fn embedded() -> Result<RulesClassifier, PolicyError> {
        RulesClassifier::from_yaml(EMBEDDED)
    }

    /// The text of the shipped rules file (a starting point for operators).
    pub fn embedded_source() -> &'static str {
        EMBEDDED
    }

    /// Compiles a rules file (see `rules/default_rules.yaml` for the format).
    pub fn from_yaml(text: &str) -> Result<RulesClassifier, PolicyError> {
        let file: RulesFile =
            serde_norway::from_str(text).map_err(|e| rules_error("rules file", e))?;
        if file.version != 1 {
            return Err(PolicyError::Rules(format!(
                "rules version {} is not supported; use 1",
                file.version
            )));
        }
        let mut intents = Vec::new();
        let mut sources = Vec::new();
        let mut weights = Vec::new();
        for (name, patterns) in &file.intents {
            let intent: Intent = name.parse().map_err(|_| {
                PolicyError::Rules(format!("'{name}' is not one of the 25 intents"))
            })?;
            if intents.contains(&intent) {
                return Err(PolicyError::Rules(format!("intent '{name}' appears twice")));
            }
            let index = intents.len();
            intents.push(intent);
            for pattern in patterns {
                if !pattern.w.is_finite() {
                    return Err(PolicyError::Rules(format!(
                        "{name}: weight must be a finite number"
                    )));
                }
                sources.push(pattern.re.clone());
                weights.push((index, pattern.w));
            }
        }
        let patterns = compile_set(&sources, "intent pattern", false)?;
        let strip = file
            .strip
            .iter()
            .map(|pattern| compile_one(pattern, "strip pattern", true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RulesClassifier {
            min_score: file.min_score,
            spanish: compile_set(&file.language.es, "language.es", false)?,
            english: compile_set(&file.language.en, "language.en", false)?,
            strip,
            patterns,
            weights,
            intents,
        })
    }

    /// Drops quoted lines, reply headers and signatures, then normalises.
    pub fn prepare(&self, text: &str) -> String {
        let lines: Vec<String> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('>'))
            .map(normalize)
            .collect();
        let mut joined = lines.join("\n");
        let cut = self
            .strip
            .iter()
            .filter_map(|regex| regex.find(joined.as_bytes()).map(|m| m.start()))
            .min();
        if let Some(mut cut) = cut {
            // ASCII-mode patterns may start inside a multi-byte character.
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            joined.truncate(cut);
        }
        normalize(&joined)
    }

    fn language(&self, prepared: &str) -> Language {
        let spanish = self.spanish.matches(prepared.as_bytes()).iter().count();
        let english = self.english.matches(prepared.as_bytes()).iter().count();
        if spanish > english {
            Language::Es
        } else if english > 0 {
            Language::En
        } else {
            Language::Unknown
        }
    }

    /// Classifies one message.
    pub fn classify_text(&self, text: &str) -> RulesOutcome {
        let prepared = self.prepare(text);
        let mut scores = vec![0.0_f64; self.intents.len()];
        for index in self.patterns.matches(prepared.as_bytes()).iter() {
            if let Some((intent, weight)) = self.weights.get(index) {
                scores[*intent] += weight;
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores
            .iter()
            .map(|score| score.max(0.0))
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .collect();
        ranked.sort_by(|(ia, sa), (ib, sb)| {
            sb.total_cmp(sa)
                .then(
                    self.intents[*ia]
                        .priority()
                        .cmp(&self.intents[*ib].priority()),
                )
                .then(ia.cmp(ib))
        });
        let raw_scores: Vec<(Intent, f64)> =
            ranked.iter().map(|(i, s)| (self.intents[*i], *s)).collect();
        let (primary, confidence) = match raw_scores.first() {
            Some((intent, score)) if *score >= self.min_score => (*intent, confidence_of(*score)),
            _ => (Intent::UnknownOther, UNKNOWN_CONFIDENCE),
        };
        let secondary: Vec<Intent> = raw_scores
            .iter()
            .filter(|(intent, score)| {
                *intent != primary && confidence_of(*score) >= SECONDARY_CONFIDENCE
            })
            .map(|(intent, _)| *intent)
            .take(2)
            .collect();
        let mut scores: Vec<IntentScore> = raw_scores
            .iter()
            .map(|(intent, score)| IntentScore {
                intent: *intent,
                confidence: confidence_of(*score),
            })
            .collect();
        if primary == Intent::UnknownOther && !scores.iter().any(|s| s.intent == primary) {
            scores.insert(
                0,
                IntentScore {
                    intent: primary,
                    confidence,
                },
            );
        }
        let language = self.language(&prepared);
        let decision = decision_json(primary, &secondary, confidence, language, &prepared);
        RulesOutcome {
            decision,
            scores,
            raw_scores,
            primary,
            secondary,
            confidence,
            language,
        }
    }
}

fn decision_json(
    primary: Intent,
    secondary: &[Intent],
    confidence: f64,
    language: Language,
    prepared: &str,
) -> Value {
    let risk_flag = match primary {
        Intent::ChargebackDispute => Some(RiskFlag::ChargebackDispute),
        Intent::LegalThreat => Some(RiskFlag::LegalThreat),
        Intent::HarassmentThreats => Some(RiskFlag::HarassmentThreats),
        Intent::FraudSuspected => Some(RiskFlag::FraudSuspected),
        _ => None,
    };
    let (tier, action) = match primary.max_tier() {
        MaxTier::Tier0 => (Tier::Tier0Escalation, AutomationAction::RouteOnly),
        MaxTier::Tier2 => (Tier::Tier2Verified, AutomationAction::SendTemplate),
        MaxTier::Tier1 => (Tier::Tier1SafeAssist, AutomationAction::SendTemplate),
        MaxTier::RouteOnly => (Tier::Tier1SafeAssist, AutomationAction::RouteOnly),
    };
    let mut questions = Vec::new();
    if primary.is_order_status() && !prepared.contains("[order]") {
        questions.push("ASK_ORDER_NUMBER");
    }
    if matches!(
        primary,
        Intent::DamagedItem | Intent::WrongItemReceived | Intent::MissingItemsInShipment
    ) {
        questions.push("ASK_PHOTO_OR_VIDEO");
    }
    if primary == Intent::TechnicalSupport {
        questions.push("ASK_PRODUCT_MODEL");
        questions.push("ASK_TROUBLESHOOTING_DETAILS");
    }
    let round = |value: f64| (value * 1000.0).round() / 1000.0;
    json!({
        "schema_version": "mw_decision_v1",
        "language": language,
        "primary_intent": primary,
        "secondary_intents": secondary,
        "routing": {
            "destination_team": primary.default_team(),
            "confidence": round(confidence),
            "needs_manual_triage": confidence < 0.5,
            "tags": [],
        },
        "automation": {
            "tier": tier,
            "action": action,
            "template_id": null,
            "confidence": round(confidence),
            "requires_deterministic_match": primary.is_order_status(),
        },
        "risk": {"flags": risk_flag.into_iter().collect::<Vec<_>>(), "force_human": risk_flag.is_some()},
        "clarifying_questions": questions,
        "notes_for_agent": format!("rules classifier: {primary} at {:.2}", confidence),
    })
}

#[async_trait]
impl Classifier for RulesClassifier {
    async fn classify(&self, request: &ClassifyRequest) -> Classification {
        let outcome = self.classify_text(&request.redacted_text);
        Classification {
            output: ModelOutput::Json(outcome.decision),
            scores: outcome.scores,
            verification: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r"
version: 1
min_score: 1.0
language:
  es: ['\bhola\b', '\bpedido\b']
  en: ['\bhello\b', '\border\b']
strip: ['^on .{5,120} wrote:\s*$', '^--\s*$']
intents:
  order_status_tracking:
    - {re: '\bwhere\b.{0,20}\border\b', w: 2.0}
  cancel_order:
    - {re: '\bcancel\b', w: 2.0}
  refund_request:
    - {re: '\brefund\b', w: 1.5}
    - {re: '\bno refund\b', w: -3.0}
";

    #[test]
    fn scores_strip_and_language() {
        let rules = RulesClassifier::from_yaml(MINI).unwrap();
        let outcome =
            rules.classify_text("Hello, where is my order?\n--\nCancel anytime, Shop Inc");
        assert_eq!(outcome.primary, Intent::OrderStatusTracking);
        assert!(
            outcome.secondary.is_empty(),
            "signature text must be stripped"
        );
        assert_eq!(outcome.language, Language::En);
        assert!((outcome.confidence - 2.0 / 3.0).abs() < 1e-9);
        assert!(mw_core::validate_decision(&outcome.decision).is_ok());

        let quoted = rules.classify_text(
            "where is my order\n> please cancel\nOn Mon, Support <a@b.c> wrote:\ncancel",
        );
        assert_eq!(quoted.primary, Intent::OrderStatusTracking);
        assert!(quoted.secondary.is_empty());

        let multi = rules.classify_text("where is my order? if it is late, cancel it");
        assert_eq!(
            multi.primary,
            Intent::CancelOrder,
            "a tie goes to the higher SPEC priority"
        );
        assert_eq!(multi.secondary, vec![Intent::OrderStatusTracking]);
    }

    #[test]
    fn negative_weights_and_unknown() {
        let rules = RulesClassifier::from_yaml(MINI).unwrap();
        assert_eq!(
            rules.classify_text("no refund needed, thanks").primary,
            Intent::UnknownOther
        );
        let unknown = rules.classify_text("hola");
        assert_eq!(unknown.primary, Intent::UnknownOther);
        assert_eq!(unknown.language, Language::Es);
        assert!(mw_core::validate_decision(&unknown.decision).is_ok());
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let error = RulesClassifier::from_yaml(&MINI.replace("cancel_order", "cancel_everything"))
            .unwrap_err();
        assert!(error.to_string().contains("cancel_everything"));
        assert!(RulesClassifier::from_yaml(&MINI.replace(r"'\bcancel\b'", "'(unclosed'")).is_err());
    }
}
