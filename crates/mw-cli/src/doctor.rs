//! `mw doctor`: checks a tenant before (and after) going live. It prints counts,
//! ids and tag or team names only: never customer names, emails, message text or
//! order contents.

use std::fmt::Write as _;

use mw_adapters::openai::{OpenAiClient, PROMPT_VERSION};
use mw_adapters::richpanel::RichpanelClient;
use mw_core::{OrderLookup, Orders, Team, all_tags, order_has_tracking};
use mw_policy::PolicyConfig;
use serde::Serialize;
use strum::IntoEnumIterator;

use crate::serve::{ServeSettings, SettingsError};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but something should be looked at.
    Warn,
    /// Broken: going live would misbehave.
    Fail,
    /// Was broken and `--fix` repaired it.
    Fixed,
    /// Not configured, so not checked.
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// Counts and names only.
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// What `mw doctor` does.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// Create missing tags.
    pub fix: bool,
    /// Conversations whose order linkage is sampled.
    pub conversations: Vec<String>,
}

/// Runs every check.
pub async fn doctor(
    settings: &ServeSettings,
    policy: &PolicyConfig,
    options: &DoctorOptions,
) -> Result<Vec<Check>, SettingsError> {
    let mut checks = Vec::new();
    match settings.richpanel_config()? {
        None => checks.push(check(
            "richpanel",
            Status::Skipped,
            "MW_RICHPANEL_API_KEY is not set: mw serve runs in dry-run mode",
        )),
        Some(config) => {
            let client = RichpanelClient::new(config)
                .map_err(|error| SettingsError::Invalid(error.to_string()))?;
            richpanel_checks(&client, policy, options, &mut checks).await;
        }
    }
    match settings.openai_config()? {
        None => checks.push(check(
            "openai",
            Status::Skipped,
            "MW_OPENAI_API_KEY is not set: the embedded rules classifier is used",
        )),
        Some(config) => {
            let model = config.model.clone();
            let client = OpenAiClient::new(config)
                .map_err(|error| SettingsError::Invalid(error.to_string()))?;
            checks.push(match client.probe().await {
                Ok(()) => check(
                    "openai",
                    Status::Ok,
                    format!("model {model} answers with strict structured output; prompts {PROMPT_VERSION}"),
                ),
                Err(error) => check("openai", Status::Fail, format!("model {model}: {error}")),
            });
        }
    }
    Ok(checks)
}

async fn richpanel_checks(
    client: &RichpanelClient,
    policy: &PolicyConfig,
    options: &DoctorOptions,
    checks: &mut Vec<Check>,
) {
    let tags = match client.tags().await {
        Ok(tags) => {
            checks.push(check(
                "richpanel key",
                Status::Ok,
                format!("accepted; the tenant has {} tags", tags.len()),
            ));
            tags
        }
        Err(error) => {
            checks.push(check("richpanel key", Status::Fail, error.to_string()));
            return;
        }
    };
    // Tags.
    let team_names: Vec<&str> = Team::iter()
        .filter_map(|team| policy.tenant_team(team))
        .collect();
    let present: Vec<String> = tags.iter().map(|tag| tag.name.to_lowercase()).collect();
    let missing: Vec<String> = all_tags(team_names.iter().copied())
        .into_iter()
        .filter(|tag| !present.contains(&tag.to_lowercase()))
        .collect();
    if missing.is_empty() {
        checks.push(check("tags", Status::Ok, "every tag mw writes exists"));
    } else if options.fix {
        let mut failed = Vec::new();
        for tag in &missing {
            if client.create_tag(tag).await.is_err() {
                failed.push(tag.clone());
            }
        }
        checks.push(if failed.is_empty() {
            check(
                "tags",
                Status::Fixed,
                format!(
                    "created {} missing tags: {}",
                    missing.len(),
                    missing.join(", ")
                ),
            )
        } else {
            check(
                "tags",
                Status::Fail,
                format!(
                    "could not create {} tags: {}",
                    failed.len(),
                    failed.join(", ")
                ),
            )
        });
    } else {
        checks.push(check(
            "tags",
            Status::Fail,
            format!(
                "{} missing (run with --fix to create them): {}",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    // Teams.
    match client.teams().await {
        Ok(teams) => {
            let known: Vec<String> = teams.iter().map(|team| team.name.to_lowercase()).collect();
            let missing: Vec<&str> = team_names
                .iter()
                .copied()
                .filter(|name| !known.contains(&name.to_lowercase()))
                .collect();
            let fallback_missing = policy
                .tenant_team(Team::EmailSupport)
                .is_none_or(|name| missing.contains(&name));
            checks.push(match (missing.is_empty(), fallback_missing) {
                (true, _) => check(
                    "teams",
                    Status::Ok,
                    format!("all {} configured teams exist", team_names.len()),
                ),
                (false, true) => check(
                    "teams",
                    Status::Fail,
                    format!(
                        "missing, including the fallback team: {}",
                        missing.join(", ")
                    ),
                ),
                (false, false) => check(
                    "teams",
                    Status::Warn,
                    format!(
                        "missing (their conversations fall back to the Email Support Team): {}",
                        missing.join(", ")
                    ),
                ),
            });
        }
        Err(error) => checks.push(check("teams", Status::Fail, error.to_string())),
    }
    // The bot author and the configured assignees.
    let bot = &client.config().bot_author_id;
    checks.push(match client.user(bot).await {
        Ok(Some(_)) => check("bot author", Status::Ok, format!("user {bot} exists")),
        Ok(None) => check("bot author", Status::Fail, format!("user {bot} does not exist; set MW_RICHPANEL_BOT_AUTHOR_ID to the bot agent's user id")),
        Err(error) => check("bot author", Status::Fail, error.to_string()),
    });
    let mut unknown = Vec::new();
    for assignee in policy.assignees.values() {
        if !matches!(client.user(assignee).await, Ok(Some(_))) {
            unknown.push(assignee.clone());
        }
    }
    if !policy.assignees.is_empty() {
        checks.push(if unknown.is_empty() {
            check(
                "assignees",
                Status::Ok,
                format!("all {} configured assignees exist", policy.assignees.len()),
            )
        } else {
            check(
                "assignees",
                Status::Fail,
                format!("unknown user ids: {}", unknown.join(", ")),
            )
        });
    }
    // Order linkage, counts only.
    if options.conversations.is_empty() {
        checks.push(check(
            "order linkage",
            Status::Skipped,
            "no conversations to sample (none processed yet; pass --conversation ID)",
        ));
        return;
    }
    let (mut none, mut one, mut tracked, mut several, mut failed) = (0, 0, 0, 0, 0);
    for id in &options.conversations {
        match client.linked_order(id).await {
            Ok(OrderLookup::None) => none += 1,
            Ok(OrderLookup::One { order }) => {
                one += 1;
                if order_has_tracking(&order) {
                    tracked += 1;
                }
            }
            Ok(OrderLookup::Several { .. }) => several += 1,
            Ok(OrderLookup::Failed) | Err(_) => failed += 1,
        }
    }
    let total = options.conversations.len();
    let detail = format!(
        "{total} sampled: {one} with one linked order ({tracked} with tracking), {none} without, {several} with several, {failed} lookups failed"
    );
    checks.push(check(
        "order linkage",
        if failed > 0 { Status::Warn } else { Status::Ok },
        detail,
    ));
}

/// The checks as a table.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for item in checks {
        let status = match item.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Fixed => "fixed",
            Status::Skipped => "skipped",
        };
        let _ = writeln!(out, "{status:<8} {:<14} {}", item.name, item.detail);
    }
    out
}

/// Whether any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|item| item.status == Status::Fail)
}
