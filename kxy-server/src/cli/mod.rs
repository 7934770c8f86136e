//! The `kxy-server` command line.
//!
//! With no subcommand it serves. `counters add` and `counters list` work on
//! the same store the server would use, so a counter can be registered before
//! the first request (the HTTP admin routes come with access control). Every
//! flag has an environment variable, for containers and service managers.
//!
//! This module holds the flags and the dispatch; [`serve`] runs the server,
//! and each group of subcommands has its own module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kxy_core::{AllocationLimits, SegmentKey};

use crate::Error;
use crate::credentials::CredentialService;
use crate::databases::{DatabasePolicy, DatabaseService};
use crate::identity::{AuthSettings, LockoutPolicy};
use crate::request_limits::HttpLimitArgs;
use crate::segments::SegmentService;
use crate::state::{AppState, Settings};
use crate::store::durability::WaitReplicas;
use crate::store::{self, DurabilityPolicy, MissingCounter, StoreConfig};
use crate::store_guard::GuardSettings;
use crate::vault::{MasterKey, Vault};
use crate::witness::Witness;

mod accounts;
mod counters;
mod databases;
mod serve;

use accounts::run_users;
use counters::{add_counter, list_counters, raise_counter};
use databases::run_databases;
use serve::{guard_first_run, run_server};

#[derive(Debug, Parser)]
#[command(
    name = "kxy-server",
    version,
    about = "kxy: distributed ID segment allocation"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub databases: DatabaseArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The master key that seals stored secrets. Global: `credentials rotate`
/// uses the same flags as the server.
#[derive(Debug, Args)]
pub struct VaultArgs {
    /// 64 hex digits (32 bytes) that seal stored credentials and database
    /// passwords. Without it the server refuses to store them.
    #[arg(long, env = "KXY_MASTER_KEY", hide_env_values = true, global = true)]
    pub master_key: Option<String>,
    /// Earlier master keys (comma-separated), to read what they sealed
    /// until `kxy-server credentials rotate` re-seals it.
    #[arg(
        long,
        env = "KXY_PREVIOUS_MASTER_KEYS",
        hide_env_values = true,
        value_delimiter = ',',
        global = true
    )]
    pub previous_master_keys: Vec<String>,
}

impl VaultArgs {
    pub fn vault(&self) -> Result<Vault, Error> {
        let current = self
            .master_key
            .as_deref()
            .map(MasterKey::parse)
            .transpose()?;
        let previous = self
            .previous_master_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| MasterKey::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        if current.is_none() && !previous.is_empty() {
            return Err(Error::Startup(
                "--previous-master-keys needs --master-key".into(),
            ));
        }
        Ok(Vault::new(current, previous))
    }
}

/// What registered databases may reach (issue 11, point 15). Global: the
/// `databases` subcommands connect too.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The directory whose SQLite files may be registered (paths inside it
    /// only). Without it, SQLite registration is refused.
    #[arg(long, env = "KXY_SQLITE_DIR", global = true)]
    pub sqlite_dir: Option<PathBuf>,
    /// Hosts (or host:port) registered databases may be at,
    /// comma-separated. Default: any.
    #[arg(long, env = "KXY_DATABASE_HOSTS", value_delimiter = ',', global = true)]
    pub database_hosts: Vec<String>,
    /// Seconds one query to a registered database may run or wait for a
    /// lock; a table that takes longer is skipped with the reason.
    #[arg(
        long,
        env = "KXY_DATABASE_QUERY_TIMEOUT",
        default_value_t = 10,
        global = true
    )]
    pub database_query_timeout: u64,
    /// IDs to leave free above what a table holds and its own generator
    /// would hand out next, when initializing (for writers still using the
    /// database's default while kxy takes over).
    #[arg(
        long,
        env = "KXY_DATABASE_START_MARGIN",
        default_value_t = 0,
        global = true
    )]
    pub database_start_margin: u32,
}

impl DatabaseArgs {
    pub fn policy(&self) -> Result<DatabasePolicy, Error> {
        if self.database_query_timeout == 0 {
            return Err(Error::Startup(
                "--database-query-timeout must be at least 1 (seconds)".into(),
            ));
        }
        Ok(
            DatabasePolicy::new(self.sqlite_dir.as_deref(), &self.database_hosts)?
                .with_query_timeout(Duration::from_secs(self.database_query_timeout))
                .with_start_margin(i64::from(self.database_start_margin)),
        )
    }
}

/// Where counters live. Global, so they may follow a subcommand too.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store backend.
    #[arg(long, env = "KXY_STORE", value_enum, default_value_t = StoreKind::Embedded, global = true)]
    pub store: StoreKind,
    /// Directory of the embedded store's file.
    #[arg(long, env = "KXY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Redis URL for `--store redis`, e.g. redis://:password@host:6379/0.
    // hide_env_values: --help must not print a password from the environment.
    #[arg(
        long,
        env = "KXY_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,
    /// Prefix of every Redis key; `kxy:id` is the seed's layout.
    #[arg(
        long,
        env = "KXY_REDIS_PREFIX",
        default_value = "kxy:id",
        global = true
    )]
    pub redis_prefix: String,
    /// What Redis must guarantee before the server allocates from it:
    /// `strict` (appendonly yes + appendfsync always, else refuse),
    /// `replicas:N` (WAIT for N replicas after each allocation) or `unsafe`
    /// (trust any setting; warned about and shown on /health).
    #[arg(
        long,
        env = "KXY_REDIS_DURABILITY",
        default_value = "strict",
        value_parser = DurabilityPolicy::from_str,
        global = true
    )]
    pub redis_durability: DurabilityPolicy,
    /// How long an allocation waits for its replicas under
    /// `--redis-durability replicas:N`, in milliseconds.
    #[arg(
        long,
        env = "KXY_REDIS_WAIT_TIMEOUT_MS",
        default_value_t = 1000,
        global = true
    )]
    pub redis_wait_timeout_ms: u64,
    /// Seconds between checks of the Redis store's durability and epoch,
    /// and heartbeats of this instance (a check also follows every refusal
    /// and store error). After a restart, failover or rollback of Redis no
    /// instance serves for the settle period, 3 intervals (at least 3 s).
    #[arg(
        long,
        env = "KXY_REDIS_CHECK_INTERVAL",
        default_value_t = 1,
        global = true
    )]
    pub redis_check_interval: u64,
    /// Directory of the witness files (this instance's memory of the IDs it
    /// handed out); defaults to --data-dir. Put it outside what backups
    /// restore, so that a restored store is caught.
    #[arg(long, env = "KXY_WITNESS_DIR", global = true)]
    pub witness_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// A crash-safe file under --data-dir; one server process.
    Embedded,
    /// Redis at --redis-url; any number of server processes.
    Redis,
}

impl StoreArgs {
    /// How a serving instance watches its store, and where its witness is
    /// kept (--witness-dir, else --data-dir).
    pub fn guard_settings(&self) -> Result<GuardSettings, Error> {
        if self.redis_check_interval == 0 {
            return Err(Error::Startup(
                "--redis-check-interval must be at least 1".into(),
            ));
        }
        Ok(GuardSettings {
            policy: match self.store {
                StoreKind::Embedded => DurabilityPolicy::Strict,
                StoreKind::Redis => self.redis_durability,
            },
            interval: Duration::from_secs(self.redis_check_interval),
            witness: Some(Witness::new(
                self.witness_dir.as_deref().unwrap_or(&self.data_dir),
            )),
        })
    }

    pub fn config(&self) -> StoreConfig {
        match self.store {
            StoreKind::Embedded => StoreConfig::Embedded {
                data_dir: self.data_dir.clone(),
            },
            StoreKind::Redis => StoreConfig::Redis {
                url: self.redis_url.clone(),
                prefix: self.redis_prefix.clone(),
                policy: self.redis_durability,
                wait_replicas: match self.redis_durability {
                    DurabilityPolicy::Replicas(replicas) => Some(WaitReplicas {
                        replicas,
                        timeout: Duration::from_millis(self.redis_wait_timeout_ms.max(1)),
                    }),
                    _ => None,
                },
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (logged at start).
    #[arg(long, env = "KXY_BIND", default_value = "127.0.0.1:5801")]
    pub bind: SocketAddr,
    /// Largest segment_count one request may ask for.
    #[arg(long, env = "KXY_MAX_SEGMENT", default_value_t = AllocationLimits::DEFAULT_MAX_SEGMENT)]
    pub max_segment: i64,
    /// Create unregistered counters on first allocation (development only:
    /// a store that lost its data would silently restart counters at 1).
    #[arg(
        long,
        env = "KXY_AUTO_CREATE",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub auto_create: bool,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub owner_limits: crate::limits::LimitArgs,
    #[command(flatten)]
    pub http_limits: HttpLimitArgs,
}

/// Tokens, lockout and the access policy.
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// Secret that signs access tokens (at least 32 bytes), the same on
    /// every instance. Without it the key is derived from --master-key, or
    /// on the embedded store kept in `jwt-secret` beside the store file; a
    /// shared store (Redis) needs one or the other. Never stored in the store.
    #[arg(long, env = "KXY_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// The token the first-run init (POST /api/auth/init-user) must send as
    /// `setup_token`. Without it, a server bound to other than loopback
    /// generates one and prints it to its console; on loopback none is needed.
    #[arg(long, env = "KXY_SETUP_TOKEN", hide_env_values = true)]
    pub setup_token: Option<String>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "KXY_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: u64,
    /// Lifetime of a login session's refresh tokens, in seconds.
    #[arg(long, env = "KXY_REFRESH_TOKEN_TTL", default_value_t = 7 * 24 * 3600)]
    pub refresh_token_ttl: u64,
    /// Failed logins within the window that lock an account.
    #[arg(long, env = "KXY_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: u64,
    /// The window failed logins are counted in, in seconds.
    #[arg(long, env = "KXY_LOCKOUT_WINDOW", default_value_t = 900)]
    pub lockout_window: u64,
    /// How long a locked account stays locked, in seconds.
    #[arg(long, env = "KXY_LOCKOUT_DURATION", default_value_t = 900)]
    pub lockout_duration: u64,
    /// How often each server checks the store for access-policy and API
    /// key changes made through other servers, in milliseconds.
    #[arg(long, env = "KXY_POLICY_REFRESH_MS", default_value_t = 1000)]
    pub policy_refresh_ms: u64,
    /// Active API keys each user may hold.
    #[arg(long, env = "KXY_MAX_API_KEYS", default_value_t = 5)]
    pub max_api_keys: usize,
    /// Require an API key (with segments:allocate) on
    /// POST /api/segment/allocate. Off by default: the seed's endpoint and
    /// kxy-open-id-client work without one.
    #[arg(
        long,
        env = "KXY_ALLOCATION_REQUIRES_KEY",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub allocation_requires_key: bool,
    /// How often the scanner looks for new tables in registered databases,
    /// in seconds; 0 turns it off.
    #[arg(long, env = "KXY_SCAN_INTERVAL", default_value_t = 60)]
    pub scan_interval: u64,
}

impl SecurityArgs {
    pub fn settings(&self) -> Result<AuthSettings, Error> {
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(Error::Startup(format!("--{name} must be at least 1")))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        Ok(AuthSettings {
            access_ttl: positive("access-token-ttl", self.access_token_ttl)?,
            refresh_ttl: positive("refresh-token-ttl", self.refresh_token_ttl)?,
            lockout: LockoutPolicy {
                threshold: self.lockout_threshold.max(1),
                window: positive("lockout-window", self.lockout_window)?,
                duration: positive("lockout-duration", self.lockout_duration)?,
            },
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register and inspect counters.
    #[command(subcommand)]
    Counters(CountersCommand),
    /// Print a new random master key (64 hex digits) for --master-key.
    Keygen,
    /// Stored credentials.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Registered databases.
    #[command(subcommand)]
    Databases(DatabasesCommand),
    /// Account recovery for the operator: unlock, reset a password.
    #[command(subcommand)]
    Users(UsersCommand),
}

/// Works on the store directly, with no login: on Redis while servers run,
/// on the embedded store with its server stopped.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Lift the lockout of USERNAME after failed logins.
    Unlock { username: String },
    /// Set a new password for USERNAME, read from the first line of
    /// standard input. Ends every login of the user, disables their API
    /// keys, unlocks and reactivates the account.
    ResetPassword { username: String },
}

#[derive(Debug, Subcommand)]
pub enum DatabasesCommand {
    /// List registered databases.
    List,
    /// Register a counter for every numbered table of a database, showing
    /// progress.
    Initialize {
        /// The database's guid (see `databases list`).
        guid: String,
    },
    /// Run one scanner pass over every database and list what it found.
    Scan,
    /// Import the registered databases of the seed's Python service from
    /// its Redis (`{prefix}:db_config:{guid}`), keeping their guids and
    /// sealing their passwords with --master-key.
    ImportSeed {
        /// The seed's Redis, e.g. redis://127.0.0.1:6379/0.
        #[arg(long = "from")]
        from: String,
        /// The seed's key prefix.
        #[arg(long, default_value = "kxy:id")]
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Re-seal every stored credential and database password under
    /// --master-key, opening the old ones with --previous-master-keys. Run
    /// it with the server stopped or with every server already given the
    /// new key.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum CountersCommand {
    /// Register a counter whose first ID will be START + 1. Re-running with a
    /// higher START raises it; a lower one changes nothing.
    Add(CounterAdd),
    /// Raise a registered counter so that the next ID it hands out is
    /// TO + 1: the recovery step after its store went backwards (lifts the
    /// fence). Never lowers a counter; refuses an unknown one.
    Raise(CounterRaise),
    /// List registered counters and the next ID each hands out.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The four parts of a counter's name.
#[derive(Debug, Args)]
pub struct CounterName {
    #[arg(long)]
    pub system: String,
    #[arg(long)]
    pub db: String,
    #[arg(long)]
    pub table: String,
    #[arg(long)]
    pub field: String,
}

impl CounterName {
    fn key(&self) -> Result<SegmentKey, Error> {
        Ok(SegmentKey::new(
            &self.system,
            &self.db,
            &self.table,
            &self.field,
        )?)
    }
}

#[derive(Debug, Args)]
pub struct CounterAdd {
    #[command(flatten)]
    pub name: CounterName,
    /// The highest ID already in use (0 for a new counter).
    #[arg(long, allow_negative_numbers = true)]
    pub start: i64,
}

#[derive(Debug, Args)]
pub struct CounterRaise {
    #[command(flatten)]
    pub name: CounterName,
    /// The highest ID that may be in use: at least the fence's floor (see
    /// `counters list`), plus a margin for IDs clients held in their caches.
    #[arg(long, allow_negative_numbers = true)]
    pub to: i64,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    if let Some(Command::Keygen) = cli.command {
        println!("{}", MasterKey::generate());
        return Ok(());
    }
    let vault = Arc::new(cli.vault.vault()?);
    let policy = cli.databases.policy()?;
    let limits = AllocationLimits::new(cli.serve.max_segment)
        .map_err(|e| Error::Startup(format!("--max-segment: {e}")))?;
    let missing = if cli.serve.auto_create {
        MissingCounter::Create
    } else {
        MissingCounter::Refuse
    };
    let store = store::open(&cli.store.config()).await?;
    match cli.command {
        None => {
            let security = &cli.serve.security;
            let http_limits = cli.serve.http_limits.limits()?;
            if security.max_api_keys == 0 {
                return Err(Error::Startup("--max-api-keys must be at least 1".into()));
            }
            let settings = Settings {
                limits,
                missing,
                auth: security.settings()?,
                jwt_secret: security.jwt_secret.clone(),
                max_api_keys: security.max_api_keys,
                allocation_requires_key: security.allocation_requires_key,
                vault,
                scan_interval: (security.scan_interval > 0)
                    .then(|| Duration::from_secs(security.scan_interval)),
                databases: policy,
            };
            let segments = SegmentService::guarded(
                Arc::clone(&store),
                limits,
                missing,
                cli.store.guard_settings()?,
            )
            .await?;
            let state = AppState::with_segments(store, Arc::new(segments), settings).await?;
            cli.serve.owner_limits.apply(&state)?;
            guard_first_run(&cli.serve, &state).await?;
            state.watch(Duration::from_millis(security.policy_refresh_ms.max(10)));
            run_server(&cli.serve, state, &http_limits).await
        }
        Some(Command::Users(command)) => run_users(command, store).await,
        Some(Command::Credentials(CredentialsCommand::Rotate)) => {
            if !vault.enabled() {
                return Err(Error::Startup(
                    "credentials rotate needs --master-key (the new key)".into(),
                ));
            }
            let fingerprint = vault.fingerprint().unwrap_or_default().to_owned();
            let (resealed, current) =
                CredentialService::new(Arc::clone(&store), Arc::clone(&vault))
                    .rotate()
                    .await?;
            println!(
                "re-sealed {resealed} credentials under master key {fingerprint}; {current} were under it already"
            );
            // Database passwords are sealed by the same key (issue 11, point 13).
            let segments = Arc::new(SegmentService::new(Arc::clone(&store), limits, missing));
            let (resealed, current) = DatabaseService::new(store, vault, segments, policy)
                .rotate()
                .await?;
            println!(
                "re-sealed {resealed} database passwords under master key {fingerprint}; {current} were under it already"
            );
            Ok(())
        }
        Some(Command::Keygen) => unreachable!("handled above"),
        Some(Command::Databases(command)) => {
            let segments = Arc::new(SegmentService::new(Arc::clone(&store), limits, missing));
            let databases = DatabaseService::new(store, vault, segments, policy);
            run_databases(&databases, command).await
        }
        Some(Command::Counters(command)) => {
            let segments = SegmentService::new(store, limits, missing);
            match command {
                CountersCommand::Add(add) => add_counter(&segments, &add).await,
                CountersCommand::Raise(raise) => raise_counter(&segments, &raise).await,
                CountersCommand::List { json } => list_counters(&segments, json).await,
            }
        }
    }
}
