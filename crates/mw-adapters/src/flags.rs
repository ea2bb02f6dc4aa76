//! Runtime flags as key/value pairs, shared by every flag store (SQLite, SSM):
//! `safe_mode`, `automation_enabled`, `shadow_mode`, `channel.<channel>` and
//! `template.<id>`, each `true` or `false`.

use mw_core::{Channel, PortError, RuntimeFlags};
use serde_json::Value;

/// Checks a flag name and value before it is written.
pub fn check_flag(key: &str, value: &Value) -> Result<(), PortError> {
    let known = matches!(key, "safe_mode" | "automation_enabled" | "shadow_mode")
        || key
            .strip_prefix("channel.")
            .is_some_and(|c| Channel::from_richpanel(c).is_some_and(|ch| ch.as_str() == c))
        || key.strip_prefix("template.").is_some_and(|t| !t.is_empty());
    if !known {
        return Err(PortError::Invalid(format!(
            "unknown flag '{key}'; use safe_mode, automation_enabled, shadow_mode, channel.<email|livechat|social|tiktok|phone|sms> or template.<id>"
        )));
    }
    if !value.is_boolean() {
        return Err(PortError::Invalid(format!(
            "flag '{key}' takes true or false"
        )));
    }
    Ok(())
}

/// The flags from stored pairs (value: JSON text). A value that does not parse,
/// or a flag of the wrong type, makes the whole set unreadable (⇒ safe mode).
pub fn flags_from_pairs(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<RuntimeFlags, PortError> {
    let mut object = serde_json::Map::new();
    let mut channels = serde_json::Map::new();
    let mut templates = serde_json::Map::new();
    for (key, value) in pairs {
        let value: Value = serde_json::from_str(value.trim()).map_err(|_| {
            PortError::Invalid(format!(
                "flag '{key}' does not hold true or false; fix it (`mw flags set` or the parameter store)"
            ))
        })?;
        if let Some(channel) = key.strip_prefix("channel.") {
            channels.insert(channel.to_owned(), value);
        } else if let Some(template) = key.strip_prefix("template.") {
            templates.insert(template.to_owned(), value);
        } else {
            object.insert(key, value);
        }
    }
    object.insert("channels".into(), channels.into());
    object.insert("templates".into(), templates.into());
    serde_json::from_value(Value::Object(object)).map_err(|error| {
        PortError::Invalid(format!(
            "flags are invalid ({error}); fix them (`mw flags set` or the parameter store)"
        ))
    })
}
