//! The `trustcaptcha-server` command line: parses arguments and calls the library.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trustcaptcha_server::config::{self, Config, SANDBOX_API_KEY, Site};
use trustcaptcha_server::log_output::{self, LogFormat};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::{AppState, Server, shutdown_signal};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A self-hosted server for the TrustCaptcha widget and backend libraries",
    // Our own `help` command, so that `help --help` works like every other command.
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TRUSTCAPTCHA_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the widget and results API.
    Serve {
        /// A TOML config file; without one, a development site with fresh keys is served.
        #[arg(long, env = "TRUSTCAPTCHA_CONFIG")]
        config: Option<PathBuf>,
        /// The address to listen on, `HOST:PORT` with an IP address or a host name (default: the
        /// config's, or 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// The operator's listener for /healthz, /readyz and /metrics (default: the config's,
        /// or 127.0.0.1 on the public port + 1; an ephemeral port when the public one is 0).
        #[arg(long)]
        admin_listen: Option<String>,
        /// Also serve the sandbox site (site key 00000000-0000-0000-0000-000000000000) with the
        /// official client test suites' API key and fixtures.
        #[arg(long)]
        sandbox: bool,
    },
    /// Solve a verification as the widget would and print the verification token.
    ///
    /// Its requests are a script's, and the server's detection says so: on a site with risk
    /// scoring the result scores above 0.5 and a backend following the guide rejects it. For
    /// automated tests that must pass, use the sandbox site (`serve --sandbox`, no risk scoring)
    /// or a bypass key of the site (`--bypass-key-env`): both finish with score 0, a bypass
    /// key's result with decision type BYPASS_KEY.
    #[cfg(feature = "solve")]
    Solve {
        /// The server's base URL.
        #[arg(long)]
        api_url: String,
        /// The site key.
        #[arg(long)]
        site_key: String,
        /// The page origin to present (needed when the site restricts origins).
        #[arg(long)]
        origin: Option<String>,
        /// Read a bypass key from this environment variable and send it.
        #[arg(long)]
        bypass_key_env: Option<String>,
        /// Ask in minimal-data mode.
        #[arg(long)]
        minimal_data_mode: bool,
    },
    /// Validate a config file and explain every problem with its location.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Read a key from standard input and print the `sha256:…` form to put in a config file.
    HashKey,
    /// Manage the console's users (kept in the configuration's store).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print the help of the command line, or of one command.
    Help {
        /// The command to explain.
        command: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user; the password is read from standard input (one line), so that it appears
    /// in no process list or shell history.
    Add {
        /// The configuration file whose store keeps the users.
        #[arg(long, env = "TRUSTCAPTCHA_CONFIG")]
        config: PathBuf,
        /// The user's name (letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// What the user may do.
        #[arg(long, value_parser = ["admin", "viewer"], default_value = "admin")]
        role: String,
        /// No password: the user signs in only through the trusted proxy's
        /// `console_user_header`.
        #[arg(long)]
        no_password: bool,
    },
    /// Remove a user; their sessions end.
    Remove {
        /// The configuration file whose store keeps the users.
        #[arg(long, env = "TRUSTCAPTCHA_CONFIG")]
        config: PathBuf,
        /// The user's name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _flush_on_exit = match log_output::install(cli.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: cannot start the log output: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Serve {
            config,
            listen,
            admin_listen,
            sandbox,
        } => runtime.block_on(run_serve(config, listen, admin_listen, sandbox)),
        #[cfg(feature = "solve")]
        Command::Solve {
            api_url,
            site_key,
            origin,
            bypass_key_env,
            minimal_data_mode,
        } => {
            use trustcaptcha_server::solve::{SolveOptions, solve};
            let options = SolveOptions {
                api_url,
                site_key,
                origin,
                bypass_key: bypass_key_env.and_then(|name| std::env::var(name).ok()),
                minimal_data_mode,
            };
            runtime.block_on(async {
                let token = solve(&options).await.map_err(|e| e.to_string())?;
                println!("{token}");
                Ok(())
            })
        }
        Command::CheckConfig { file } => config::load(&file, config::process_environment())
            .and_then(|config| config::ServerFiles::read(&config.server).map(|_| config))
            .map(|config| println!("{}: ok, {} site(s)", file.display(), config.sites.len()))
            .map_err(|e| e.to_string()),
        Command::HashKey => hash_key(),
        Command::User { action } => runtime.block_on(user(action)),
        Command::Help { command } => help(command.as_deref()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(
    config: Option<PathBuf>,
    listen: Option<String>,
    admin_listen: Option<String>,
    sandbox: bool,
) -> Result<(), String> {
    let mut announce = Vec::new();
    let config_file = config.clone();
    let mut config = match config {
        Some(path) => {
            config::load(&path, config::process_environment()).map_err(|e| e.to_string())?
        }
        None => {
            let (site, api_key) = development_site();
            announce.push(format!(
                "development site: site key {}, api key {api_key}",
                site.site_key
            ));
            Config::new(vec![site])
        }
    };
    if sandbox {
        let site = Site::sandbox();
        announce.push(format!(
            "sandbox site: site key {}, api key {SANDBOX_API_KEY}",
            site.site_key
        ));
        config.sites.retain(|s| s.site_key != site.site_key);
        config.sites.push(site);
    }
    let mut builder = AppState::builder(config);
    if let Some(path) = config_file {
        builder = builder.config_file(path);
    }
    let state = builder.build().map_err(|e| e.to_string())?;
    let store = state.store_name();
    let mut server = Server::builder(state).reload_on_hangup();
    if let Some(address) = listen {
        server = server.listen(address);
    }
    if let Some(address) = admin_listen {
        server = server.admin_listen(address);
    }
    let server = server.bind().await.map_err(|e| e.to_string())?;
    let (bound, admin_bound, url) = (server.local_addr(), server.admin_addr(), server.url());
    // Printed to stdout (not the log) so that scripts and people can pick them up.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "trustcaptcha-server listening on {url}");
    for line in announce {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = writeln!(
        stdout,
        "admin (health, readiness, metrics, reload) on http://{admin_bound}"
    );
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(%bound, %admin_bound, %store, "serving");
    server.run(shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// A site for trying things out: any origin, fresh random keys each start.
fn development_site() -> (Site, String) {
    let api_key = format!("ak_{}", hex::encode(rand::random::<[u8; 24]>()));
    let site = Site {
        api_keys: vec![KeyHash::of(&api_key)],
        ..Site::new("development", uuid::Uuid::new_v4())
    };
    (site, api_key)
}

fn help(command: Option<&str>) -> Result<(), String> {
    use clap::CommandFactory as _;
    let mut cli = Cli::command();
    cli.build();
    let target = match command {
        None => &mut cli,
        Some(name) => cli
            .find_subcommand_mut(name)
            .ok_or_else(|| format!("no command `{name}`; see `trustcaptcha-server help`"))?,
    };
    target.print_long_help().map_err(|e| e.to_string())
}

async fn user(action: UserAction) -> Result<(), String> {
    let (UserAction::Add { config, .. } | UserAction::Remove { config, .. }) = &action;
    let config = config::load(config, config::process_environment()).map_err(|e| e.to_string())?;
    let state = AppState::builder(config)
        .build()
        .map_err(|e| e.to_string())?;
    state.prepare_store().await.map_err(|e| e.to_string())?;
    match action {
        UserAction::Add {
            name,
            role,
            no_password,
            ..
        } => {
            let password = if no_password {
                None
            } else {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            };
            trustcaptcha_server::add_user(&state, &name, &role, password).await?;
            println!("user `{name}` added ({role})");
        }
        UserAction::Remove { name, .. } => {
            trustcaptcha_server::remove_user(&state, &name).await?;
            println!("user `{name}` removed");
        }
    }
    Ok(())
}

fn hash_key() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let key = line.trim();
    if key.is_empty() {
        return Err("no key on standard input".into());
    }
    println!("{}", KeyHash::of(key).to_config());
    Ok(())
}
