//! The command line: `run`, `once`, `print`, `check`, `config`, `reload`, `demo`, `import`, `init`; logging set-up and exit codes.
//!
//! Exit codes: 0 success; 1 a source or sink failed (`once`, `print`, `check`, `demo`) or the
//! daemon could not start; 2 bad usage or a bad configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::{relay, report};

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
    /// Tell the running daemon (through the pid file in `state_dir`) to reload its
    /// configuration, after checking the file is valid.
    Reload(ConfigArg),
    /// Run the relay against simulated upstreams and a built-in receiver, and show what arrived.
    Demo(DemoArgs),
    /// Print the pushrelay configuration equivalent to another tool's (secrets as `${ENV}`).
    Import(ImportArgs),
    /// Print a commented starting configuration for one source and one sink type.
    Init(InitArgs),
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFrom {
    /// emqx-client-monitor 0.3.1's config.yaml.
    EmqxClientMonitor,
    /// linkhub-prometheus-exporter's dynaconf settings.toml.
    LinkhubExporter,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The tool whose configuration is read.
    #[arg(value_enum)]
    pub from: ImportFrom,
    /// Its configuration file.
    pub file: PathBuf,
    /// The sink type to write: remote_write or pushgateway.
    #[arg(long, default_value = "remote_write")]
    pub sink: String,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// scrape, ttn, ttn_devices, emqx or linkhub.
    #[arg(long)]
    pub source: String,
    /// remote_write or pushgateway.
    #[arg(long, default_value = "remote_write")]
    pub sink: String,
    /// Write the configuration to this file instead of standard output (created 0640; an
    /// existing file is kept unless --force).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace the --output file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
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
    one_malloc_arena();
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

/// Keeps glibc's allocator to one arena. The remote-write sink converts large requests on a
/// blocking thread, and glibc would give that thread an arena of its own: 8 MiB more resident
/// at 30,000 series (measured, bench/steady.py) for memory the main arena has free anyway.
/// musl (the static release builds) has no arenas.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
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

/// Loads the configuration; a bad one ends the command (exit 2), settings that are probably
/// not meant are logged once.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    let cfg = config::load(path).map_err(|e| {
        // Every error of the file, one line each.
        for line in e.to_string().lines() {
            eprintln!("error: {line}");
        }
        ExitCode::from(2)
    })?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    Ok(cfg)
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
            tokio::spawn(crate::signals::cancel_on_signal(cancel.clone()));
            let env = relay::Env::default();
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tokio::spawn(crate::signals::reload_on_hangup(
                a.config.clone(),
                tx,
                env.clone(),
            ));
            let _pid = crate::signals::PidFile::create(&cfg.relay.state_dir).map_err(|e| {
                failed(format!(
                    "cannot write {}: {e}",
                    crate::signals::pid_file(&cfg.relay.state_dir).display()
                ))
            })?;
            relay::run_reloadable(cfg, cancel, env, rx)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            ExitCode::SUCCESS
        }
        Command::Reload(a) => {
            let cfg = load(&a.config)?;
            let pid = crate::signals::signal_reload(&cfg.relay.state_dir).map_err(failed)?;
            eprintln!("sent SIGHUP to pushrelay (pid {pid}); it logs whether the reload took");
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
            let cfg = load(&a.config.config)?;
            let results = poll_once(&cfg, mode).await?;
            for r in &results {
                match &r.summary {
                    Some(s) => write_stdout(&report::source_summary(r, s))?,
                    None => write_stdout(&report::check_table(r))?,
                }
            }
            write_stdout(&report::data_plan(
                &cfg,
                &results,
                crate::clock::system_now_ms(),
            ))?;
            report_failures(&results)
        }
        Command::Config(a) => {
            let cfg = load(&a.config)?;
            let s = toml::to_string(&cfg)
                .map_err(|e| failed(format!("cannot print the configuration: {e}")))?;
            write_stdout(&s)?;
            ExitCode::SUCCESS
        }
        Command::Import(a) => {
            let text = std::fs::read_to_string(&a.file).map_err(|e| {
                eprintln!("error: {}: {e}", a.file.display());
                ExitCode::from(2)
            })?;
            let out = match a.from {
                ImportFrom::EmqxClientMonitor => {
                    crate::migrate::import::emqx_client_monitor(&text, &a.sink)
                }
                ImportFrom::LinkhubExporter => {
                    crate::migrate::import::linkhub_exporter(&text, &a.sink)
                }
            }
            .map_err(|e| {
                eprintln!("error: {}: {e}", a.file.display());
                ExitCode::from(2)
            })?;
            write_stdout(&out)?;
            ExitCode::SUCCESS
        }
        Command::Init(a) => {
            let out = crate::migrate::init(&a.source, &a.sink).map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(2)
            })?;
            match &a.output {
                None => write_stdout(&out)?,
                Some(path) => {
                    write_config_file(path, &out, a.force)?;
                    eprintln!(
                        "wrote {p}; check it with: pushrelay check --config {p}",
                        p = path.display()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        #[cfg(feature = "sim")]
        Command::Demo(a) => {
            crate::demo::run(crate::demo::DemoOptions {
                cycles: a.cycles,
                interval_secs: a.interval_secs,
                remote_write_url: a.remote_write_url,
                basic_auth: a.basic_auth,
            })
            .await
        }
        #[cfg(feature = "sim")]
        Command::Sim { listen, devices } => {
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| failed(format!("cannot listen on {listen}: {e}")))?;
            let cancel = CancellationToken::new();
            tokio::spawn(crate::signals::cancel_on_signal(cancel.clone()));
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

/// Writes `init --output`'s file: created 0640 (a configuration may come to hold secrets), and
/// an existing file is only replaced with `force`, so a working configuration is never lost to
/// a mistyped path.
fn write_config_file(path: &std::path::Path, text: &str, force: bool) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
    let written = opts
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    written.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            eprintln!(
                "error: {} exists; give --force to replace it",
                path.display()
            );
            ExitCode::from(2)
        } else {
            failed(format!("cannot write {}: {e}", path.display()))
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
