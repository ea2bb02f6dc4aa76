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

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
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
            let engine = Engine::load(
                data.rules.as_deref(),
                data.templates.as_deref(),
                data.policy.as_deref(),
            )?;
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
            let engine = Engine::load(
                data.rules.as_deref(),
                data.templates.as_deref(),
                data.policy.as_deref(),
            )?;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CliError::Read("stdin".into(), error))?;
            let input: ExplainInput = serde_json::from_str(&text)
                .map_err(|error| CliError::Input(format!("stdin is not a valid event: {error}")))?;
            let decision = explain(&engine, &input, Utc::now());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&decision).unwrap_or_default()
                );
            } else {
                print!("{}", render(&decision));
            }
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
