#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Every template × channel × language rendered against realistic orders, one insta
//! snapshot per input file under `tests/inputs/`.

use std::fmt::Write as _;

use mw_core::{Channel, Language, Order, OrderFacts, OrderLookup, Renderer, parse_timestamp};
use mw_templates::Catalog;
use serde_json::Value;

#[test]
fn every_template_channel_and_language() {
    let catalog = Catalog::embedded().unwrap();
    insta::glob!("inputs/*.json", |path| {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let order: Order = serde_json::from_value(input["order"].clone()).unwrap();
        let now = parse_timestamp(input["now"].as_str().unwrap()).unwrap();
        let lookup = OrderLookup::One {
            order: Box::new(order.clone()),
        };
        let facts = OrderFacts::new(&lookup, "", now);
        let mut out = String::new();
        for spec in catalog.specs() {
            for language in [Language::En, Language::Es] {
                let vars = catalog.variables(
                    Some(&order),
                    &facts,
                    input["customer_name"].as_str(),
                    language,
                );
                for channel in [Channel::Email, Channel::Livechat] {
                    let rendered = catalog
                        .render(&spec.id, language, channel, &vars)
                        .unwrap_or_else(|error| format!("<not rendered: {error}>"));
                    writeln!(
                        out,
                        "===== {} · {language} · {channel}\n{rendered}\n",
                        spec.id
                    )
                    .unwrap();
                }
            }
        }
        insta::assert_snapshot!(out);
    });
}
