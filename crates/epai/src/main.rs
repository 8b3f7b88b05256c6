//! The `epai` binary: command line, configuration, telemetry and wiring.
//!
//! Owns how the pieces are started and connected (`serve`, `migrate`, operator commands); holds
//! no business rules of its own, which live in the store, engine and server crates.

mod bench;
mod config;
mod database;
mod demo;
mod jwt_secret;
mod maintenance;
mod models;
mod secret_file;
mod webhooks;
mod workers;

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
    /// Run insight workers only, beside `epai serve` processes on the same database.
    Worker(workers::InsightArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the coming months' partitions of events and request logs, move rows out of the
    /// default partition, and drop months past their retention (`epai serve` also does this
    /// every EPAI_MAINTENANCE_INTERVAL_SECONDS).
    Maintenance(maintenance::MaintenanceArgs),
    /// Manage partner accounts.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Register and list custom ONNX models.
    #[command(subcommand)]
    Model(models::ModelCommand),
    /// Manage the secret that signs portal session and embed tokens.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// Load a demo partner with eight weeks of realistic events, and print its API key.
    Demo,
    /// Measure ingest and key verification against PostgreSQL's own ceiling, in a scratch database.
    Bench(bench::BenchArgs),
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
    /// Show a partner's API request quota, or set it with --per-minute or --default.
    Limits {
        /// Partner id (UUID) or the partner's email.
        #[arg(long)]
        partner: String,
        /// Requests per minute this partner's API key may make; 0 turns the limit off.
        #[arg(
            long,
            value_name = "N",
            value_parser = parse_per_minute,
            allow_negative_numbers = true,
            conflicts_with = "default"
        )]
        per_minute: Option<u32>,
        /// Return the partner to the server-wide quota (EPAI_RATE_LIMIT_PER_KEY).
        #[arg(long)]
        default: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A quota as the `partners` table can hold it: 0 to `i32::MAX` requests per minute.
fn parse_per_minute(text: &str) -> Result<u32, String> {
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a whole number of requests per minute".to_owned())?;
    if value < 0 {
        return Err("must be 0 or more (0 turns the limit off)".to_owned());
    }
    u32::try_from(value)
        .ok()
        .filter(|&n| i32::try_from(n).is_ok())
        .ok_or_else(|| format!("must be at most {}", i32::MAX))
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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Subcommand, Debug)]
enum JwtCommand {
    /// Replace the generated session signing secret in the data directory. The old one keeps
    /// verifying the tokens it signed until they expire (a day at most), so nobody is signed
    /// out; restart `epai serve` to sign with the new one.
    Rotate {
        /// Forget the old secret (and any earlier one) at once: every session and embed token
        /// stops working. For a secret that may have leaked.
        #[arg(long)]
        sign_everyone_out: bool,
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
        Command::Worker(args) => workers::run(&global, &args).await,
        Command::Bench(args) => bench::run(&global, args).await,
        Command::Maintenance(args) => maintenance::run(&global, &args).await,
        Command::Model(command) => models::run(&global, command).await,
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
        Command::Partner(PartnerCommand::Limits {
            partner,
            per_minute,
            default,
            json,
        }) => {
            let db = database::open_migrated(&global).await?;
            let store = db.store(&global)?;
            // `Some(None)` returns the partner to the default; `None` only shows the setting.
            let change = (per_minute.is_some() || default).then_some(per_minute);
            let partner = store
                .as_service_role(async |service| {
                    let found = service.find_partner(&partner).await?;
                    match change {
                        Some(per_minute) => service.set_rate_limit(found.id, per_minute).await,
                        None => Ok(found),
                    }
                })
                .await?;
            let headline = if change.is_some() {
                "rate limit updated"
            } else {
                "rate limit"
            };
            print_limits(json, headline, &partner, &global.rate_limit_settings())?;
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
        Command::Jwt(JwtCommand::Rotate {
            sign_everyone_out,
            json,
        }) => rotate_jwt_secret(&global, !sign_everyone_out, json),
        Command::Demo => {
            let db = database::open_migrated(&global).await?;
            // The demo's events queue insight jobs like ingested ones, so a running server's
            // workers compute its insights right away.
            let store = db
                .store(&global)?
                .recomputing_on_ingest(epai_store::RecomputeOnIngest {
                    models: workers::models().names(),
                    debounce: std::time::Duration::ZERO,
                });
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
            if let Some(password) = &loaded.password {
                println!(
                    "portal login: {} / {password}  (shown only now)",
                    loaded.partner.email.as_deref().unwrap_or_default()
                );
            }
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

fn print_limits(
    json: bool,
    headline: &str,
    partner: &epai_store::PartnerRecord,
    settings: &epai_server::rate_limit::RateLimitSettings,
) -> anyhow::Result<()> {
    let effective = settings.key_quota(partner.rate_limit_per_minute);
    let overridden = partner.rate_limit_per_minute.is_some();
    let source = if overridden { "partner" } else { "default" };
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "partner_id": partner.id,
            "email": partner.email,
            "rate_limit_per_minute": partner.rate_limit_per_minute,
            "effective_per_minute": effective.per_minute,
            "source": source,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{headline}")?;
        writeln!(out, "  partner id: {}", partner.id)?;
        if let Some(email) = &partner.email {
            writeln!(out, "  email:      {email}")?;
        }
        let quota = if effective.is_off() {
            "unlimited".to_owned()
        } else {
            format!("{} requests/minute per API key", effective.per_minute)
        };
        let origin = if overridden {
            "set for this partner"
        } else {
            "server default, EPAI_RATE_LIMIT_PER_KEY"
        };
        writeln!(out, "  quota:      {quota} ({origin})")?;
    }
    Ok(())
}

fn rotate_jwt_secret(global: &GlobalArgs, keep_previous: bool, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("EPAI_JWT_SECRET").is_none(),
        "EPAI_JWT_SECRET is set, so the secret is not kept in the data directory: move its value \
         to EPAI_JWT_PREVIOUS_SECRETS and set a new EPAI_JWT_SECRET on every replica"
    );
    let rotation = jwt_secret::rotate(&global.data_dir, chrono::Utc::now(), keep_previous)?;
    let kid = |secret: &jwt_secret::JwtSecret| epai_server::JwtKeys::kid_of(secret.as_bytes());
    let new_kid = kid(&rotation.new_secret);
    let retired_kid = rotation.retired.as_ref().map(kid);
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "kid": new_kid,
            "retired_kid": retired_kid,
            "retired_kept": rotation.kept,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "session signing secret rotated")?;
        writeln!(out, "  new key id:     {new_kid}")?;
        match &retired_kid {
            Some(retired) => writeln!(
                out,
                "  retired key id: {retired} (still verifies the tokens it signed, for a day at most)"
            )?,
            None => writeln!(
                out,
                "  the old secret is forgotten: every session and embed token stops working"
            )?,
        }
        writeln!(out, "  Restart epai serve to sign with the new secret.")?;
    }
    Ok(())
}

async fn serve(global: &GlobalArgs, args: &config::ServeArgs) -> anyhow::Result<()> {
    let jwt = args.jwt_keys(&global.data_dir)?;
    tracing::info!(
        kid = jwt.kid(),
        verifying = jwt.verifying_kids().count(),
        "session tokens are signed with this key id"
    );
    let db = database::open(global, database::Ownership::Exclusive).await?;
    db.migrate().await?;
    let models = workers::models();
    let store = db
        .store(global)?
        .recomputing_on_ingest(args.insights.recompute(&models));
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
    // The banner is a courtesy: a closed stdout (a supervisor that stopped reading) must not
    // take the server down, as `println!` would.
    let mut banner = std::io::stdout().lock();
    let _ = writeln!(
        banner,
        "EPAI is serving on http://{address}  (database: {})",
        db.describe()
    );
    let _ = writeln!(
        banner,
        "portal: http://{address}/portal  (for a demo partner with data and a login: epai demo)"
    );
    let _ = banner.flush();
    drop(banner);
    let mut settings = args.server_settings();
    settings.rate_limits = global.rate_limit_settings();
    settings.accounts = args.account_settings();
    let webhook_cipher = args.insights.webhooks.cipher(&global.data_dir)?;
    settings.webhooks = args
        .insights
        .webhooks
        .server_settings(webhook_cipher.clone());
    let (state, background) = epai_server::start(store.clone(), settings, jwt)
        .context("invalid rate-limit configuration (EPAI_REDIS_URL)")?;
    let workers = workers::start(&store, &models, &args.insights, &webhook_cipher)?;
    let (stop_maintenance, maintenance_stopping) = tokio::sync::watch::channel(false);
    let maintenance = (args.maintenance_interval_seconds > 0).then(|| {
        maintenance::schedule(
            store.clone(),
            global.retention_policy(),
            std::time::Duration::from_secs(args.maintenance_interval_seconds),
            maintenance_stopping,
        )
    });
    epai_server::serve_with_listener(state, listener, config::shutdown_signal()).await?;
    tracing::info!("no longer accepting requests; storing what was accepted");
    background.shutdown().await;
    workers.stop().await;
    let _ = stop_maintenance.send(true);
    if let Some(maintenance) = maintenance {
        let _ = maintenance.await;
    }
    tracing::info!("everything accepted is stored; shutting down the database");
    db.close().await
}
