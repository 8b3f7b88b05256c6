//! The `epai` binary: command line, configuration, telemetry and wiring.
//!
//! Owns how the pieces are started and connected (`serve`, `migrate`, operator commands); holds
//! no business rules of its own, which live in the store, engine and server crates.

mod config;
mod database;
mod demo;
mod jwt_secret;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::GlobalArgs;
use epai_domain::{Email, PartnerName};
use epai_store::{NewPartner, Store};

#[derive(Parser, Debug)]
#[command(
    name = "epai",
    version,
    about = "Embedded Predictive Analytics Integrator: ingest product events, get predictive insights",
    long_about = "Embedded Predictive Analytics Integrator.\n\n\
        Partners send product events over an HTTP API; EPAI turns them into forecasts, anomalies \
        and risk scores. Without DATABASE_URL every command uses a private PostgreSQL cluster in \
        the data directory (started on demand from the installed server binaries)."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API (migrating the database first).
    Serve(config::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage partner accounts.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Load a demo partner with four weeks of realistic events, and print its API key.
    Demo,
}

#[derive(Subcommand, Debug)]
enum PartnerCommand {
    /// Create an account and its partner, and print a new API key (shown only this once).
    Create {
        /// Display name of the partner, e.g. "Acme Events".
        #[arg(long)]
        name: String,
        /// Contact email; also the account's login.
        #[arg(long)]
        email: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Replace a partner's API key and print the new one (shown only this once).
    Rotate {
        /// Partner id (UUID) or the partner's email.
        #[arg(long)]
        partner: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    config::init_tracing(&cli.global);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Serve(args) => serve(&global, &args).await,
        Command::Migrate => {
            let db = database::open(&global, database::Ownership::Shared).await?;
            let applied = db.migrate().await?;
            if applied.is_empty() {
                println!(
                    "database is up to date (migration {})",
                    epai_store::latest_migration_version()
                );
            } else {
                println!("applied migrations {applied:?}");
            }
            db.close().await
        }
        Command::Partner(PartnerCommand::Create { name, email, json }) => {
            let new = NewPartner {
                name: PartnerName::parse(&name).context("--name")?,
                email: Email::parse(&email).context("--email")?,
                password_hash: None,
            };
            let db = database::open_migrated(&global).await?;
            let store = db.store(&global)?;
            let partner = store
                .as_service_role(async |service| service.create_partner(&new).await)
                .await?;
            let issued = issue_key(&store, partner.require_user()?).await?;
            print_key(json, "partner created", &partner, &issued)?;
            db.close().await
        }
        Command::Key(KeyCommand::Rotate { partner, json }) => {
            let db = database::open_migrated(&global).await?;
            let store = db.store(&global)?;
            let partner = store
                .as_service_role(async |service| service.find_partner(&partner).await)
                .await?;
            let issued = issue_key(&store, partner.require_user()?).await?;
            print_key(json, "API key rotated", &partner, &issued)?;
            db.close().await
        }
        Command::Demo => {
            let db = database::open_migrated(&global).await?;
            let store = db.store(&global)?;
            let loaded = demo::load(&store).await?;
            let issued = issue_key(&store, loaded.partner.require_user()?).await?;
            println!(
                "demo partner {} ({}): {} events over the last {} days{}",
                loaded.partner.name.as_deref().unwrap_or_default(),
                loaded.partner.id,
                loaded.events,
                demo::DAYS,
                if loaded.created {
                    ""
                } else {
                    " (already loaded)"
                }
            );
            print_key(false, "demo API key", &loaded.partner, &issued)?;
            db.close().await
        }
    }
}

struct IssuedKey {
    key: String,
    status: Option<epai_store::ApiKeyStatus>,
}

async fn issue_key(store: &Store, user: epai_domain::AuthUserId) -> anyhow::Result<IssuedKey> {
    Ok(store
        .as_user(user, async |tenant| {
            let key = tenant.regenerate_api_key().await?;
            let status = tenant.api_key_status().await?;
            Ok(IssuedKey { key, status })
        })
        .await?)
}

fn print_key(
    json: bool,
    headline: &str,
    partner: &epai_store::PartnerRecord,
    issued: &IssuedKey,
) -> anyhow::Result<()> {
    let expires_at = issued.status.as_ref().and_then(|s| s.expires_at);
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "partner_id": partner.id,
            "user_id": partner.user_id,
            "name": partner.name,
            "email": partner.email,
            "api_key": issued.key,
            "expires_at": expires_at,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{headline}")?;
        writeln!(out, "  partner id: {}", partner.id)?;
        if let Some(email) = &partner.email {
            writeln!(out, "  email:      {email}")?;
        }
        writeln!(out, "  API key:    {}", issued.key)?;
        if let Some(expires) = expires_at {
            writeln!(
                out,
                "  expires:    {}",
                expires.format("%Y-%m-%d %H:%M UTC")
            )?;
        }
        writeln!(
            out,
            "  The key is shown only now; EPAI stores just its SHA-256 hash."
        )?;
    }
    Ok(())
}

async fn serve(global: &GlobalArgs, args: &config::ServeArgs) -> anyhow::Result<()> {
    let secret = args.jwt_secret(&global.data_dir)?;
    let jwt = epai_server::JwtKeys::from_secret(secret.as_bytes()).context("EPAI_JWT_SECRET")?;
    let db = database::open(global, database::Ownership::Exclusive).await?;
    db.migrate().await?;
    let store = db.store(global)?;
    let role = store.session_role().await?;
    anyhow::ensure!(
        !role.superuser && !role.bypasses_rls,
        "the pool's role {} bypasses row-level security; refusing to serve",
        role.name
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %db.describe(), "EPAI is serving");
    println!(
        "EPAI is serving on http://{address}  (database: {})",
        db.describe()
    );
    let state = epai_server::AppState {
        store,
        jwt: std::sync::Arc::new(jwt),
        accounts: args.account_settings(),
    };
    epai_server::serve_with_listener(state, listener, config::shutdown_signal()).await?;
    tracing::info!("server stopped; shutting down the database");
    db.close().await
}
