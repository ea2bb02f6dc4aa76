//! Order facts the policy needs: the deterministic order match, tracking, and the
//! no-tracking ETA rule (business days Mon–Fri; Standard 3–5, Rushed 1, Priority 1).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::model::{Order, OrderLookup};

/// Shipping speed class used by the ETA rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShippingBucket {
    /// 3–5 business days.
    Standard,
    /// 1 business day.
    Rushed,
    /// 1 business day.
    Priority,
}

impl ShippingBucket {
    /// Upper bound of the delivery promise, in business days.
    pub fn upper_bound_days(self) -> u32 {
        match self {
            ShippingBucket::Standard => 5,
            ShippingBucket::Rushed | ShippingBucket::Priority => 1,
        }
    }

    /// Display label (`Standard`, `Rushed`, `Priority`).
    pub fn label(self) -> &'static str {
        match self {
            ShippingBucket::Standard => "Standard",
            ShippingBucket::Rushed => "Rushed",
            ShippingBucket::Priority => "Priority",
        }
    }

    /// Classifies a shipping-method name. No method at all means Standard; a method
    /// we do not recognise means unknown (no ETA promise is made).
    pub fn from_method(method: Option<&str>) -> Option<ShippingBucket> {
        let Some(method) = method.map(str::to_lowercase) else {
            return Some(ShippingBucket::Standard);
        };
        let has = |words: &[&str]| words.iter().any(|word| method.contains(word));
        if has(&["rush"]) {
            Some(ShippingBucket::Rushed)
        } else if has(&[
            "priority",
            "express",
            "expedited",
            "overnight",
            "next day",
            "next-day",
        ]) {
            Some(ShippingBucket::Priority)
        } else if method.trim().is_empty()
            || has(&[
                "standard",
                "free",
                "ground",
                "economy",
                "regular",
                "estandar",
                "estándar",
                "normal",
                "gratis",
            ])
        {
            Some(ShippingBucket::Standard)
        } else {
            None
        }
    }
}

/// The ETA rule's verdict for an order without tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Eta {
    /// Still inside the promise: `remaining_business_days` ≥ 1.
    Remaining {
        /// Shipping class.
        bucket: ShippingBucket,
        /// Business days left before the upper bound.
        remaining_business_days: u32,
    },
    /// The promise has passed: no auto-reply, route to a human.
    Elapsed {
        /// Shipping class.
        bucket: ShippingBucket,
    },
    /// No order date or an unrecognised shipping method: no promise is made.
    Unknown,
}

/// Mon–Fri days `d` with `start < d ≤ end` (0 when `end ≤ start`).
pub fn business_days_between(start: NaiveDate, end: NaiveDate) -> u32 {
    start
        .iter_days()
        .skip(1)
        .take_while(|day| *day <= end)
        .filter(|day| !matches!(day.weekday(), Weekday::Sat | Weekday::Sun))
        .count() as u32
}

/// Applies the ETA rule: remaining = max(0, upper bound − elapsed business days);
/// when elapsed ≥ upper bound the promise has passed.
pub fn eta(order: &Order, now: DateTime<Utc>) -> Eta {
    let (Some(placed), Some(bucket)) = (
        order.created_at.or(order.processed_at),
        ShippingBucket::from_method(order.shipping_method.as_deref()),
    ) else {
        return Eta::Unknown;
    };
    let elapsed = business_days_between(placed.date_naive(), now.date_naive());
    let upper = bucket.upper_bound_days();
    if elapsed >= upper {
        Eta::Elapsed { bucket }
    } else {
        Eta::Remaining {
            bucket,
            remaining_business_days: upper - elapsed,
        }
    }
}

static ORDER_NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:#\s?(\d{3,12})\b)|(?:\b(?:order|orden|pedido|compra)\s*(?:number|no\.?|num(?:ber|ero)?|n[uú]mero|n[º°]|#|id)?\s*(?:is|es)?\s*[:#]?\s*[A-Z]{0,4}-?(\d{3,12})\b)",
    )
    .ok()
});

/// Order numbers (digits only) the customer mentions, e.g. `#10482` or
/// `pedido 10482`, in order of appearance and without repeats.
pub fn order_numbers_in(text: &str) -> Vec<String> {
    let Some(regex) = ORDER_NUMBER.as_ref() else {
        return Vec::new();
    };
    let mut found: Vec<String> = Vec::new();
    // Find spans with the fast engine first; capture groups only on the spans.
    for span in regex.find_iter(text) {
        let Some(caps) = regex.captures(span.as_str()) else {
            continue;
        };
        if let Some(number) = caps.get(1).or_else(|| caps.get(2)) {
            let number = number.as_str().to_owned();
            if !found.contains(&number) {
                found.push(number);
            }
        }
    }
    found
}

fn digits_of(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `number` (digits) names this order, by display name or id.
pub fn order_matches_number(order: &Order, number: &str) -> bool {
    [order.order_name.as_deref(), order.order_id.as_deref()]
        .into_iter()
        .flatten()
        .map(digits_of)
        .any(|digits| !digits.is_empty() && digits == number)
}

/// Whether the order has been cancelled or refunded.
pub fn order_cancelled(order: &Order) -> bool {
    let contains = |field: &Option<String>, words: &[&str]| {
        field
            .as_deref()
            .map(str::to_lowercase)
            .is_some_and(|value| words.iter().any(|word| value.contains(word)))
    };
    contains(&order.status, &["cancel", "void"])
        || contains(&order.financial_status, &["refunded", "voided"])
}

/// Whether any fulfillment carries a tracking number.
pub fn order_has_tracking(order: &Order) -> bool {
    order
        .fulfillment
        .iter()
        .flat_map(|fulfillment| &fulfillment.tracking)
        .any(|tracking| tracking.tracking_number.is_some())
}

/// Everything the policy needs to know about the linked order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    /// Exactly one order is linked, and any order number the customer mentions is
    /// that order's. (A mentioned number that differs is a conflict: no match.)
    pub deterministic_match: bool,
    /// The lookup itself failed.
    pub lookup_failed: bool,
    /// The order carries tracking.
    pub has_tracking: bool,
    /// The order is cancelled or refunded.
    pub cancelled: bool,
    /// The ETA rule for an order without tracking.
    pub eta: Eta,
}

impl OrderFacts {
    /// Computes the facts from the lookup, the customer's raw text and `now`.
    pub fn new(lookup: &OrderLookup, text: &str, now: DateTime<Utc>) -> OrderFacts {
        let Some(order) = lookup.single() else {
            return OrderFacts {
                deterministic_match: false,
                lookup_failed: matches!(lookup, OrderLookup::Failed),
                has_tracking: false,
                cancelled: false,
                eta: Eta::Unknown,
            };
        };
        let mentioned = order_numbers_in(text);
        let deterministic_match = mentioned.is_empty()
            || mentioned
                .iter()
                .any(|number| order_matches_number(order, number));
        OrderFacts {
            deterministic_match,
            lookup_failed: false,
            has_tracking: order_has_tracking(order),
            cancelled: order_cancelled(order),
            eta: eta(order, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn business_days_skip_weekends() {
        // 2026-11-13 is a Friday; 2026-11-18 a Wednesday.
        assert_eq!(
            business_days_between(date(2026, 11, 13), date(2026, 11, 18)),
            3
        );
        assert_eq!(
            business_days_between(date(2026, 11, 18), date(2026, 11, 18)),
            0
        );
        assert_eq!(
            business_days_between(date(2026, 11, 14), date(2026, 11, 16)),
            1
        );
        assert_eq!(
            business_days_between(date(2026, 11, 20), date(2026, 11, 13)),
            0
        );
    }

    fn order_placed(day: u32, method: &str) -> Order {
        Order {
            order_name: Some("#10482".into()),
            created_at: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).single(),
            shipping_method: Some(method.into()),
            ..Order::default()
        }
    }

    #[test]
    fn eta_rule() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .single()
            .unwrap();
        assert_eq!(
            eta(&order_placed(16, "Standard Shipping"), now),
            Eta::Remaining {
                bucket: ShippingBucket::Standard,
                remaining_business_days: 3
            }
        );
        assert_eq!(
            eta(&order_placed(10, "Free Shipping"), now),
            Eta::Elapsed {
                bucket: ShippingBucket::Standard
            }
        );
        assert_eq!(
            eta(&order_placed(17, "Rushed"), now),
            Eta::Elapsed {
                bucket: ShippingBucket::Rushed
            }
        );
        assert_eq!(
            eta(&order_placed(18, "Priority Mail Express"), now),
            Eta::Remaining {
                bucket: ShippingBucket::Priority,
                remaining_business_days: 1
            }
        );
        assert_eq!(eta(&order_placed(18, "Carrier pigeon"), now), Eta::Unknown);
    }

    #[test]
    fn order_numbers_and_matching() {
        assert_eq!(
            order_numbers_in("where is #10482 and order 10483?"),
            ["10482", "10483"]
        );
        assert_eq!(
            order_numbers_in("mi pedido número 555123 no llega"),
            ["555123"]
        );
        assert!(order_numbers_in("I ordered 2 shirts").is_empty());
        let order = order_placed(16, "Standard");
        let one = OrderLookup::One {
            order: Box::new(order),
        };
        let now = Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .single()
            .unwrap();
        assert!(OrderFacts::new(&one, "where is my order?", now).deterministic_match);
        assert!(OrderFacts::new(&one, "where is #10482", now).deterministic_match);
        assert!(!OrderFacts::new(&one, "where is #99999", now).deterministic_match);
        assert!(!OrderFacts::new(&OrderLookup::Several { count: 2 }, "", now).deterministic_match);
        assert!(OrderFacts::new(&OrderLookup::Failed, "", now).lookup_failed);
    }
}
