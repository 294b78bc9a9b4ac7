//! The `keygate` command: `serve`, `check`, `certs dev`. Turns signals into gateway controls and
//! errors into exit codes; everything else lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use keygate::{Control, Gateway, config};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "keygate", version, about = "Identity gateway for AI agents")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
    },
    /// Validate the config without serving; print each problem as PATH:LINE:COL: message.
    Check {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
    },
    /// Workload access tokens: issue one, or rotate the signing key.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Certificates for development.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a workload access token signed with this gateway's key (for scripts and debugging).
    Issue {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
        /// The workload the token names.
        #[arg(long)]
        workload: String,
        /// The user the workload acts for (a user id, as GetWorkloadAccessTokenForUserId names it).
        #[arg(long)]
        user: Option<String>,
    },
    /// Make a new signing key; a running keygate signs with it after SIGHUP, and tokens signed
    /// with the previous keys stay valid until they expire.
    RotateKey {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA and a server certificate signed by it (ca.crt, server.crt, server.key).
    Dev {
        /// Folder to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Names and IP addresses the server certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => exit(serve(&config)),
        Command::Token {
            command:
                TokenCommand::Issue {
                    config,
                    workload,
                    user,
                },
        } => exit(print_token(&config, &workload, user)),
        Command::Token {
            command: TokenCommand::RotateKey { config },
        } => exit(rotate_signing_key(&config)),
        Command::Certs {
            command: CertsCommand::Dev { out, hosts },
        } => exit(make_dev_certs(&out, &hosts)),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keygate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            println!(
                "{}: ok ({} routes, {} providers, {} authorizers)",
                path.display(),
                loaded.config.routes.len(),
                loaded.config.providers.len(),
                loaded.config.authorizers.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            for diagnostic in &error.diagnostics {
                eprintln!("{diagnostic}");
            }
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "config warning");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let gateway = Gateway::bind(loaded.config).await?;
        if let Some(addr) = gateway.proxy_addr() {
            tracing::info!(%addr, "proxy listening");
        }
        if let Some(addr) = gateway.admin_addr() {
            tracing::info!(%addr, "admin listening");
        }
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(forward_signals(tx));
        gateway.run(rx).await;
        Ok(())
    })
}

/// SIGHUP reloads; SIGTERM and SIGINT drain and stop.
async fn forward_signals(tx: mpsc::Sender<Control>) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        let control = tokio::select! {
            _ = hangup.recv() => Control::Reload,
            _ = terminate.recv() => Control::Shutdown,
            _ = interrupt.recv() => Control::Shutdown,
        };
        if tx.send(control).await.is_err() || control == Control::Shutdown {
            return Ok(());
        }
    }
}

fn print_token(path: &Path, workload: &str, user: Option<String>) -> anyhow::Result<()> {
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let config = loaded.config;
    let tokens = keygate::inbound::WorkloadTokens::load_or_create(
        &config.data_dir.join("workload-token-signing.key"),
        config.server.public_url.as_str(),
    )?;
    let user = user.map(|id| keygate::inbound::UserId { issuer: None, id });
    println!("{}", tokens.issue(workload, user.as_ref())?);
    Ok(())
}

fn rotate_signing_key(path: &Path) -> anyhow::Result<()> {
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let key_file = loaded.config.data_dir.join("workload-token-signing.key");
    let kid = keygate::inbound::WorkloadTokens::rotate_key_file(&key_file)?;
    println!(
        "new signing key {kid} in {}; send SIGHUP to running keygate processes",
        key_file.display()
    );
    Ok(())
}

fn make_dev_certs(out: &Path, hosts: &[String]) -> anyhow::Result<()> {
    let written = keygate::tls::write_dev_certificates(out, hosts)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
