//! The command line: `serve`, `demo`, `request ...` (a client of the API) and `token ...`.

pub mod request;

use request::RequestCommand;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, hash_token, new_token};
use crate::service;

/// Autoland: lands patches on try and on the final repositories, unattended.
#[derive(Debug, Parser)]
#[command(name = "autoland", version, about)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// What differs between processes sharing one configuration file.
#[derive(Debug, clap::Args)]
struct LocalOverrides {
    /// This process's own directory for working copies and CI checkouts (overrides
    /// `data_dir`; the database stays the configured one).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// This process's name on the status page and in leases (overrides `instance_name`;
    /// default host:pid).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

impl LocalOverrides {
    fn apply(self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(dir) = self.data_dir {
            // Pin the database first: the default SQLite file lives in the data dir.
            config.database_url = Some(config.database_url());
            config.data_dir = std::path::absolute(&dir)
                .with_context(|| format!("bad --data-dir {}", dir.display()))?;
        }
        if let Some(name) = self.name {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                bail!("--name must be a non-empty name without control characters");
            }
            config.instance_name = Some(name);
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every module (web API, pushers, CI runner, result watcher) in this process.
    Serve {
        /// Configuration file (TOML). Without it, embedded defaults are used.
        #[arg(long, short, env = "AUTOLAND_CONFIG")]
        config: Option<PathBuf>,
        /// Only check the configuration and exit.
        #[arg(long)]
        check: bool,
        /// Run no pushers (and no CI runner) here: `autoland worker` processes do the
        /// pushing, through the shared (PostgreSQL) database.
        #[arg(long)]
        no_pushers: bool,
        #[command(flatten)]
        local: LocalOverrides,
    },
    /// Run only pushers and the CI runner, joining a `serve` through the shared database
    /// (no web server). Give each its own `--name` and `--data-dir` (default name host:pid).
    Worker {
        /// Configuration file (TOML), with the shared `database_url`.
        #[arg(long, short, env = "AUTOLAND_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        local: LocalOverrides,
    },
    /// Apply the database migrations and exit.
    Migrate {
        /// Configuration file (TOML).
        #[arg(long, short, env = "AUTOLAND_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create a sample project, run the service, submit two requests and show them land
    /// (or fail), then keep serving.
    Demo {
        /// Directory for the sample project (recreated if it holds an earlier demo).
        #[arg(long, default_value = "autoland-demo")]
        dir: PathBuf,
        /// Address for the API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Exit once both requests are finished instead of serving on.
        #[arg(long)]
        exit: bool,
    },
    /// Submit, show, list and cancel requests through a running server's API.
    Request {
        /// The server's base URL.
        #[arg(long, env = "AUTOLAND_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// API token (better: set AUTOLAND_TOKEN).
        #[arg(long, env = "AUTOLAND_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        action: RequestCommand,
    },
    /// Make and hash API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Simulate a gated destination's queue (the gate's real scheduling code, a simulated
    /// clock and CI) and compare strategies: throughput, CI runs per landing, time to land,
    /// red tips.
    Simulate {
        #[command(flatten)]
        args: crate::simulate::SimulateArgs,
    },
    /// Nagios/Icinga plugin: judge the service's health from its database and print one
    /// status line with perfdata (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    #[command(after_help = crate::ops::check::HELP)]
    Check {
        #[command(flatten)]
        args: crate::ops::check::CheckArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Generate a new random token; prints the secret (give it to the user) and its
    /// sha256 (put it in the configuration).
    New,
    /// Print the sha256 of a token read from standard input.
    Hash,
}

/// Sets up `tracing` output on stderr.
pub fn init_logging(cli: &Cli) {
    // The demo's own output tells the story; only problems are logged over it.
    let quiet = matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Simulate { .. }
            | Command::Request { .. }
            | Command::Token { .. }
            | Command::Check { .. }
    );
    let default = match cli.verbose {
        0 if quiet => "warn",
        0 => "autoland=info,warn",
        1 => "autoland=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Worker { config, local } => {
            let mut config = Config::load(&config)?;
            local.apply(&mut config)?;
            run_modules(config, false, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            let config = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let url = config.database_url();
            let store = crate::store::Store::connect(&url)
                .await
                .with_context(|| format!("cannot migrate {}", crate::secrets::scrub(&url)))?;
            store.close().await;
            println!("database {} is up to date", crate::secrets::scrub(&url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            check,
            no_pushers,
            local,
        } => {
            let mut config = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            local.apply(&mut config)?;
            if check {
                println!(
                    "configuration is valid: {} repositories, {} tokens, {} users",
                    config.repositories.len(),
                    config.tokens.len(),
                    config.permissions.users.len()
                );
                let permissions = crate::permissions::Permissions::from_config(&config)
                    .map_err(|e| anyhow::anyhow!("permissions: {e}"))?;
                if let Some(url) = check_directory(&permissions, true).await? {
                    println!("the directory {url} accepts Autoland's bind");
                }
                return Ok(ExitCode::SUCCESS);
            }
            run_modules(config, true, !no_pushers).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, listen, exit } => {
            crate::demo::run(&dir, listen, exit).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Request {
            server,
            token,
            action,
        } => request::run(&server, token.as_deref(), action).await,
        Command::Token { action } => {
            match action {
                TokenCommand::New => {
                    let secret = new_token();
                    println!("token:  {secret}");
                    println!("sha256: {}", hash_token(&secret));
                }
                TokenCommand::Hash => {
                    let mut secret = String::new();
                    std::io::stdin()
                        .read_to_string(&mut secret)
                        .context("cannot read the token from standard input")?;
                    let secret = secret.trim();
                    if secret.is_empty() {
                        bail!("no token on standard input");
                    }
                    println!("{}", hash_token(secret));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { args } => Ok(crate::ops::check::run(args, cli.verbose).await),
        Command::Simulate { args } => {
            crate::simulate::main(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Binds to the LDAP directory, if levels come from one: a refused bind is an error
/// (the settings are wrong); an unreachable directory too with `strict` (`serve
/// --check`), otherwise a warning (requests wait for it). Returns the directory's URL.
async fn check_directory(
    permissions: &crate::permissions::Permissions,
    strict: bool,
) -> anyhow::Result<Option<String>> {
    let Some(directory) = permissions.directory() else {
        return Ok(None);
    };
    match directory.check().await {
        Ok(()) => Ok(Some(directory.url().to_owned())),
        Err(e @ crate::permissions::DirectoryError::BindRefused { .. }) => {
            bail!("{e}: check permissions.ldap.bind_dn and the bind password")
        }
        Err(e) if strict => bail!("{e}"),
        Err(e) => {
            tracing::warn!(error = %e, "the directory does not answer yet; requests wait for it");
            Ok(Some(directory.url().to_owned()))
        }
    }
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    run_modules(config, true, true).await
}

/// Runs `serve` (with the web server when `front`) or a worker, until SIGINT or SIGTERM.
async fn run_modules(config: Config, front: bool, pushers: bool) -> anyhow::Result<()> {
    let listen = config.listen;
    let ctx = Arc::new(service::context(config).await?);
    // The directory this process reads levels from (the context's own, not a second one).
    check_directory(&ctx.permissions, false).await?;
    let listener = if front {
        Some(
            tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?,
        )
    } else {
        None
    };
    let service = service::start_modules(ctx, listener, pushers).await?;
    if front {
        tracing::info!(addr = %service.addr, instance = %service.ctx.instance, "autoland is serving");
    } else {
        tracing::info!(instance = %service.ctx.instance, "autoland worker is running");
    }
    let shutdown = service.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing current steps");
        shutdown.cancel();
    });
    service.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_data_dir_keeps_the_configured_database() {
        let mut config = Config {
            data_dir: PathBuf::from("/srv/autoland"),
            ..Config::default()
        };
        LocalOverrides {
            data_dir: Some(PathBuf::from("/var/lib/worker-2")),
            name: Some("worker-2".to_owned()),
        }
        .apply(&mut config)
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/worker-2"));
        // The default SQLite file stays where the shared configuration put it.
        assert_eq!(
            config.database_url(),
            "sqlite:///srv/autoland/autoland.db?mode=rwc"
        );
        assert_eq!(config.instance_name.as_deref(), Some("worker-2"));
    }

    #[test]
    fn empty_or_control_character_names_are_refused() {
        for name in ["", "  ", "bad\nname"] {
            let mut config = Config::default();
            let error = LocalOverrides {
                data_dir: None,
                name: Some(name.to_owned()),
            }
            .apply(&mut config)
            .unwrap_err();
            assert!(error.to_string().contains("--name"), "{error}");
        }
    }
}
