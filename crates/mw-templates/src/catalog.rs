//! Catalog loading and rendering.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use mw_core::{
    Channel, Language, Order, OrderFacts, RenderError, Renderer, TemplateCatalog, TemplateInfo,
    Variables, variable_present,
};
use serde::{Deserialize, Serialize};

/// Instruction budget for one render: generous for our templates, fatal for loops
/// gone wild.
pub const FUEL: u64 = 20_000;

/// The catalog file shipped with the product.
const EMBEDDED_CATALOG: &str = include_str!("../../../templates/catalog_v1.yaml");
/// The brand constants shipped with the product.
const EMBEDDED_BRAND: &str = include_str!("../../../templates/brand.yaml");

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed.
    #[error("{file} is not a valid catalog file: {message}")]
    Yaml {
        /// Which file.
        file: &'static str,
        /// Parser message.
        message: String,
    },
    /// A template is invalid.
    #[error("template '{id}': {message}")]
    Template {
        /// Template id.
        id: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A text in English and Spanish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedText {
    /// English.
    pub en: String,
    /// Spanish.
    pub es: String,
}

impl LocalizedText {
    fn get(&self, language: Language) -> &str {
        match language {
            Language::Es => &self.es,
            _ => &self.en,
        }
    }
}

/// Links templates may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs, reason = "each field is a link of that name")]
pub struct BrandLinks {
    pub returns_policy: String,
    pub shipping_policy: String,
    pub help_center: String,
    pub promotions: String,
    pub subscription_portal: String,
    pub partnerships: String,
}

/// Brand constants (`brand.*` in templates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brand {
    /// Brand name.
    pub name: String,
    /// Reply signature.
    pub signature: LocalizedText,
    /// Support hours.
    pub support_hours: LocalizedText,
    /// Policy links.
    pub links: BrandLinks,
}

/// One catalog entry as written in YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Template id (`t_…`).
    pub id: String,
    /// Version, bumped on every copy change.
    pub version: u32,
    /// Tier: 0, 1 or 2.
    pub tier: u8,
    /// Whether automation may use it.
    pub enabled: bool,
    /// Whether it may close the conversation.
    #[serde(default)]
    pub auto_close_allowed: bool,
    /// Channels it may be sent on.
    pub channels: Vec<Channel>,
    /// Variables that must be present.
    #[serde(default)]
    pub required: Vec<String>,
    /// Variables that may be present.
    #[serde(default)]
    pub optional: Vec<String>,
    /// Bodies: language (`en`, `es`) → channel key (`default`, `livechat`, …) → text.
    pub body: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    schema: String,
    templates: Vec<TemplateSpec>,
}

/// The loaded, validated catalog: implements [`TemplateCatalog`] and [`Renderer`].
#[derive(Debug)]
pub struct Catalog {
    /// `brand` as templates see it, per reply language (English, Spanish).
    brand_values: [minijinja::Value; 2],
    specs: BTreeMap<String, TemplateSpec>,
    infos: BTreeMap<String, TemplateInfo>,
    brand: Brand,
    env: Environment<'static>,
}

fn body_name(id: &str, language: &str, channel: &str) -> String {
    format!("{id}/{language}/{channel}")
}

fn channel_keys() -> impl Iterator<Item = &'static str> {
    [
        "default", "email", "livechat", "social", "tiktok", "phone", "sms",
    ]
    .into_iter()
}

impl Catalog {
    /// The catalog and brand shipped with this build.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::from_strs(EMBEDDED_CATALOG, EMBEDDED_BRAND)
    }

    /// Loads `catalog_v1.yaml` and `brand.yaml` from a directory.
    pub fn from_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Catalog::from_strs(&read("catalog_v1.yaml")?, &read("brand.yaml")?)
    }

    /// Parses and validates a catalog and brand from YAML text.
    pub fn from_strs(catalog_yaml: &str, brand_yaml: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile =
            serde_norway::from_str(catalog_yaml).map_err(|error| CatalogError::Yaml {
                file: "catalog",
                message: error.to_string(),
            })?;
        if file.schema != "mw_templates_v1" {
            return Err(CatalogError::Yaml {
                file: "catalog",
                message: format!("schema is '{}', expected 'mw_templates_v1'", file.schema),
            });
        }
        let brand: Brand =
            serde_norway::from_str(brand_yaml).map_err(|error| CatalogError::Yaml {
                file: "brand",
                message: error.to_string(),
            })?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|error| CatalogError::Yaml {
                file: "catalog",
                message: error.to_string(),
            })?;
        env.set_syntax(syntax);
        let globals: BTreeSet<String> = env.globals().map(|(name, _)| name.to_owned()).collect();
        let mut specs = BTreeMap::new();
        let mut infos = BTreeMap::new();
        for spec in file.templates {
            let fail = |message: String| CatalogError::Template {
                id: spec.id.clone(),
                message,
            };
            if specs.contains_key(&spec.id) {
                return Err(fail(
                    "duplicate id; each template id must appear once".into(),
                ));
            }
            if spec.tier > 2 {
                return Err(fail(format!(
                    "tier {} is not allowed; use 0, 1 or 2",
                    spec.tier
                )));
            }
            let declared: BTreeSet<&str> = spec
                .required
                .iter()
                .chain(&spec.optional)
                .map(String::as_str)
                .chain(["brand"])
                .collect();
            for (language, bodies) in &spec.body {
                if !matches!(language.as_str(), "en" | "es") {
                    return Err(fail(format!("unknown language '{language}'; use en or es")));
                }
                if !bodies.contains_key("default") {
                    return Err(fail(format!("language '{language}' has no 'default' body")));
                }
                for (channel, source) in bodies {
                    if !channel_keys().any(|key| key == channel) {
                        return Err(fail(format!(
                            "unknown body key '{channel}'; use default or a channel name"
                        )));
                    }
                    let name = body_name(&spec.id, language, channel);
                    env.add_template_owned(name.clone(), source.clone())
                        .map_err(|error| fail(format!("{language}/{channel}: {error}")))?;
                    let template = env
                        .get_template(&name)
                        .map_err(|error| fail(format!("{language}/{channel}: {error}")))?;
                    let mut unknown: Vec<String> = template
                        .undeclared_variables(false)
                        .into_iter()
                        .filter(|variable| {
                            !declared.contains(variable.as_str()) && !globals.contains(variable)
                        })
                        .collect();
                    unknown.sort();
                    if !unknown.is_empty() {
                        return Err(fail(format!(
                            "{language}/{channel} uses undeclared variable(s) {}; declare them in required or optional",
                            unknown.join(", ")
                        )));
                    }
                }
            }
            infos.insert(
                spec.id.clone(),
                TemplateInfo {
                    id: spec.id.clone(),
                    version: spec.version,
                    tier: spec.tier,
                    enabled: spec.enabled,
                    auto_close_allowed: spec.auto_close_allowed,
                    channels: spec.channels.clone(),
                    required: spec.required.clone(),
                },
            );
            specs.insert(spec.id.clone(), spec);
        }
        let brand_value = |language: Language| {
            minijinja::context! {
                name => brand.name.as_str(),
                signature => brand.signature.get(language),
                support_hours => brand.support_hours.get(language),
                links => minijinja::Value::from(minijinja::value::Serde(&brand.links)),
            }
        };
        let brand_values = [brand_value(Language::En), brand_value(Language::Es)];
        Ok(Catalog {
            brand_values,
            specs,
            infos,
            brand,
            env,
        })
    }

    /// Every template spec, by id.
    pub fn specs(&self) -> impl Iterator<Item = &TemplateSpec> {
        self.specs.values()
    }

    /// The brand constants.
    pub fn brand(&self) -> &Brand {
        &self.brand
    }

    fn brand_value(&self, language: Language) -> minijinja::Value {
        let index = usize::from(language.reply_language() == Language::Es);
        self.brand_values[index].clone()
    }
}

impl TemplateCatalog for Catalog {
    fn template(&self, id: &str) -> Option<&TemplateInfo> {
        self.infos.get(id)
    }
}

impl Renderer for Catalog {
    fn variables(
        &self,
        order: Option<&Order>,
        facts: &OrderFacts,
        customer_name: Option<&str>,
        language: Language,
    ) -> Variables {
        crate::variables::order_variables(order, facts, customer_name, language)
    }

    fn render(
        &self,
        template_id: &str,
        language: Language,
        channel: Channel,
        variables: &Variables,
    ) -> Result<String, RenderError> {
        let spec = self
            .specs
            .get(template_id)
            .ok_or_else(|| RenderError::UnknownTemplate(template_id.to_owned()))?;
        if let Some(missing) = spec
            .required
            .iter()
            .find(|name| !variable_present(variables, name))
        {
            return Err(RenderError::MissingVariable {
                template: template_id.to_owned(),
                variable: missing.clone(),
            });
        }
        let lang = language.reply_language();
        let lang_key = lang.as_str();
        let specific = body_name(template_id, lang_key, channel.as_str());
        let name = if spec
            .body
            .get(lang_key)
            .is_some_and(|b| b.contains_key(channel.as_str()))
        {
            specific
        } else {
            body_name(template_id, lang_key, "default")
        };
        let engine = |error: minijinja::Error| RenderError::Engine {
            template: template_id.to_owned(),
            message: error.kind().to_string(),
        };
        let template = self.env.get_template(&name).map_err(engine)?;
        let mut context: BTreeMap<&str, minijinja::Value> = BTreeMap::new();
        for name in spec.required.iter().chain(&spec.optional) {
            let value = variables
                .get(name)
                .filter(|_| variable_present(variables, name))
                .map_or(minijinja::Value::from(()), |value| {
                    minijinja::Value::from(minijinja::value::Serde(value))
                });
            context.insert(name.as_str(), value);
        }
        context.insert("brand", self.brand_value(lang));
        let body = template.render(context).map_err(engine)?;
        Ok(body.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_loads() {
        let catalog = Catalog::embedded().unwrap();
        assert!(catalog.template("t_order_status_verified").is_some());
        assert_eq!(
            catalog
                .template("t_order_eta_no_tracking_verified")
                .map(|t| t.auto_close_allowed),
            Some(true)
        );
    }

    const BRAND: &str = include_str!("../../../templates/brand.yaml");

    fn one(body: &str) -> String {
        format!(
            "schema: mw_templates_v1\ntemplates:\n  - id: t_x\n    version: 1\n    tier: 1\n    enabled: true\n    channels: [email]\n    required: [order_id]\n    optional: [first_name]\n    body:\n      en:\n        default: \"{body}\"\n"
        )
    }

    #[test]
    fn undeclared_variables_fail_at_load() {
        let error = Catalog::from_strs(&one("Hi {{ customer_text }}"), BRAND).unwrap_err();
        assert!(error.to_string().contains("customer_text"), "{error}");
    }

    #[test]
    fn missing_required_variables_fail_to_render() {
        let catalog = Catalog::from_strs(&one("Order {{ order_id }}"), BRAND).unwrap();
        let error = catalog
            .render("t_x", Language::En, Channel::Email, &Variables::new())
            .unwrap_err();
        assert!(matches!(error, RenderError::MissingVariable { .. }));
        let mut vars = Variables::new();
        vars.insert("order_id".into(), "  ".into());
        assert!(
            catalog
                .render("t_x", Language::En, Channel::Email, &vars)
                .is_err()
        );
        vars.insert("order_id".into(), "#1".into());
        assert_eq!(
            catalog
                .render("t_x", Language::En, Channel::Email, &vars)
                .unwrap(),
            "Order #1"
        );
    }

    #[test]
    fn variable_values_are_never_template_source() {
        let catalog = Catalog::from_strs(&one("Order {{ order_id }}"), BRAND).unwrap();
        let mut vars = Variables::new();
        vars.insert(
            "order_id".into(),
            "{{ brand.links }}{% for x in range(99999) %}{% endfor %}".into(),
        );
        let body = catalog
            .render("t_x", Language::En, Channel::Email, &vars)
            .unwrap();
        assert_eq!(
            body,
            "Order {{ brand.links }}{% for x in range(99999) %}{% endfor %}"
        );
    }

    /// A hostile display name goes through the same variable builder as in
    /// production; no template body may then carry any of it.
    #[test]
    fn hostile_customer_names_cannot_smuggle_text_into_any_template() {
        use chrono::TimeZone;
        let catalog = Catalog::embedded().unwrap();
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .single()
            .unwrap();
        let facts = OrderFacts::new(&mw_core::OrderLookup::None, "", now);
        for name in [
            "<script>alert(1)</script>",
            "{{7*7}}",
            "{{ brand.links }}{% for x in range(9) %}x{% endfor %}",
            "https://evil.example/claim",
            "[Claim](https://evil.example)",
            "Call-555-0143-now",
            "Visit-evil-dot-com",
        ] {
            for language in [Language::En, Language::Es] {
                let computed = catalog.variables(None, &facts, Some(name), language);
                assert!(!computed.contains_key("first_name"), "{name}");
                let mut variables = crate::sample_variables(language);
                variables.remove("first_name");
                variables.extend(computed);
                for spec in catalog.specs() {
                    for channel in &spec.channels {
                        let Ok(body) = catalog.render(&spec.id, language, *channel, &variables)
                        else {
                            continue;
                        };
                        for needle in ["<script", "{{", "{%", "49", "evil", "555-0143", "]("] {
                            assert!(!body.contains(needle), "{} with {name}: {body}", spec.id);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let catalog = Catalog::from_strs(
            &one("{% for x in range(100000) %}{{ order_id }}{% endfor %}"),
            BRAND,
        )
        .unwrap();
        let mut vars = Variables::new();
        vars.insert("order_id".into(), "#1".into());
        assert!(matches!(
            catalog.render("t_x", Language::En, Channel::Email, &vars),
            Err(RenderError::Engine { .. })
        ));
    }
}
