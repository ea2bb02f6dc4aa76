//! The Tier 0 keyword pre-screen (SPEC §3, Gate A): deterministic, English and
//! Spanish, run on the raw text before and independent of any model.
//!
//! The pattern file is compiled into the binary (`rules/tier0.yaml`); operators can
//! add patterns with [`Prescreen::with_extra`] but never remove the shipped ones.

use mw_core::Intent;
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use crate::PolicyError;
use crate::text::normalize;

const EMBEDDED: &str = include_str!("../rules/tier0.yaml");

/// A versioned pattern file (`rules/tier0.yaml`, `rules/injection.yaml`):
/// categories of patterns in priority order, and exclusions blanked out first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatternFile {
    version: u32,
    pub(crate) categories: indexmap::IndexMap<String, Vec<String>>,
    #[serde(default)]
    exclusions: Vec<String>,
}

impl PatternFile {
    /// Parses a version-1 file; `what` names it in errors (`tier0`, `injection`).
    pub(crate) fn parse(text: &str, what: &str) -> Result<PatternFile, PolicyError> {
        let file: PatternFile = serde_norway::from_str(text)
            .map_err(|error| PolicyError::Rules(format!("{what} file: {error}")))?;
        if file.version != 1 {
            return Err(PolicyError::Rules(format!(
                "{what} file version {} is not supported; use version 1",
                file.version
            )));
        }
        Ok(file)
    }

    /// All exclusions as one alternation, if there are any.
    pub(crate) fn exclusions(
        &self,
        what: &str,
        multi_line: bool,
    ) -> Result<Option<Regex>, PolicyError> {
        if self.exclusions.is_empty() {
            return Ok(None);
        }
        let combined: Vec<String> = self
            .exclusions
            .iter()
            .map(|pattern| format!("(?:{pattern})"))
            .collect();
        compile_one(
            &combined.join("|"),
            &format!("{what} exclusion"),
            multi_line,
        )
        .map(Some)
    }
}

/// The index of the first pattern of `patterns` matching `text` once every match
/// of `exclusions` is blanked out. Patterns are in priority order, and a set
/// reports matches in pattern order.
pub(crate) fn first_match(
    patterns: &RegexSet,
    exclusions: Option<&Regex>,
    text: &[u8],
) -> Option<usize> {
    let mut text = text.to_vec();
    if let Some(exclusions) = exclusions {
        let spans: Vec<std::ops::Range<usize>> =
            exclusions.find_iter(&text).map(|m| m.range()).collect();
        for span in spans {
            text[span].fill(b' ');
        }
    }
    patterns.matches(&text).iter().next()
}

/// A pre-screen hit: the Tier 0 category that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier0Hit {
    /// The Tier 0 intent of the first matching category.
    pub intent: Intent,
}

/// The compiled pre-screen.
#[derive(Debug, Clone)]
pub struct Prescreen {
    /// Category of each pattern, in priority order.
    categories: Vec<Intent>,
    /// The pattern sources (kept so operators can add more).
    sources: Vec<String>,
    /// Every category pattern as one set: one pass over the text.
    patterns: RegexSet,
    /// All exclusions as one alternation.
    exclusions: Option<Regex>,
}

/// Patterns run on normalised (accent-stripped) text in ASCII mode: `\b` and `\w`
/// are ASCII, which keeps large sets on the fast DFA engines.
/// With `multi_line`, `^` and `$` also match at line breaks.
pub(crate) fn compile_set(
    patterns: &[String],
    what: &str,
    multi_line: bool,
) -> Result<RegexSet, PolicyError> {
    RegexSetBuilder::new(patterns)
        .unicode(false)
        .multi_line(multi_line)
        .size_limit(64 << 20)
        .dfa_size_limit(64 << 20)
        .build()
        .map_err(|error| PolicyError::Rules(format!("{what}: {error}")))
}

/// One ASCII-mode pattern (see [`compile_set`]).
pub(crate) fn compile_one(
    pattern: &str,
    what: &str,
    multi_line: bool,
) -> Result<Regex, PolicyError> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .multi_line(multi_line)
        .build()
        .map_err(|error| PolicyError::Rules(format!("{what}: {error}")))
}

impl Prescreen {
    /// The shipped pre-screen.
    pub fn embedded() -> Result<Prescreen, PolicyError> {
        Prescreen::from_yaml(EMBEDDED)
    }

    /// Parses a pre-screen file (see `rules/tier0.yaml` for the format).
    pub fn from_yaml(text: &str) -> Result<Prescreen, PolicyError> {
        let file = PatternFile::parse(text, "tier0")?;
        let mut categories = Vec::new();
        let mut sources = Vec::new();
        for (name, patterns) in &file.categories {
            let intent: Intent = name
                .parse()
                .ok()
                .filter(|intent: &Intent| intent.is_tier0())
                .ok_or_else(|| {
                    PolicyError::Rules(format!("tier0 category '{name}' is not a Tier 0 intent"))
                })?;
            categories.extend(std::iter::repeat_n(intent, patterns.len()));
            sources.extend(patterns.iter().cloned());
        }
        let exclusions = file.exclusions("tier0", false)?;
        let patterns = compile_set(&sources, "tier0 pattern", false)?;
        Ok(Prescreen {
            categories,
            sources,
            patterns,
            exclusions,
        })
    }

    /// Adds operator patterns to a category (they can only widen the net).
    pub fn with_extra(
        mut self,
        intent: Intent,
        patterns: &[String],
    ) -> Result<Prescreen, PolicyError> {
        if !intent.is_tier0() {
            return Err(PolicyError::Rules(format!(
                "{intent} is not a Tier 0 intent"
            )));
        }
        self.sources.extend(patterns.iter().cloned());
        self.categories
            .extend(std::iter::repeat_n(intent, patterns.len()));
        self.patterns = compile_set(&self.sources, intent.as_str(), false)?;
        Ok(self)
    }

    /// Scans raw text. Returns the first matching category (file order). Words
    /// spelled out letter by letter (`l a w y e r`, `c.h.a.r.g.e.b.a.c.k`) are
    /// also read joined up.
    pub fn scan(&self, text: &str) -> Option<Tier0Hit> {
        let normalized = normalize(text);
        self.scan_normalized(normalized.as_bytes()).or_else(|| {
            let joined = join_spelled_out(&normalized)?;
            self.scan_normalized(joined.as_bytes())
        })
    }

    fn scan_normalized(&self, normalized: &[u8]) -> Option<Tier0Hit> {
        let first = first_match(&self.patterns, self.exclusions.as_ref(), normalized)?;
        self.categories
            .get(first)
            .map(|intent| Tier0Hit { intent: *intent })
    }
}

/// Four or more single letters separated by spaces or punctuation.
static SPELLED_OUT: std::sync::LazyLock<Option<Regex>> = std::sync::LazyLock::new(|| {
    compile_one(
        r"\b[a-z](?:[ ._*'-]{1,2}[a-z]\b){3,}",
        "spelled-out words",
        false,
    )
    .ok()
});

/// `text` with every spelled-out word joined up, or `None` when there is none.
fn join_spelled_out(text: &str) -> Option<String> {
    let regex = SPELLED_OUT.as_ref()?;
    if !regex.is_match(text.as_bytes()) {
        return None;
    }
    let joined = regex.replace_all(text.as_bytes(), |caps: &regex::bytes::Captures<'_>| {
        caps.get(0)
            .map(|m| {
                m.as_bytes()
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_lowercase)
                    .collect::<Vec<u8>>()
            })
            .unwrap_or_default()
    });
    String::from_utf8(joined.into_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> Option<Intent> {
        Prescreen::embedded()
            .unwrap()
            .scan(text)
            .map(|hit| hit.intent)
    }

    #[test]
    fn catches_each_category_in_both_languages() {
        assert_eq!(
            hit("I will file a chargeback with my bank"),
            Some(Intent::ChargebackDispute)
        );
        assert_eq!(
            hit("Voy a hacer un contracargo"),
            Some(Intent::ChargebackDispute)
        );
        assert_eq!(hit("my lawyer will contact you"), Some(Intent::LegalThreat));
        assert_eq!(hit("los voy a demandar"), Some(Intent::LegalThreat));
        assert_eq!(
            hit("someone used my stolen card on your site"),
            Some(Intent::FraudSuspected)
        );
        assert_eq!(hit("esto es un fraude"), Some(Intent::FraudSuspected));
        assert_eq!(
            hit("I know where your warehouse is, watch your back"),
            Some(Intent::HarassmentThreats)
        );
    }

    #[test]
    fn finds_tier0_buried_late_in_long_text() {
        let text = format!(
            "{} and if this is not fixed I am calling my attorney.",
            "The order was fine. ".repeat(200)
        );
        assert_eq!(hit(&text), Some(Intent::LegalThreat));
    }

    #[test]
    fn known_false_friends_do_not_fire() {
        for text in [
            "There's no dispute about the quality, I just need a bigger size",
            "killer price on these boots, do you have them in 9?",
            "my friend Sue recommended your shop",
            "I'm dying to try the new jacket",
            "hay mucha demanda de este producto?",
        ] {
            assert_eq!(hit(text), None, "false positive on: {text}");
        }
    }

    #[test]
    fn hidden_and_spelled_out_keywords_are_still_caught() {
        assert_eq!(
            hit("I did a charge\u{200B}back on it"),
            Some(Intent::ChargebackDispute)
        );
        assert_eq!(
            hit("if not my l a w y e r will handle it"),
            Some(Intent::LegalThreat)
        );
        assert_eq!(
            hit("this is F.R.A.U.D plain and simple"),
            Some(Intent::FraudSuspected)
        );
        assert_eq!(
            hit("this charge is fr\u{0430}udulent"),
            Some(Intent::FraudSuspected)
        );
        assert_eq!(hit("size m a b c in stock?"), None);
        assert_eq!(hit("vamos a y o a la tienda"), None);
    }

    #[test]
    fn non_tier0_categories_are_rejected() {
        let bad = "version: 1\ncategories:\n  order_status_tracking: ['x']\n";
        assert!(Prescreen::from_yaml(bad).is_err());
    }
}
