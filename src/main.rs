//! The `graphbridge` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use graphbridge::admin::cli::{self, AdminCommand, MailboxCommand, UserCommand};
use graphbridge::app::{self, Listeners};
use graphbridge::bridge::Bridge;
use graphbridge::config::Config;
use graphbridge::demo::{self, DemoOptions};
use graphbridge::emulator::{Emulator, EmulatorArgs};
use graphbridge::mailstore::Store;
use graphbridge::secrets::SecretBox;

#[derive(Parser)]
#[command(
    name = "graphbridge",
    version,
    about = "IMAP and SMTP in front of Microsoft 365 mailboxes, through Microsoft Graph"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge against the built-in Graph emulator with demo mailboxes.
    #[command(
        after_help = "Every flag of `graphbridge emulator` is accepted here with a `graph-` prefix,\n\
        e.g. --graph-port 8081, --graph-token-lifetime-secs 60, --graph-mime-rewrite."
    )]
    Demo(DemoArgs),
    /// Run the Graph emulator alone, or generate a large mailbox for it.
    Emulator(EmulatorCommand),
    /// Run the bridge with a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage bridge users.
    User {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// List the activities booked for sent mail.
    Activities {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this mailbox.
        #[arg(long)]
        mailbox: Option<String>,
        /// Only since this time (RFC 3339, YYYY-MM-DD or Unix seconds).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Manage imported Microsoft 365 mailboxes.
    Mailbox {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: MailboxCommand,
    },
    /// The web admin password and the JSON API token.
    Admin {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 1143)]
    imap_port: u16,
    #[arg(long, default_value_t = 1587)]
    smtp_port: u16,
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Keep the demo's state here (reused when it exists); default: a fresh temporary folder.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds between delta polls.
    #[arg(long, default_value_t = 10)]
    poll_interval_secs: u64,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EmulatorCommand {
    #[command(subcommand)]
    action: Option<EmulatorAction>,
    #[command(flatten)]
    args: EmulatorArgs,
    /// Write the emulator's state to DIR (fixtures format) when it stops.
    #[arg(long, value_name = "DIR")]
    dump_on_exit: Option<PathBuf>,
}

#[derive(Subcommand)]
enum EmulatorAction {
    /// Write a fixtures folder with one generated large mailbox (fixtures/README.md).
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "bulk@contoso.test")]
        mailbox: String,
        /// User folders besides the default ones.
        #[arg(long, default_value_t = 40)]
        folders: usize,
        /// Median message size in KB.
        #[arg(long, default_value_t = 20)]
        median_kb: usize,
        /// Share (0–1) of 1–12 MB messages with attachments.
        #[arg(long, default_value_t = 0.005)]
        large_share: f64,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// Configuration file (default: built-in defaults, data in ./graphbridge-data).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

/// Emulator flags given to `demo` with the `graph-` prefix.
#[derive(Parser)]
struct DemoGraphArgs {
    #[command(flatten)]
    emulator: EmulatorArgs,
}

/// glibc raises its mmap threshold to the size of any large block freed; after that, Argon2's
/// 19 MiB working memory (one per password check) is carved from per-thread arenas and never
/// given back: 200 IMAP logins grew the server to 2.8 GB. A fixed threshold keeps such blocks
/// mapped on their own and returned to the system when freed (112 MiB for the same load).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; no thread has been started yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

fn main() -> ExitCode {
    fix_mmap_threshold();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    graphbridge::tls::install_crypto_provider();
    let (argv, graph_args) = split_graph_args(std::env::args().collect());
    let cli = Cli::parse_from(argv);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, graph_args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Takes `--graph-*` flags (and their values) out of a `demo` command line, as emulator flags.
fn split_graph_args(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    if argv.get(1).map(String::as_str) != Some("demo") {
        return (argv, Vec::new());
    }
    let mut rest = Vec::new();
    let mut graph = vec!["graphbridge demo".to_string()];
    let mut args = argv.into_iter().peekable();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--graph-") {
            Some(flag) => {
                graph.push(format!("--{flag}"));
                let takes_value =
                    !flag.contains('=') && args.peek().is_some_and(|next| !next.starts_with("--"));
                if takes_value {
                    graph.extend(args.next());
                }
            }
            None => rest.push(arg),
        }
    }
    (rest, graph)
}

type AnyError = Box<dyn std::error::Error>;

async fn run(cli: Cli, graph_args: Vec<String>) -> Result<(), AnyError> {
    match cli.command {
        Command::Demo(args) => run_demo(args, graph_args).await,
        Command::Emulator(args) => run_emulator(args).await,
        Command::Serve { config } => serve(Config::load(&config)?).await,
        Command::User { config, command } => cli::user(&load(config)?, command),
        Command::Mailbox { config, command } => cli::mailbox(load(config)?, command).await,
        Command::Admin { config, command } => cli::admin_command(&load(config)?, command),
        Command::Activities {
            config,
            mailbox,
            since,
            json,
        } => {
            let store = cli::open_store(&load(config)?)?;
            let mut out = std::io::stdout();
            graphbridge::submission::activities::cli(
                &store,
                mailbox.as_deref(),
                since.as_deref(),
                json,
                &mut out,
            )?;
            Ok(())
        }
    }
}

fn load(arg: ConfigArg) -> Result<Config, AnyError> {
    Ok(match arg.config {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    })
}

async fn run_demo(args: DemoArgs, graph_args: Vec<String>) -> Result<(), AnyError> {
    let graph = DemoGraphArgs::try_parse_from(graph_args)?;
    let options = DemoOptions {
        imap_port: args.imap_port,
        smtp_port: args.smtp_port,
        http_port: args.http_port,
        emulator: demo::demo_emulator_args(graph.emulator),
        data_dir: args.data_dir,
        poll_interval_secs: args.poll_interval_secs,
        adjust_config: None,
    };
    let running = demo::start(options).await?;
    println!("graphbridge demo is running (Ctrl-C stops it)");
    println!(
        "  IMAP      {}   (STARTTLS; LOGIN also without TLS on loopback)",
        running.running.imap
    );
    if let Some(imaps) = running.running.imaps {
        println!(
            "  IMAPS     {imaps}   (implicit TLS, self-signed certificate in the data folder)"
        );
    }
    println!(
        "  SMTP      {}   (submission, STARTTLS; AUTH without TLS on loopback)",
        running.running.smtp
    );
    if let Some(smtps) = running.running.smtps {
        println!(
            "  SMTPS     {smtps}   (implicit TLS, self-signed certificate in the data folder)"
        );
    }
    println!(
        "  HTTP      http://{}/   (web admin, password {})",
        running.running.http,
        demo::DEMO_PASSWORD
    );
    println!(
        "  Graph     http://{}/v1.0   (emulator)",
        running.graph.addr
    );
    println!("  data      {}", running.data_dir.display());
    println!("  login     {} / {}", demo::DEMO_USER, demo::DEMO_PASSWORD);
    println!(
        "  mailboxes {} (personal), {} (alias, under Shared/{}/)",
        demo::DEMO_MAILBOX,
        demo::DEMO_ALIAS,
        demo::DEMO_ALIAS
    );
    app::shutdown_signal().await;
    println!("stopping");
    running.stop().await;
    Ok(())
}

async fn run_emulator(command: EmulatorCommand) -> Result<(), AnyError> {
    if let Some(EmulatorAction::Generate {
        out,
        messages,
        seed,
        mailbox,
        folders,
        median_kb,
        large_share,
    }) = command.action
    {
        let options = graphbridge::emulator::generate::GenerateOptions {
            seed,
            messages,
            mailbox,
            folders,
            median_bytes: median_kb * 1000,
            large_share,
            ..Default::default()
        };
        let done = graphbridge::emulator::generate::write_fixtures(&out, &options)?;
        println!(
            "{} messages ({} bytes) in {} folders written to {}",
            done.messages,
            done.bytes,
            done.folders,
            out.display()
        );
        return Ok(());
    }
    let emulator = Emulator::new(&command.args)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", command.args.port)).await?;
    println!("Graph emulator on http://{}/v1.0", listener.local_addr()?);
    emulator
        .clone()
        .serve(listener, app::shutdown_signal())
        .await?;
    if let Some(dir) = command.dump_on_exit {
        let summary = emulator.dump(&dir)?;
        println!("state written to {} ({summary:?})", dir.display());
    }
    Ok(())
}

fn open_store(config: &Config) -> Result<Store, AnyError> {
    cli::open_store(config)
}

async fn serve(config: Config) -> Result<(), AnyError> {
    if config.graph.client_id.is_empty() {
        return Err("graph.client_id is not set in the configuration: register an app in Microsoft Entra (see README)".into());
    }
    let store = open_store(&config)?;
    let secrets = SecretBox::load_or_create(&config.data_dir)?;
    let listeners = Listeners::bind(&config).await?;
    let bridge = Bridge::new(config, store, secrets)?;
    let running = app::start(bridge, listeners).await?;
    println!(
        "graphbridge: IMAP {}, SMTP {}, HTTP {}",
        running.imap, running.smtp, running.http
    );
    app::shutdown_signal().await;
    running.stop().await;
    Ok(())
}
