//! The command line: `run`, `once`, `print`, `check`, `config`, `demo`; logging set-up and exit codes.
//!
//! Exit codes: 0 success; 1 a source or sink failed (`once`, `print`, `check`, `demo`) or the
//! daemon could not start; 2 bad usage or a bad configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::relay;

#[derive(Parser, Debug)]
#[command(
    name = "pushrelay",
    version = crate::build_info::VERSION_LINE,
    about = "Polls metrics where nobody can scrape them and pushes them to Prometheus remote-write or a Pushgateway."
)]
pub struct Cli {
    /// Log line format (logs go to standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter, e.g. `info`, `debug`, `pushrelay=debug`.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: poll every source on its interval and push to every sink until SIGTERM/SIGINT.
    Run(ConfigArg),
    /// Poll every source once and push once; exit 1 if any source or sink failed.
    Once(ConfigArg),
    /// Poll every source once and print the samples in text exposition format.
    Print(ConfigArg),
    /// Poll every source once and print a table per source.
    Check(CheckArgs),
    /// Validate the configuration and print it with defaults filled in and secrets redacted.
    Config(ConfigArg),
    /// Run the relay against simulated upstreams and a built-in receiver, and show what arrived.
    Demo(DemoArgs),
    /// Serve the simulated exporter only (for benchmarks).
    #[command(hide = true)]
    Sim {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Scales the number of series (about 34 per device plus 60).
        #[arg(long, default_value_t = 7)]
        devices: usize,
    },
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The configuration file (TOML).
    #[arg(short, long, env = "PUSHRELAY_CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Show every row a source knows (e.g. every EMQX client), not only the monitored ones.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Poll cycles to run before exiting; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Seconds between polls.
    #[arg(long, default_value_t = 2)]
    pub interval_secs: u64,
    /// Push the simulated data to this remote-write URL instead of the built-in receiver
    /// (to test real credentials, e.g. Grafana Cloud's `/api/prom/push`).
    #[arg(long)]
    pub remote_write_url: Option<String>,
    /// `user:password` for --remote-write-url (the password may be `${ENV_VAR}`).
    #[arg(long)]
    pub basic_auth: Option<String>,
}

/// Parses the command line, sets up logging, runs the command; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(dispatch(cli.command))
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal (and never with NO_COLOR), so piped or journald logs stay
    // plain text that grep can read.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Prints a runtime error and gives exit code 1.
fn failed(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

async fn dispatch(cmd: Command) -> ExitCode {
    // `Err` carries an early exit code (the reason was already printed).
    dispatch_inner(cmd).await.unwrap_or_else(|code| code)
}

async fn dispatch_inner(cmd: Command) -> Result<ExitCode, ExitCode> {
    Ok(match cmd {
        Command::Run(a) => {
            let cfg = load(&a.config)?;
            let cancel = CancellationToken::new();
            tokio::spawn(cancel_on_signal(cancel.clone()));
            relay::run(cfg, cancel)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            ExitCode::SUCCESS
        }
        Command::Once(a) => {
            let cfg = load(&a.config)?;
            let r = relay::once(&cfg)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            if r.failures.is_empty() {
                eprintln!(
                    "ok: {} samples from {} sources pushed to {} sinks",
                    r.samples,
                    cfg.sources.len(),
                    cfg.sinks.len()
                );
                ExitCode::SUCCESS
            } else {
                for f in r.failures {
                    eprintln!("failed: {f}");
                }
                ExitCode::from(1)
            }
        }
        Command::Print(a) => {
            let results = poll_once(
                &load(&a.config)?,
                relay::OneShot::Inspect { check_all: false },
            )
            .await?;
            let fams =
                relay::merge_families(results.iter().map(|r| r.snapshot.families.as_slice()));
            write_stdout(&crate::expfmt::to_text(&fams, false))?;
            report_failures(&results)
        }
        Command::Check(a) => {
            let mode = relay::OneShot::Inspect { check_all: a.all };
            let results = poll_once(&load(&a.config.config)?, mode).await?;
            for r in &results {
                match &r.summary {
                    Some(s) => write_stdout(&source_summary(r, s))?,
                    None => write_stdout(&check_table(r))?,
                }
            }
            report_failures(&results)
        }
        Command::Config(a) => {
            let cfg = load(&a.config)?;
            let s = toml::to_string(&cfg)
                .map_err(|e| failed(format!("cannot print the configuration: {e}")))?;
            write_stdout(&s)?;
            ExitCode::SUCCESS
        }
        #[cfg(feature = "sim")]
        Command::Demo(a) => crate::demo::run(a).await,
        #[cfg(feature = "sim")]
        Command::Sim { listen, devices } => {
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| failed(format!("cannot listen on {listen}: {e}")))?;
            let cancel = CancellationToken::new();
            tokio::spawn(cancel_on_signal(cancel.clone()));
            crate::sim::exposition::serve_exposition(l, cancel, devices).await;
            ExitCode::SUCCESS
        }
        #[cfg(not(feature = "sim"))]
        Command::Demo(_) | Command::Sim { .. } => {
            eprintln!("error: this build has no simulator (built without the `sim` feature)");
            ExitCode::from(2)
        }
    })
}

/// Writes command output to standard output. A closed pipe (`pushrelay print … | head`) ends
/// the command quietly with success, as Unix tools do, instead of a panic; other write errors
/// are reported and exit 1.
fn write_stdout(s: &str) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ExitCode::SUCCESS),
        Err(e) => Err(failed(format!("cannot write to standard output: {e}"))),
    }
}

/// Polls every source once, for `print` and `check`.
async fn poll_once(cfg: &Config, mode: relay::OneShot) -> Result<Vec<relay::PollResult>, ExitCode> {
    relay::poll_all_once(cfg, mode)
        .await
        .map_err(|e| failed(format!("{e:#}")))
}

fn report_failures(results: &[relay::PollResult]) -> ExitCode {
    let mut failed = false;
    for r in results {
        if let Some(e) = &r.error {
            eprintln!("failed: source {}: {e}", r.source);
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A source's own `check` table under the same heading line as the generic one.
fn source_summary(r: &relay::PollResult, table: &str) -> String {
    let status = match &r.error {
        None => "up".to_string(),
        Some(e) => format!("DOWN: {e}"),
    };
    let mut o = format!(
        "source {}: {status}, polled in {:.3}s\n{table}",
        r.source, r.duration_seconds
    );
    if !o.ends_with("\n\n") {
        o.push('\n');
    }
    o
}

/// A human-readable table of one source's poll.
pub fn check_table(r: &relay::PollResult) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let status = match &r.error {
        None => "up".to_string(),
        Some(e) => format!("DOWN: {e}"),
    };
    let samples: Vec<&crate::model::Sample> = r
        .snapshot
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| !relay::prepare::is_report_series(&s.name))
        .collect();
    let _ = writeln!(
        o,
        "source {}: {status}, {} samples in {:.3}s",
        r.source,
        samples.len(),
        r.duration_seconds
    );
    if samples.is_empty() {
        o.push('\n');
        return o;
    }
    let rows: Vec<(String, String, String)> = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "job" && *k != "instance")
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            (s.name.clone(), labels.join(","), format_value(s.value))
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 70);
    let _ = writeln!(o, "  {:<w0$}  {:<w1$}  VALUE", "METRIC", "LABELS");
    for (n, l, v) in rows {
        let l = if l.chars().count() > w1 {
            let cut: String = l.chars().take(w1 - 1).collect();
            format!("{cut}…")
        } else {
            l
        };
        let _ = writeln!(o, "  {n:<w0$}  {l:<w1$}  {v}");
    }
    o.push('\n');
    o
}

/// A value as a person reads it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Cancels `cancel` on SIGTERM or SIGINT; a second signal exits at once.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("signal received; shutting down (a second signal exits at once)");
    cancel.cancel();
    wait_for_signal().await;
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
