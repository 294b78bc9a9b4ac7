//! The `keygate` command: `serve`, `check`, `certs dev`. Turns signals into gateway controls and
//! errors into exit codes; everything else lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use keygate::inbound::WorkloadTokens;
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
    /// The token vault: list entries (metadata only), revoke them, re-seal under the current key.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
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
enum VaultCommand {
    /// Print every entry's owner and metadata (never a secret).
    List {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
        #[command(flatten)]
        filter: VaultFilter,
    },
    /// Delete the entries that match; running gateways stop using them within a second.
    Revoke {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
        #[command(flatten)]
        filter: VaultFilter,
        /// Revoke every credential (signing keys and API-managed workloads and providers are kept).
        #[arg(long)]
        all: bool,
    },
    /// Re-seal every record under the current `vault.key` (list the old key in
    /// `vault.previous_keys` first); safe while keygate serves.
    RotateKey {
        #[arg(long, env = "KEYGATE_CONFIG", default_value = "routes.toml")]
        config: PathBuf,
    },
}

/// Which vault entries a command applies to.
#[derive(clap::Args)]
struct VaultFilter {
    /// Only entries of this workload.
    #[arg(long)]
    workload: Option<String>,
    /// Only entries of this user (a user id, or ISSUER#ID for a JWT user).
    #[arg(long)]
    user: Option<String>,
    /// Only entries of this credential provider.
    #[arg(long)]
    provider: Option<String>,
}

impl VaultFilter {
    fn is_empty(&self) -> bool {
        self.workload.is_none() && self.user.is_none() && self.provider.is_none()
    }

    fn matches(&self, owner: &keygate::vault::Owner) -> bool {
        let user_matches = |want: &str| match want.rsplit_once('#') {
            Some((issuer, id)) => owner.user_issuer == issuer && owner.user_id == id,
            None => owner.user_id == want,
        };
        self.workload.as_deref().is_none_or(|w| owner.workload == w)
            && self.user.as_deref().is_none_or(user_matches)
            && self.provider.as_deref().is_none_or(|p| owner.provider == p)
    }
}

#[derive(Subcommand)]
enum DevCommand {
    /// A stand-in tool that answers every request with what it received (headers included), to
    /// see keygate inject a credential. Development only.
    Echo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
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
    // Buffered log lines are written when this goes out of scope, before the process exits.
    let _log = init_tracing(cli.log_format);
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
        Command::Vault { command } => exit(vault_command(command)),
        Command::Dev {
            command: DevCommand::Echo { listen },
        } => exit(dev_echo(listen)),
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

fn init_tracing(format: LogFormat) -> keygate::logging::LogGuard {
    keygate::logging::init(match format {
        LogFormat::Text => keygate::logging::LogFormat::Text,
        LogFormat::Json => keygate::logging::LogFormat::Json,
    })
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

/// Runs `work` on a small runtime with the config's vault open (for one-off commands).
fn with_vault<T>(
    path: &Path,
    work: impl AsyncFnOnce(&config::Config, &keygate::vault::Vault) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let vault = keygate::vault::Vault::open(&loaded.config.vault, None).await?;
        let result = work(&loaded.config, &vault).await;
        vault.store().close().await;
        result
    })
}

/// As [`with_vault`], reading only the config's `[vault]` table (a provider's `env:` secret
/// missing here does not stop a key rotation).
fn with_vault_only<T>(
    path: &Path,
    work: impl AsyncFnOnce(&keygate::vault::Vault) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = config::load_vault(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let vault = keygate::vault::Vault::open(&config, None).await?;
        let result = work(&vault).await;
        vault.store().close().await;
        result
    })
}

fn print_token(path: &Path, workload: &str, user: Option<String>) -> anyhow::Result<()> {
    with_vault(path, async |config, vault| {
        let tokens = WorkloadTokens::load(vault, config.server.public_url.as_str()).await?;
        let user = user.map(|id| keygate::inbound::UserId { issuer: None, id });
        println!("{}", tokens.issue(workload, user.as_ref())?);
        Ok(())
    })
}

fn rotate_signing_key(path: &Path) -> anyhow::Result<()> {
    with_vault(path, async |_, vault| {
        let kid = WorkloadTokens::rotate(vault).await?;
        println!("new signing key {kid}; send SIGHUP to running keygate processes");
        Ok(())
    })
}

fn vault_command(command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::List { config, filter } => with_vault(&config, async |_, vault| {
            println!("KIND\tWORKLOAD\tUSER\tPROVIDER\tQUALIFIER\tKEY\tEXPIRES\tSCOPES");
            for entry in vault.store().list().await? {
                if filter.matches(&entry.owner) {
                    let o = &entry.owner;
                    let user = match (o.user_issuer.as_str(), o.user_id.as_str()) {
                        ("", id) => id.to_string(),
                        (issuer, id) => format!("{issuer}#{id}"),
                    };
                    let expires = entry.expires_at.map_or("-".to_string(), |t| t.to_string());
                    println!(
                        "{}\t{}\t{user}\t{}\t{}\t{}\t{expires}\t{}",
                        o.kind, o.workload, o.provider, o.qualifier, entry.kek_id, entry.scopes
                    );
                }
            }
            Ok(())
        }),
        VaultCommand::Revoke {
            config,
            filter,
            all,
        } => {
            if filter.is_empty() && !all {
                anyhow::bail!("name what to revoke (--workload, --user, --provider) or pass --all");
            }
            with_vault(&config, async |_, vault| {
                let mut revoked = 0;
                for entry in vault.store().list().await? {
                    // Credentials only: keygate's signing keys, and the workloads and providers
                    // the identity API manages, are not revoked here.
                    if entry.owner.kind.is_revocable()
                        && filter.matches(&entry.owner)
                        && vault.delete(&entry.owner).await?
                    {
                        revoked += 1;
                    }
                }
                println!(
                    "revoked {revoked} entries; running keygate processes stop using them within a second"
                );
                Ok(())
            })
        }
        VaultCommand::RotateKey { config } => with_vault_only(&config, async |vault| {
            let report = vault.rotate().await?;
            println!(
                "re-sealed {} records under key {} ({} already current, {} changed meanwhile, {} unreadable)",
                report.resealed,
                vault.current_key_id(),
                report.already_current,
                report.raced,
                report.unreadable
            );
            if report.unreadable > 0 {
                anyhow::bail!(
                    "{} records could not be opened with the configured keys",
                    report.unreadable
                );
            }
            Ok(())
        }),
    }
}

fn make_dev_certs(out: &Path, hosts: &[String]) -> anyhow::Result<()> {
    let written = keygate::tls::write_dev_certificates(out, hosts)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn dev_echo(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(keygate::dev_echo::serve(listen))?;
    Ok(())
}
