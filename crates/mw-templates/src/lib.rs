//! # mw-templates
//!
//! The customer-reply template catalog (YAML, `templates/` in the repository), brand
//! constants, strict minijinja rendering and catalog lint.
//!
//! - A missing required variable is an error (the caller fails closed).
//! - A template that uses a variable it does not declare fails at catalog load.
//! - Customer-supplied text is only ever a variable *value*, never template source.
//! - Rendering is fuel-limited.
//!
//! ```
//! use mw_core::{Channel, Language, Renderer, Variables};
//! let catalog = mw_templates::Catalog::embedded().expect("the shipped catalog loads");
//! let body = catalog
//!     .render("t_return_request_intake", Language::Es, Channel::Email, &Variables::new())
//!     .expect("renders");
//! assert!(body.contains("Northwind"));
//! ```

mod catalog;
mod lint;
mod variables;

pub use catalog::{Brand, BrandLinks, Catalog, CatalogError, FUEL, LocalizedText, TemplateSpec};
pub use lint::{LintIssue, REQUIRED_TEMPLATES, lint, sample_variables};
pub use variables::{first_name, order_variables};
