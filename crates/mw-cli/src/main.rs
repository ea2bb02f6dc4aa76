//! `mw`: the operator's command-line tool.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mw_cli::Engine;
use mw_cli::eval::{Report, evaluate, parse_golden, regressions};
use mw_cli::explain::{ExplainInput, explain, render};

/// Richpanel routing and safe-automation middleware.
#[derive(Parser)]
#[command(name = "mw", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Overrides for the shipped decision data.
#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Rules file for the embedded classifier (default: the shipped rules).
    #[arg(long, env = "MW_RULES_FILE")]
    rules: Option<PathBuf>,
    /// Template directory with catalog_v1.yaml and brand.yaml (default: shipped).
    #[arg(long, env = "MW_TEMPLATES_DIR")]
    templates: Option<PathBuf>,
    /// Policy configuration (YAML): thresholds, reply limits, teams, assignees.
    #[arg(long, env = "MW_POLICY_FILE")]
    policy: Option<PathBuf>,
}

impl DataArgs {
    /// The engine with these overrides.
    fn engine(&self) -> Result<Engine, mw_cli::EngineError> {
        Engine::load(
            self.rules.as_deref(),
            self.templates.as_deref(),
            self.policy.as_deref(),
        )
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ClassifierArg {
    /// The embedded rules classifier.
    Rules,
    /// The `model_output` recorded on each line.
    Recorded,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a golden set: accuracy, macro-F1, Tier 0 recall and the hard gates.
    /// Exits 1 when a hard gate (or, with --baseline, a soft gate) fails.
    Eval {
        /// JSONL golden file.
        file: PathBuf,
        /// Which classifier to evaluate.
        #[arg(long, value_enum, default_value = "rules")]
        classifier: ClassifierArg,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Evaluation clock (RFC 3339); the golden set's orders are dated against it.
        #[arg(long, default_value = "2026-11-18T15:00:00Z")]
        now: DateTime<Utc>,
        /// Compare against a baseline report (soft gates of SPEC §10).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Write this run's report as the new baseline.
        #[arg(long)]
        write_baseline: Option<PathBuf>,
        /// List every line that missed or violated a gate (ids only).
        #[arg(long)]
        details: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Explain one decision: reads an event as JSON on stdin
    /// ({"channel","text","order","customer_name","model_output","flags","history","now"}).
    Explain {
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run the service: webhook ingress, durable queue, workers (SQLite, rules
    /// classifier, dry-run outbox unless Richpanel is configured).
    Serve {
        /// Config file (YAML) with any of the settings below; command line and MW_*
        /// environment variables take precedence.
        #[arg(long, env = "MW_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<mw_cli::serve::ServeSettings>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Check the live configuration: the Richpanel key, every tag and team mw uses
    /// (--fix creates missing tags), the bot author, the assignees, the OpenAI key
    /// and model, and the order linkage of recent conversations. Prints counts and
    /// names only, never customer data. Exits 1 when a check fails.
    Doctor {
        /// Create missing tags.
        #[arg(long)]
        fix: bool,
        /// A conversation whose order linkage to sample (repeatable; default: the
        /// most recent ones of the data directory).
        #[arg(long = "conversation")]
        conversations: Vec<String>,
        /// How many recent conversations to sample.
        #[arg(long, default_value_t = 20)]
        sample: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Config file, as for `mw serve`.
        #[arg(long, env = "MW_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<mw_cli::serve::ServeSettings>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Post each JSONL event to the running ingress of the data directory (or to an
    /// in-process one when none runs), wait until all are processed, print a summary.
    Replay {
        /// JSONL file, one webhook body per line.
        file: PathBuf,
        /// Ingress base URL (default: the running server of the data directory).
        #[arg(long)]
        url: Option<String>,
        /// Webhook token (default: MW_WEBHOOK_TOKENS or the generated token).
        #[arg(
            long,
            env = "MW_WEBHOOK_TOKENS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        token: Vec<String>,
        /// Longest wait for processing, seconds.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Runtime flags (kill switch, channels, templates).
    Flags {
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// The dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The decision trail of a conversation (redacted).
    Audit {
        /// Conversation id.
        conversation_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// The dry-run outbox: the actions that would have gone to Richpanel.
    Outbox {
        /// Only this conversation.
        #[arg(long)]
        conversation: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Template catalog tools.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Rules classifier tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(clap::Args, Clone)]
struct DataDirArg {
    /// Data directory of the service.
    #[arg(long, env = "MW_DATA_DIR", default_value = "./mw-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum FlagsCommand {
    /// Print the effective runtime flags.
    Get {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Set a flag: safe_mode, automation_enabled, shadow_mode, channel.<name> or
    /// template.<id>, to true or false. A running server applies it within 30 s.
    Set {
        /// The flag.
        key: String,
        /// true or false.
        value: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead-lettered events with their last error (no payloads).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Move dead-lettered events back to the queue: the given event keys, or all.
    Redrive {
        /// Event keys (all when none is given).
        event_keys: Vec<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Ingress throughput and ACK latency with durable enqueue, over loopback HTTP
    /// against an in-process server in a temporary data directory.
    Ingress {
        /// Offered rate of the fixed-rate phase, requests per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Length of each phase, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Connections of the saturation phase.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Worker tasks processing events meanwhile (0: ingress alone).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Commit durability.
        #[arg(long, value_enum, default_value = "full")]
        durability: mw_cli::serve::DurabilityArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Check the catalog: load errors, missing templates or languages, unsafe flags,
    /// bodies that do not render. Exits 1 on any problem.
    Lint {
        /// Template directory (default: the shipped catalog).
        #[arg(long, env = "MW_TEMPLATES_DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Print the shipped rules file, as a starting point for your own.
    PrintDefault,
    /// Check a rules file compiles. Exits 1 if not.
    Check {
        /// The rules file.
        file: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Ops(#[from] mw_cli::ops::OpsError),
    #[error(transparent)]
    Settings(#[from] mw_cli::serve::SettingsError),
    #[error(transparent)]
    Serve(#[from] mw_adapters::ServeError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Engine(#[from] mw_cli::EngineError),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}")]
    Input(String),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
}

fn read(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|error| CliError::Read(path.display().to_string(), error))
}

fn print_report(report: &Report, details: bool) {
    println!("classifier        {}", report.classifier);
    println!("lines             {}", report.n);
    println!("intent accuracy   {:.3}", report.intent_accuracy);
    println!("macro-F1          {:.3}", report.macro_f1);
    println!(
        "Tier 0 recall     {:.3}  (false-positive rate {:.3})",
        report.tier0_recall, report.tier0_false_positive_rate
    );
    let by_tier: Vec<String> = report
        .replies_by_tier
        .iter()
        .map(|(tier, n)| format!("{tier}: {n}"))
        .collect();
    println!(
        "automation rate   {:.3}  ({})",
        report.automation_rate,
        by_tier.join(", ")
    );
    println!("off-intent replies {}", report.off_intent_replies);
    println!();
    println!("hard gates");
    let gate = |name: &str, value: usize| {
        println!(
            "  {:<40} {:>4}  {}",
            name,
            value,
            if value == 0 { "ok" } else { "FAIL" }
        )
    };
    gate("missed Tier 0", report.missed_tier0);
    gate("automation on Tier 0", report.unsafe_automations);
    gate(
        "invalid model outputs accepted",
        report.invalid_outputs_accepted,
    );
    gate("Tier 3 executions", report.tier3_executions);
    gate(
        "Tier 2 without deterministic match",
        report.tier2_without_deterministic_match,
    );
    println!(
        "  (invalid model outputs rejected: {})",
        report.invalid_outputs_rejected
    );
    println!();
    println!(
        "{:<32} {:>9} {:>7} {:>7} {:>8}",
        "intent", "precision", "recall", "f1", "support"
    );
    for (intent, m) in &report.per_intent {
        println!(
            "{:<32} {:>9.2} {:>7.2} {:>7.2} {:>8}",
            intent, m.precision, m.recall, m.f1, m.support
        );
    }
    if details {
        println!();
        for line in report
            .lines
            .iter()
            .filter(|l| !l.hit || !l.violations.is_empty())
        {
            println!(
                "{:<10} expected {:<30} got {:<30} {}",
                line.id,
                line.expected.as_str(),
                line.predicted.as_str(),
                line.violations.join(",")
            );
        }
    }
    println!();
    println!(
        "hard gates {}",
        if report.hard_gates_passed {
            "passed"
        } else {
            "FAILED"
        }
    );
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Prints `value` as pretty JSON, or as `render` makes it for people.
fn print_as<T: serde::Serialize>(json: bool, value: &T, render: impl FnOnce(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{}", render(value));
    }
}

fn print(text: String) -> Result<ExitCode, CliError> {
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Serve {
            config,
            settings,
            data,
        } => {
            let settings = settings.merged_with_file(config.as_deref())?;
            mw_cli::serve::init_logs(
                settings
                    .log_format
                    .unwrap_or(mw_cli::serve::LogFormat::Json),
                settings.log.as_deref().unwrap_or("info"),
            );
            let engine = data.engine()?;
            let serve_config = mw_adapters::ServeConfig {
                announce: true,
                ..settings.config()?
            };
            let components = settings.components(engine)?;
            runtime()?.block_on(mw_adapters::serve(
                serve_config,
                components,
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor {
            fix,
            mut conversations,
            sample,
            json,
            config,
            settings,
            data,
        } => {
            let settings = settings.merged_with_file(config.as_deref())?;
            let engine = data.engine()?;
            let database = mw_adapters::server::database_path(&settings.data_dir());
            if conversations.is_empty() && database.exists() {
                conversations = mw_cli::ops::store(&settings.data_dir())?
                    .recent_conversations(sample)
                    .map_err(mw_cli::ops::OpsError::from)?;
            }
            let options = mw_cli::doctor::DoctorOptions { fix, conversations };
            let checks = runtime()?.block_on(mw_cli::doctor::doctor(
                &settings,
                engine.policy.config(),
                &options,
            ))?;
            print_as(json, &checks, |checks| mw_cli::doctor::render(checks));
            Ok(if mw_cli::doctor::failed(&checks) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Replay {
            file,
            url,
            token,
            wait_secs,
            json,
            dir,
            data,
        } => {
            let runtime = runtime()?;
            let running = match url {
                Some(url) => {
                    let token = token.first().cloned().or_else(|| {
                        std::fs::read_to_string(mw_adapters::server::token_path(&dir.data_dir))
                            .ok()
                            .map(|t| t.trim().to_owned())
                    });
                    Some(mw_cli::ops::ReplayTarget {
                        url,
                        token: token.unwrap_or_default(),
                    })
                }
                None => mw_cli::ops::running_target(&dir.data_dir, &token),
            };
            let lines = std::fs::read_to_string(&file)
                .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0);
            let bar = if std::io::stderr().is_terminal() {
                ProgressBar::new(lines as u64)
            } else {
                ProgressBar::hidden()
            };
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events posted") {
                bar.set_style(style);
            }
            let summary = runtime.block_on(async {
                let (target, server) = match running {
                    Some(target) => (target, None),
                    None => {
                        eprintln!(
                            "no server is running for {}; starting one in-process",
                            dir.data_dir.display()
                        );
                        let engine = data.engine()?;
                        let settings = mw_cli::serve::ServeSettings {
                            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                            data_dir: Some(dir.data_dir.clone()),
                            webhook_tokens: (!token.is_empty()).then(|| token.clone()),
                            rate_limit_per_sec: Some(0),
                            ..Default::default()
                        };
                        let server = mw_cli::ops::InProcessServer::start(&settings, engine).await?;
                        let target = mw_cli::ops::running_target(&dir.data_dir, &token)
                            .ok_or_else(|| {
                                CliError::Input(
                                    "the in-process server wrote no address or token".into(),
                                )
                            })?;
                        (target, Some(server))
                    }
                };
                let summary = mw_cli::ops::replay(
                    &dir.data_dir,
                    &file,
                    &target,
                    std::time::Duration::from_secs(wait_secs),
                    || bar.inc(1),
                )
                .await?;
                if let Some(server) = server {
                    server.stop().await?;
                }
                Ok::<_, CliError>(summary)
            })?;
            bar.finish_and_clear();
            print_as(json, &summary, mw_cli::ops::render_summary);
            let complete = summary.still_queued == 0 && summary.errors == 0;
            Ok(if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench {
            command:
                BenchCommand::Ingress {
                    rate,
                    seconds,
                    connections,
                    workers,
                    durability,
                    json,
                },
        } => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let data_dir =
                std::env::temp_dir().join(format!("mw-bench-{}-{nanos}", std::process::id()));
            let token = "bench-token".to_owned();
            let settings = mw_cli::serve::ServeSettings {
                listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                data_dir: Some(data_dir.clone()),
                webhook_tokens: Some(vec![token.clone()]),
                rate_limit_per_sec: Some(0),
                workers: Some(workers),
                durability: Some(durability),
                log_format: Some(mw_cli::serve::LogFormat::Text),
                ..Default::default()
            };
            let engine = Engine::embedded()?;
            let results = runtime()?.block_on(async {
                let server = mw_cli::ops::InProcessServer::start(&settings, engine).await?;
                let url = format!("{}/webhook/richpanel", server.url);
                let phase = std::time::Duration::from_secs(seconds);
                let _warmup = mw_cli::bench::fixed_rate(
                    &url,
                    &token,
                    rate.min(200),
                    std::time::Duration::from_secs(1),
                )
                .await;
                let fixed = mw_cli::bench::fixed_rate(&url, &token, rate, phase).await;
                let saturated = mw_cli::bench::saturation(&url, &token, connections, phase).await;
                server.stop().await?;
                Ok::<_, CliError>(vec![fixed, saturated])
            })?;
            let _ = std::fs::remove_dir_all(&data_dir);
            print_as(json, &results, |results| mw_cli::bench::render(results));
            Ok(ExitCode::SUCCESS)
        }
        Command::Flags {
            command: FlagsCommand::Get { dir },
        } => print(mw_cli::ops::flags_get(&dir.data_dir)?),
        Command::Flags {
            command: FlagsCommand::Set { key, value, dir },
        } => print(mw_cli::ops::flags_set(&dir.data_dir, &key, &value)?),
        Command::Dlq {
            command: DlqCommand::List { json, dir },
        } => print(mw_cli::ops::dlq_list(&dir.data_dir, json)?),
        Command::Dlq {
            command: DlqCommand::Redrive { event_keys, dir },
        } => print(mw_cli::ops::dlq_redrive(&dir.data_dir, &event_keys)?),
        Command::Audit {
            conversation_id,
            json,
            dir,
        } => {
            print(runtime()?.block_on(mw_cli::ops::audit(&dir.data_dir, &conversation_id, json))?)
        }
        Command::Outbox {
            conversation,
            json,
            dir,
        } => print(mw_cli::ops::outbox(
            &dir.data_dir,
            conversation.as_deref(),
            json,
        )?),
        Command::Eval {
            file,
            classifier,
            json,
            now,
            baseline,
            write_baseline,
            details,
            data,
        } => {
            let engine = data.engine()?;
            let lines = parse_golden(&read(&file)?)
                .map_err(|error| CliError::Input(format!("{}: {error}", file.display())))?;
            let bar = if std::io::stderr().is_terminal() {
                ProgressBar::new(lines.len() as u64)
            } else {
                ProgressBar::hidden()
            };
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} lines") {
                bar.set_style(style);
            }
            let name = if classifier == ClassifierArg::Recorded {
                "recorded"
            } else {
                "rules"
            };
            let report = evaluate(&engine, &lines, name, now, || bar.inc(1));
            bar.finish_and_clear();
            let mut failed = !report.hard_gates_passed;
            let mut soft = Vec::new();
            if let Some(path) = &baseline {
                let base: Report = serde_json::from_str(&read(path)?).map_err(|error| {
                    CliError::Input(format!("baseline {}: {error}", path.display()))
                })?;
                soft = regressions(&report, &base);
                failed |= !soft.is_empty();
            }
            if json {
                let mut value = serde_json::to_value(&report).unwrap_or_default();
                value["soft_gate_regressions"] = serde_json::json!(soft);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print_report(&report, details);
                for regression in &soft {
                    println!("soft gate: {regression}");
                }
            }
            if let Some(path) = write_baseline {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                std::fs::write(&path, text + "\n")
                    .map_err(|error| CliError::Write(path.display().to_string(), error))?;
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain { json, data } => {
            let engine = data.engine()?;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CliError::Read("stdin".into(), error))?;
            let input: ExplainInput = serde_json::from_str(&text)
                .map_err(|error| CliError::Input(format!("stdin is not a valid event: {error}")))?;
            let decision = explain(&engine, &input, Utc::now());
            print_as(json, &decision, render);
            Ok(ExitCode::SUCCESS)
        }
        Command::Templates {
            command: TemplatesCommand::Lint { dir },
        } => {
            let catalog = match &dir {
                Some(dir) => mw_templates::Catalog::from_dir(dir),
                None => mw_templates::Catalog::embedded(),
            };
            let catalog = match catalog {
                Ok(catalog) => catalog,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let issues = mw_templates::lint(&catalog);
            for issue in &issues {
                eprintln!("error: {issue}");
            }
            if issues.is_empty() {
                println!(
                    "ok: {} templates, English and Spanish, every body renders",
                    catalog.specs().count()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s)", issues.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Rules {
            command: RulesCommand::PrintDefault,
        } => {
            print!("{}", mw_policy::RulesClassifier::embedded_source());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command: RulesCommand::Check { file },
        } => match mw_policy::RulesClassifier::from_yaml(&read(&file)?) {
            Ok(_) => {
                println!("ok: {} compiles", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                eprintln!("error: {error}");
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
