//! `mw serve` settings (command line > `MW_*` environment > config file > defaults)
//! and start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mw_adapters::dryrun::ConversationFile;
use mw_adapters::http::RetryPolicy;
use mw_adapters::metrics::Metrics;
use mw_adapters::openai::{OpenAiClassifier, OpenAiClient, OpenAiConfig, OpenAiVerifier};
use mw_adapters::richpanel::{RichpanelClient, RichpanelConfig};
use mw_adapters::shopify::{ShopifyConfig, ShopifyTracking};
use mw_adapters::worker::{Vendor, WorkerConfig};
use mw_adapters::{AuthMode, Components, Durability, ServeConfig, Throttle};
use mw_core::{Actions, Classifier, Orders, Verifier};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError};

/// How webhook callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthModeArg {
    /// Static token in a header (`--token-header`).
    Token,
    /// HMAC-SHA256 of `timestamp.body` in `X-Signature`, Unix time in `X-Timestamp`.
    Hmac,
    /// Token in the URL query: `?token=…`.
    Url,
}

/// Commit durability of the embedded database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityArg {
    /// Survives power loss (fsync on every commit).
    Full,
    /// Survives a process crash, not power loss (faster).
    Normal,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Text,
}

/// Logs on stderr in `format`, filtered by `filter` (e.g. `info`); JSON lines carry
/// the current span (the correlation id). Only the first call takes effect.
pub fn init_logs(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Every `mw serve` setting. Each can come from the command line, an `MW_*`
/// environment variable or the config file (`--config`), in that order of
/// precedence; the default applies otherwise.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory: database, generated token, lock [default: ./mw-data].
    #[arg(long, env = "MW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Webhook secrets, comma-separated; several may be active at once for rotation.
    /// Without any, the first start generates a token into the data directory.
    #[arg(long, env = "MW_WEBHOOK_TOKENS", value_delimiter = ',')]
    pub webhook_tokens: Option<Vec<String>>,
    /// How callers authenticate [default: token].
    #[arg(long, env = "MW_AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthModeArg>,
    /// Header carrying the token in token mode [default: x-richpanel-webhook-token].
    #[arg(long, env = "MW_TOKEN_HEADER")]
    pub token_header: Option<String>,
    /// Accepted clock skew in HMAC mode, seconds [default: 300].
    #[arg(long, env = "MW_HMAC_WINDOW_SECS")]
    pub hmac_window_secs: Option<i64>,
    /// Ingress throttle, requests per second; 0 disables [default: 100].
    #[arg(long, env = "MW_RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: Option<u32>,
    /// Ingress throttle burst [default: 200].
    #[arg(long, env = "MW_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Concurrent worker tasks; 0 accepts events without processing them [default: 4].
    #[arg(long, env = "MW_WORKERS")]
    pub workers: Option<usize>,
    /// Queue visibility timeout, seconds [default: 180].
    #[arg(long, env = "MW_VISIBILITY_SECS")]
    pub visibility_secs: Option<u64>,
    /// Receives before an event goes to the dead-letter queue [default: 5].
    #[arg(long, env = "MW_MAX_RECEIVES")]
    pub max_receives: Option<u32>,
    /// Base delay before a failed event is retried, ms (× attempt) [default: 1000].
    #[arg(long, env = "MW_RETRY_DELAY_MS")]
    pub retry_delay_ms: Option<u64>,
    /// Longest processing time of one event, seconds [default: 60].
    #[arg(long, env = "MW_EVENT_TIMEOUT_SECS")]
    pub event_timeout_secs: Option<u64>,
    /// Runtime flags cache, seconds, at most 30 [default: 30].
    #[arg(long, env = "MW_FLAGS_CACHE_SECS")]
    pub flags_cache_secs: Option<u64>,
    /// Commit durability [default: full].
    #[arg(long, env = "MW_SQLITE_DURABILITY", value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Dry-run conversations (JSONL: id, channel, customer, messages, order) for
    /// events whose payload carries no text.
    #[arg(long, env = "MW_CONVERSATIONS_FILE")]
    pub conversations_file: Option<PathBuf>,
    /// How long shutdown waits for in-flight events, seconds [default: 20].
    #[arg(long, env = "MW_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// How long a webhook caller may take to send its headers, and then its body,
    /// seconds; slower senders are cut off (408) [default: 10].
    #[arg(long, env = "MW_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<f64>,
    /// Log format [default: json].
    #[arg(long, env = "MW_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `mw_adapters=debug` [default: info].
    #[arg(long, env = "MW_LOG")]
    pub log: Option<String>,
    /// Richpanel API root [default: https://api.richpanel.com].
    #[arg(long, env = "MW_RICHPANEL_BASE_URL")]
    pub richpanel_base_url: Option<String>,
    /// Richpanel API key. Without it, conversations come from the event payloads
    /// and actions go to the dry-run outbox. Environment only (never in the file).
    #[arg(long, env = "MW_RICHPANEL_API_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub richpanel_api_key: Option<String>,
    /// The Richpanel user id replies are sent as (the bot agent); required with an
    /// API key. Its messages are recognised as ours (loop guard).
    #[arg(long, env = "MW_RICHPANEL_BOT_AUTHOR_ID")]
    pub richpanel_bot_author_id: Option<String>,
    /// Richpanel requests allowed per window, shared by all workers [default: 50].
    #[arg(long, env = "MW_RICHPANEL_RATE_LIMIT")]
    pub richpanel_rate_limit: Option<u32>,
    /// Richpanel rate-limit window, seconds [default: 30].
    #[arg(long, env = "MW_RICHPANEL_RATE_WINDOW_SECS")]
    pub richpanel_rate_window_secs: Option<f64>,
    /// Timeout of one Richpanel request, seconds [default: 10].
    #[arg(long, env = "MW_RICHPANEL_TIMEOUT_SECS")]
    pub richpanel_timeout_secs: Option<f64>,
    /// Send tag ids instead of names when tagging (missing tags are created)
    /// [default: false].
    #[arg(long, env = "MW_RICHPANEL_TAGS_AS_IDS")]
    pub richpanel_tags_as_ids: Option<bool>,
    /// OpenAI-compatible API root [default: https://api.openai.com/v1].
    #[arg(long, env = "MW_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// OpenAI API key. With it, the classifier and the Tier 2 verifier are the
    /// model; without it, the embedded rules. Environment only.
    #[arg(long, env = "MW_OPENAI_API_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub openai_api_key: Option<String>,
    /// Model with strict structured outputs [default: gpt-4o-mini].
    #[arg(long, env = "MW_OPENAI_MODEL")]
    pub openai_model: Option<String>,
    /// Overall deadline of one model call, retries included, seconds [default: 30].
    #[arg(long, env = "MW_OPENAI_TIMEOUT_SECS")]
    pub openai_timeout_secs: Option<f64>,
    /// Shopify store root, e.g. https://example.myshopify.com: read tracking from
    /// Shopify when the Richpanel order has none (needs the access token).
    #[arg(long, env = "MW_SHOPIFY_STORE_URL")]
    pub shopify_store_url: Option<String>,
    /// Shopify Admin API access token. Environment only.
    #[arg(long, env = "MW_SHOPIFY_ACCESS_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    pub shopify_access_token: Option<String>,
    /// Shopify Admin API version [default: 2025-01].
    #[arg(long, env = "MW_SHOPIFY_API_VERSION")]
    pub shopify_api_version: Option<String>,
}

/// Why `mw serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file is unreadable or invalid.
    #[error("config file {path}: {message}")]
    Config {
        /// File.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The decision engine could not load.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ServeSettings {
    /// Settings given on the command line or in the environment override the file.
    pub fn merged_with_file(
        self,
        file: Option<&std::path::Path>,
    ) -> Result<ServeSettings, SettingsError> {
        let Some(path) = file else { return Ok(self) };
        let text = std::fs::read_to_string(path).map_err(|error| SettingsError::Config {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        let from_file: ServeSettings =
            serde_norway::from_str(&text).map_err(|error| SettingsError::Config {
                path: path.display().to_string(),
                message: error.to_string(),
            })?;
        let mut merged = serde_json::to_value(&from_file).unwrap_or_default();
        if let (Some(target), Ok(serde_json::Value::Object(ours))) =
            (merged.as_object_mut(), serde_json::to_value(&self))
        {
            for (key, value) in ours {
                if !value.is_null() {
                    target.insert(key, value);
                }
            }
        }
        let mut settings: ServeSettings =
            serde_json::from_value(merged).map_err(|error| SettingsError::Config {
                path: path.display().to_string(),
                message: error.to_string(),
            })?;
        settings.richpanel_api_key = self.richpanel_api_key;
        settings.openai_api_key = self.openai_api_key;
        settings.shopify_access_token = self.shopify_access_token;
        Ok(settings)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./mw-data"))
    }

    /// The server configuration.
    pub fn config(&self) -> Result<ServeConfig, SettingsError> {
        let flags_cache = self.flags_cache_secs.unwrap_or(30);
        if flags_cache > 30 {
            return Err(SettingsError::Invalid(
                "flags_cache_secs must be at most 30 (flags take effect within 30 s)".into(),
            ));
        }
        let auth_mode = match self.auth_mode.unwrap_or(AuthModeArg::Token) {
            AuthModeArg::Token => AuthMode::Token {
                header: self
                    .token_header
                    .clone()
                    .unwrap_or_else(|| "x-richpanel-webhook-token".into()),
            },
            AuthModeArg::Hmac => AuthMode::Hmac {
                window_secs: self.hmac_window_secs.unwrap_or(300),
            },
            AuthModeArg::Url => AuthMode::UrlToken,
        };
        let tokens: Vec<String> = self
            .webhook_tokens
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() && !matches!(auth_mode, AuthMode::Token { .. }) {
            return Err(SettingsError::Invalid(
                "HMAC and URL-token modes need MW_WEBHOOK_TOKENS (the shared secrets)".into(),
            ));
        }
        let per_second = self.rate_limit_per_sec.unwrap_or(100);
        Ok(ServeConfig {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: self.data_dir(),
            webhook_tokens: tokens,
            auth_mode,
            throttle: (per_second > 0).then(|| Throttle {
                per_second,
                burst: self.rate_limit_burst.unwrap_or(200),
            }),
            worker: WorkerConfig {
                concurrency: self.workers.unwrap_or(4),
                visibility: Duration::from_secs(self.visibility_secs.unwrap_or(180).max(1)),
                idle_poll: Duration::from_millis(500),
                event_timeout: Duration::from_secs(self.event_timeout_secs.unwrap_or(60).max(1)),
            },
            max_receives: self.max_receives.unwrap_or(5).max(1),
            retry_delay: Duration::from_millis(self.retry_delay_ms.unwrap_or(1000)),
            flags_cache: Duration::from_secs(flags_cache),
            durability: match self.durability.unwrap_or(DurabilityArg::Full) {
                DurabilityArg::Full => Durability::Full,
                DurabilityArg::Normal => Durability::Normal,
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs.unwrap_or(20)),
            request_timeout: Duration::from_secs_f64(
                self.request_timeout_secs
                    .filter(|secs| secs.is_finite())
                    .unwrap_or(10.0)
                    .clamp(0.1, 300.0),
            ),
            announce: false,
        })
    }

    /// The Richpanel client settings, when an API key is configured.
    pub fn richpanel_config(&self) -> Result<Option<RichpanelConfig>, SettingsError> {
        let Some(key) = secret(&self.richpanel_api_key) else {
            return Ok(None);
        };
        let bot = self
            .richpanel_bot_author_id
            .as_deref()
            .map(str::trim)
            .filter(|bot| !bot.is_empty())
            .ok_or_else(|| {
                SettingsError::Invalid(
                    "MW_RICHPANEL_API_KEY is set but MW_RICHPANEL_BOT_AUTHOR_ID is not: replies need the Richpanel user id of the bot agent (see `mw doctor`)".into(),
                )
            })?;
        let mut config = RichpanelConfig::new(key, bot);
        if let Some(url) = &self.richpanel_base_url {
            config.base_url = url.trim().to_owned();
        }
        config.rate_limit = self.richpanel_rate_limit.unwrap_or(50).max(1);
        config.rate_window = seconds(
            self.richpanel_rate_window_secs,
            30.0,
            "richpanel_rate_window_secs",
        )?;
        config.retry.timeout =
            seconds(self.richpanel_timeout_secs, 10.0, "richpanel_timeout_secs")?;
        config.tags_as_ids = self.richpanel_tags_as_ids.unwrap_or(false);
        Ok(Some(config))
    }

    /// The OpenAI client settings, when an API key is configured.
    pub fn openai_config(&self) -> Result<Option<OpenAiConfig>, SettingsError> {
        let Some(key) = secret(&self.openai_api_key) else {
            return Ok(None);
        };
        let mut config = OpenAiConfig::new(
            key,
            self.openai_model.as_deref().unwrap_or("gpt-4o-mini").trim(),
        );
        if let Some(url) = &self.openai_base_url {
            config.base_url = url.trim().to_owned();
        }
        let deadline = seconds(self.openai_timeout_secs, 30.0, "openai_timeout_secs")?;
        config.retry.deadline = deadline;
        config.retry.timeout = deadline;
        Ok(Some(config))
    }

    /// The Shopify tracking source, when both the store and the token are set.
    pub fn shopify_config(&self) -> Result<Option<ShopifyConfig>, SettingsError> {
        match (&self.shopify_store_url, secret(&self.shopify_access_token)) {
            (None, None) => Ok(None),
            (Some(url), Some(token)) => Ok(Some(ShopifyConfig {
                base_url: url.trim().to_owned(),
                access_token: token.to_owned(),
                api_version: self
                    .shopify_api_version
                    .clone()
                    .unwrap_or_else(|| "2025-01".into()),
                retry: RetryPolicy::RICHPANEL,
            })),
            _ => Err(SettingsError::Invalid(
                "Shopify tracking needs both MW_SHOPIFY_STORE_URL and MW_SHOPIFY_ACCESS_TOKEN"
                    .into(),
            )),
        }
    }

    /// The components: Richpanel when a key is set (else the dry-run vendor and
    /// outbox), OpenAI when a key is set (else the embedded rules), the embedded
    /// policy and templates.
    pub fn components(&self, engine: Engine) -> Result<Components, SettingsError> {
        let metrics = Arc::new(Metrics::new());
        let Engine {
            policy,
            catalog,
            rules,
            verifier,
        } = engine;
        let (classifier, verifier): (Arc<dyn Classifier>, Arc<dyn Verifier>) =
            match self.openai_config()? {
                Some(config) => {
                    let client = Arc::new(
                        OpenAiClient::new(config)
                            .map_err(|error| SettingsError::Invalid(error.to_string()))?
                            .with_metrics(metrics.clone()),
                    );
                    (
                        Arc::new(OpenAiClassifier::new(client.clone())),
                        Arc::new(OpenAiVerifier::new(client)),
                    )
                }
                None => (Arc::new(rules), Arc::new(verifier)),
            };
        let (vendor, actions): (Vendor, Option<Arc<dyn Actions>>) = match self.richpanel_config()? {
            Some(config) => {
                let client = Arc::new(
                    RichpanelClient::new(config)
                        .map_err(|error| SettingsError::Invalid(error.to_string()))?
                        .with_metrics(metrics.clone()),
                );
                let orders: Arc<dyn Orders> = match self.shopify_config()? {
                    Some(shopify) => Arc::new(
                        ShopifyTracking::new(client.clone(), shopify)
                            .map_err(|error| SettingsError::Invalid(error.to_string()))?,
                    ),
                    None => client.clone(),
                };
                (
                    Vendor::Live {
                        conversations: client.clone(),
                        orders,
                    },
                    Some(client),
                )
            }
            None => {
                let file = match &self.conversations_file {
                    Some(path) => ConversationFile::load(path).map_err(SettingsError::Invalid)?,
                    None => ConversationFile::default(),
                };
                (Vendor::DryRun(Arc::new(file)), None)
            }
        };
        Ok(Components {
            classifier,
            verifier,
            policy: Arc::new(policy),
            renderer: Arc::new(catalog),
            vendor,
            actions,
            metrics,
        })
    }
}

/// A secret that is set and not blank.
fn secret(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// A duration setting in seconds (positive and finite), or its default.
fn seconds(value: Option<f64>, default: f64, name: &str) -> Result<Duration, SettingsError> {
    let value = value.unwrap_or(default);
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(SettingsError::Invalid(format!(
            "{name} must be a positive number of seconds, not {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_and_environment_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("mw-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mw.yaml");
        std::fs::write(&file, "listen: 127.0.0.1:9000\nworkers: 2\nflags_cache_secs: 10\nauth_mode: hmac\nwebhook_tokens: [from-file]\n").unwrap();
        let cli = ServeSettings {
            workers: Some(8),
            ..ServeSettings::default()
        };
        let merged = cli.merged_with_file(Some(&file)).unwrap();
        let config = merged.config().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.worker.concurrency, 8);
        assert_eq!(config.flags_cache, Duration::from_secs(10));
        assert_eq!(config.auth_mode, AuthMode::Hmac { window_secs: 300 });
        assert_eq!(config.webhook_tokens, vec!["from-file".to_owned()]);
        std::fs::write(&file, "workers: 2\nlisten_on: nowhere\n").unwrap();
        let error = ServeSettings::default()
            .merged_with_file(Some(&file))
            .unwrap_err();
        assert!(error.to_string().contains("listen_on"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn defaults_and_limits() {
        let config = ServeSettings::default().config().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./mw-data"));
        assert_eq!(config.max_receives, 5);
        assert_eq!(config.worker.visibility, Duration::from_secs(180));
        assert!(
            ServeSettings {
                flags_cache_secs: Some(31),
                ..Default::default()
            }
            .config()
            .is_err()
        );
        assert!(
            ServeSettings {
                auth_mode: Some(AuthModeArg::Hmac),
                ..Default::default()
            }
            .config()
            .is_err()
        );
    }
}
