//! The decision engine assembled from its parts: tier policy, template catalog,
//! rules classifier and rules verifier. One call runs the whole pure pipeline for a
//! message: redact → classify → decide → (verify → decide).

use std::path::Path;

use chrono::{DateTime, Utc};
use mw_core::{
    Channel, Classification, DecideInput, Decision, ModelOutput, OrderLookup, ReplyHistory,
    RuntimeFlags, VerifierInput, decide, redact,
};
use mw_policy::{PolicyConfig, Prescreen, RulesClassifier, RulesVerifier, TierPolicy};
use mw_templates::Catalog;

/// Why the engine could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Policy data (rules, pre-screen, config) is invalid.
    #[error(transparent)]
    Policy(#[from] mw_policy::PolicyError),
    /// The template catalog is invalid.
    #[error(transparent)]
    Catalog(#[from] mw_templates::CatalogError),
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The policy config file is invalid.
    #[error("policy config {path} is invalid: {message}")]
    Config {
        /// The file.
        path: String,
        /// Parser message.
        message: String,
    },
}

/// Where the classification comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassifierSource {
    /// The embedded rules classifier.
    Rules,
    /// A recorded model output (or `None`: no output was recorded ⇒ model failure).
    Recorded(Option<serde_json::Value>),
}

/// One message to decide on.
#[derive(Debug, Clone)]
pub struct MessageInput<'a> {
    /// Channel.
    pub channel: Option<Channel>,
    /// Raw customer text.
    pub text: &'a str,
    /// Customer display name.
    pub customer_name: Option<&'a str>,
    /// Linked order(s).
    pub order: &'a OrderLookup,
    /// Flags (`None` = unreadable).
    pub flags: Option<&'a RuntimeFlags>,
    /// Reply history.
    pub history: &'a ReplyHistory,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The assembled decision engine.
#[derive(Debug)]
pub struct Engine {
    /// Tier policy.
    pub policy: TierPolicy,
    /// Template catalog.
    pub catalog: Catalog,
    /// Rules classifier.
    pub rules: RulesClassifier,
    /// Tier 2 verifier.
    pub verifier: RulesVerifier,
}

fn read(path: &Path) -> Result<String, EngineError> {
    std::fs::read_to_string(path).map_err(|error| EngineError::Read {
        path: path.display().to_string(),
        message: error.to_string(),
    })
}

impl Engine {
    /// Everything as shipped.
    pub fn embedded() -> Result<Engine, EngineError> {
        Engine::load(None, None, None)
    }

    /// Loads with optional overrides: a rules file, a templates directory
    /// (`catalog_v1.yaml` + `brand.yaml`) and a policy config (YAML or JSON).
    pub fn load(
        rules: Option<&Path>,
        templates: Option<&Path>,
        policy: Option<&Path>,
    ) -> Result<Engine, EngineError> {
        let rules = match rules {
            Some(path) => RulesClassifier::from_yaml(&read(path)?)?,
            None => RulesClassifier::embedded()?,
        };
        let catalog = match templates {
            Some(dir) => Catalog::from_dir(dir)?,
            None => Catalog::embedded()?,
        };
        let config = match policy {
            Some(path) => {
                serde_norway::from_str::<PolicyConfig>(&read(path)?).map_err(|error| {
                    EngineError::Config {
                        path: path.display().to_string(),
                        message: error.to_string(),
                    }
                })?
            }
            None => PolicyConfig::default(),
        };
        let prescreen = Prescreen::embedded()?;
        Ok(Engine {
            policy: TierPolicy::new(config, prescreen.clone()),
            verifier: RulesVerifier::new(rules.clone(), prescreen),
            catalog,
            rules,
        })
    }

    /// Classifies a message with the given source (redacting first, as the runtime
    /// does before anything leaves the process).
    pub fn classify(&self, text: &str, source: &ClassifierSource) -> Classification {
        match source {
            ClassifierSource::Rules => {
                let outcome = self.rules.classify_text(&redact(text));
                Classification {
                    output: ModelOutput::Json(outcome.decision),
                    scores: outcome.scores,
                    verification: None,
                }
            }
            ClassifierSource::Recorded(Some(value)) => Classification {
                output: ModelOutput::Json(value.clone()),
                scores: Vec::new(),
                verification: None,
            },
            ClassifierSource::Recorded(None) => Classification {
                output: ModelOutput::Failed("no model output was recorded".into()),
                scores: Vec::new(),
                verification: None,
            },
        }
    }

    /// Decides on a message, running the verifier when the policy asks for it.
    pub fn decide(&self, message: &MessageInput<'_>, classification: &Classification) -> Decision {
        let mut input = DecideInput {
            channel: message.channel,
            text: message.text,
            customer_name: message.customer_name,
            order: message.order,
            classification,
            verifier: &VerifierInput::NotRun,
            flags: message.flags,
            history: message.history,
            now: message.now,
        };
        let first = decide(&input, &self.policy, &self.catalog);
        let Some(request) = &first.verifier_request else {
            return first;
        };
        let answer = VerifierInput::Json(self.verifier.verify_request(request));
        input.verifier = &answer;
        decide(&input, &self.policy, &self.catalog)
    }
}
