//! Connecting to a registered database and reading its tables.
//!
//! One small enum over the three sqlx drivers. For each database type the
//! same two questions: which tables have a primary key that is a single
//! integer column (and if not, why not), and what is the largest value in
//! it. Maxima are read as text (`CAST(MAX(col) AS CHAR)`), so every
//! integer width, signed or unsigned, arrives intact and a value beyond
//! 2^63−1 is reported instead of wrapping.
//!
//! Connection options are built field by field, never from a URL, and are
//! never logged: sqlx's MySQL options print the password in `Debug`.
//!
//! TLS follows the record's [`TlsMode`]: `prefer` (the default, as before:
//! encrypted when the server offers it, unverified), `require` (encrypted or
//! no connection, unverified) and `verify` (the certificate must chain to
//! `tls_ca`, or to the public web roots without one, and name the host):
//! only `verify` keeps a password from a man in the middle.

use std::time::Duration;

use kxy_core::{Identifier, KeyPart};
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection as _};

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    Mysql,
    Postgresql,
    Sqlite,
}

impl std::fmt::Display for DbType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbType::Mysql => "mysql",
            DbType::Postgresql => "postgresql",
            DbType::Sqlite => "sqlite",
        })
    }
}

impl DbType {
    /// Parses the seed's type names; SQL Server and Oracle are named as
    /// not supported yet rather than accepted and failing later.
    pub fn parse(name: &str) -> Result<DbType, String> {
        // Spellings differ ("SQL Server", "sql_server", "Postgre-SQL"):
        // compare letters and digits only.
        let folded: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match folded.as_str() {
            "mysql" | "mariadb" => Ok(DbType::Mysql),
            "postgresql" | "postgres" | "pg" => Ok(DbType::Postgresql),
            "sqlite" | "sqlite3" => Ok(DbType::Sqlite),
            "sqlserver" | "mssql" | "oracle" => Err(format!(
                "{name} is not supported yet: kxy scans mysql (and MariaDB), postgresql and sqlite"
            )),
            _ => Err(format!(
                "unknown database type {name:?}: use mysql, postgresql or sqlite"
            )),
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            DbType::Mysql => 3306,
            DbType::Postgresql => 5432,
            DbType::Sqlite => 0,
        }
    }
}

/// How a connection uses TLS (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Prefer,
    Require,
    Verify,
}

/// Where and as whom to connect.
pub struct Target<'a> {
    /// Set on the session: a statement, or a wait for a lock, that takes
    /// longer fails (and fails only its table).
    pub query_timeout: Duration,
    pub db_type: DbType,
    pub host: &'a str,
    pub port: u16,
    /// The database name, or for SQLite the file path.
    pub db_name: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub tls: TlsMode,
    /// PEM certificates to verify the server's against, under `verify`.
    pub tls_ca: &'a str,
}

/// A table, and either its single integer key column or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The counter's table name: the table's name, or `schema.table` for a
    /// PostgreSQL table outside `public`.
    pub name: String,
    #[serde(skip)]
    pub(super) schema: Option<String>,
    #[serde(skip)]
    pub(super) table: String,
    pub key: Result<String, String>,
    /// A MariaDB system-versioned table: its history holds rows (and IDs)
    /// that plain queries do not show.
    #[serde(skip)]
    pub(super) history: bool,
    /// MySQL/MariaDB: the key column's `AUTO_INCREMENT` (the next value),
    /// read for every table with the catalog, not one query per table.
    #[serde(skip)]
    pub(super) auto_increment: Option<String>,
}

/// One catalog row: schema (PostgreSQL), table, number of key columns,
/// the first key column and its type.
type CatalogRow = (Option<String>, String, i64, Option<String>, Option<String>);
/// PostgreSQL's form of it, before normalizing, with the key column's
/// identity kind (`a` for `GENERATED ALWAYS`).
type PgCatalogRow = (
    String,
    String,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub enum Connection {
    Mysql(MySqlConnection),
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

fn integer_type(db_type: DbType, sql_type: &str) -> bool {
    let t = sql_type.to_ascii_lowercase();
    match db_type {
        DbType::Mysql => matches!(
            t.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        ),
        DbType::Postgresql => matches!(t.as_str(), "smallint" | "integer" | "bigint"),
        // SQLite's type affinity: any declared type containing INT.
        DbType::Sqlite => t.contains("int"),
    }
}

/// Decides whether a table can be numbered: one key column, an integer
/// type, and names a counter can hold.
fn classify(
    db_type: DbType,
    name: &str,
    key_columns: i64,
    column: Option<String>,
    sql_type: Option<String>,
) -> Result<String, String> {
    if Identifier::new(KeyPart::TableName, name).is_err() {
        return Err(format!(
            "the name {name:?} has characters a counter name cannot hold"
        ));
    }
    let (column, sql_type) = match (key_columns, column, sql_type) {
        (0, _, _) => return Err("no primary key".into()),
        (1, Some(c), Some(t)) => (c, t),
        (1, _, _) => return Err("the primary key column could not be read".into()),
        (n, _, _) => return Err(format!("composite primary key ({n} columns)")),
    };
    if !integer_type(db_type, &sql_type) {
        return Err(format!(
            "primary key {column} is {sql_type}, not an integer"
        ));
    }
    if Identifier::new(KeyPart::FieldName, &column).is_err() {
        return Err(format!(
            "the key column {column:?} has characters a counter name cannot hold"
        ));
    }
    Ok(column)
}

/// The counter's table part: the table's name, or `schema.table` outside
/// PostgreSQL's `public`.
fn counter_table_name(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(schema) if schema != "public" => format!("{schema}.{table}"),
        _ => table.to_owned(),
    }
}

pub(super) fn quote_mysql(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

pub(super) fn quote_ansi(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether a database error is one of the session bounds firing.
fn is_timeout(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    [
        "max_statement_time",
        "max_execution_time",
        "lock wait timeout",
        "lock timeout",
        "statement timeout",
    ]
    .iter()
    .any(|marker| error.contains(marker))
}

/// Bounds statements and lock waits of a MySQL/MariaDB session. MariaDB
/// and MySQL name the statement limit differently; a server that knows
/// neither still gets the lock-wait bounds.
async fn bound_mysql_session(connection: &mut MySqlConnection, timeout: Duration) {
    let seconds = timeout.as_secs().max(1);
    let locks =
        format!("SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}");
    let mariadb = format!(
        "SET SESSION max_statement_time = {}",
        timeout.as_secs_f64().max(0.001)
    );
    let mysql = format!(
        "SET SESSION max_execution_time = {}",
        timeout.as_millis().max(1)
    );
    for sql in [locks, mariadb, mysql] {
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *connection)
            .await
        {
            tracing::debug!("session bound not set: {e}");
        }
    }
}

/// Connects, with a timeout; the error names the cause, never the password.
pub async fn connect(target: &Target<'_>) -> Result<Connection, String> {
    let connecting = async {
        Ok::<_, sqlx::Error>(match target.db_type {
            DbType::Mysql => {
                let mut options = MySqlConnectOptions::new()
                    .host(target.host)
                    .port(target.port)
                    .username(target.username)
                    .database(target.db_name)
                    .ssl_mode(match target.tls {
                        TlsMode::Prefer => MySqlSslMode::Preferred,
                        TlsMode::Require => MySqlSslMode::Required,
                        TlsMode::Verify => MySqlSslMode::VerifyIdentity,
                    })
                    .disable_statement_logging();
                if !target.tls_ca.is_empty() {
                    options = options.ssl_ca_from_pem(target.tls_ca.as_bytes().to_vec());
                }
                // An empty password means none: sending "" is a different
                // login to MySQL ("using password: YES").
                if !target.password.is_empty() {
                    options = options.password(target.password);
                }
                let mut connection = options.connect().await?;
                bound_mysql_session(&mut connection, target.query_timeout).await;
                Connection::Mysql(connection)
            }
            DbType::Postgresql => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(target.host)
                    .port(target.port)
                    .username(target.username)
                    .database(target.db_name)
                    .ssl_mode(match target.tls {
                        TlsMode::Prefer => PgSslMode::Prefer,
                        TlsMode::Require => PgSslMode::Require,
                        TlsMode::Verify => PgSslMode::VerifyFull,
                    })
                    .disable_statement_logging();
                if !target.tls_ca.is_empty() {
                    options = options.ssl_root_cert_from_pem(target.tls_ca.as_bytes().to_vec());
                }
                if !target.password.is_empty() {
                    options = options.password(target.password);
                }
                let ms = target.query_timeout.as_millis().max(1).to_string();
                options = options.options([
                    ("statement_timeout", ms.as_str()),
                    ("lock_timeout", ms.as_str()),
                ]);
                Connection::Postgres(options.connect().await?)
            }
            DbType::Sqlite => {
                if !std::path::Path::new(target.db_name).is_file() {
                    return Err(sqlx::Error::Configuration(
                        format!("no SQLite file at {}", target.db_name).into(),
                    ));
                }
                let options = SqliteConnectOptions::new()
                    .filename(target.db_name)
                    .read_only(true)
                    .disable_statement_logging();
                Connection::Sqlite(options.connect().await?)
            }
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

impl Connection {
    /// Bounds this session's statements and lock waits by `timeout` (the
    /// bound set at connect time, or another one for a while).
    pub async fn bound(&mut self, timeout: Duration) {
        match self {
            Connection::Mysql(c) => bound_mysql_session(c, timeout).await,
            Connection::Postgres(c) => {
                let ms = timeout.as_millis().max(1);
                let sql = format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}");
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await {
                    tracing::debug!("session bound not set: {e}");
                }
            }
            Connection::Sqlite(_) => {}
        }
    }

    /// Every table, with its key column or why it cannot be numbered.
    pub async fn tables(&mut self, db_name: &str) -> Result<Vec<TableInfo>, sqlx::Error> {
        // PostgreSQL tables whose key is `GENERATED ALWAYS AS IDENTITY`.
        let mut always = std::collections::HashSet::new();
        // MariaDB system-versioned tables (their hidden `row_end` is part of
        // the primary key, and not a column COLUMNS lists: not counted).
        let mut versioned = std::collections::HashSet::new();
        // MySQL/MariaDB (table, auto-increment column) → its next value.
        let mut auto_increments = std::collections::HashMap::new();
        let rows: Vec<CatalogRow> = match self {
            Connection::Mysql(c) => {
                // The key columns as COLUMNS marks them (PRI): joining
                // KEY_COLUMN_USAGE instead took 3.4 s for 2,000 tables on
                // MariaDB, this 0.5 s. Without a primary key, MariaDB marks
                // the first NOT NULL unique key PRI: the table's key all the
                // same. A system-versioned table's hidden row_end is not
                // listed, so its key stays one column.
                let rows: Vec<CatalogRow> = sqlx::query_as(
                    "SELECT CAST(NULL AS CHAR), CAST(t.TABLE_NAME AS CHAR), COUNT(c.COLUMN_NAME), \
                            CAST(MIN(c.COLUMN_NAME) AS CHAR), CAST(MIN(c.DATA_TYPE) AS CHAR) \
                     FROM information_schema.TABLES t \
                     LEFT JOIN information_schema.COLUMNS c \
                       ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME \
                      AND c.COLUMN_KEY = 'PRI' \
                     WHERE t.TABLE_SCHEMA = ? \
                       AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
                     GROUP BY t.TABLE_NAME ORDER BY t.TABLE_NAME",
                )
                .bind(db_name)
                .fetch_all(&mut *c)
                .await?;
                // Without a primary key, a UNIQUE AUTO_INCREMENT column is
                // the table's key all the same.
                let unique_auto: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
                            CAST(DATA_TYPE AS CHAR) \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND COLUMN_KEY IN ('PRI', 'UNI') \
                       AND EXTRA LIKE '%auto_increment%'",
                )
                .bind(db_name)
                .fetch_all(&mut *c)
                .await?;
                let with_history: Vec<(String,)> = sqlx::query_as(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SYSTEM VERSIONED'",
                )
                .bind(db_name)
                .fetch_all(&mut *c)
                .await?;
                versioned.extend(with_history.into_iter().map(|(t,)| t));
                let counters: Vec<(String, String, Option<String>)> = sqlx::query_as(
                    "SELECT CAST(t.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), \
                            CAST(t.AUTO_INCREMENT AS CHAR) \
                     FROM information_schema.TABLES t \
                     JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA \
                      AND c.TABLE_NAME = t.TABLE_NAME AND c.EXTRA LIKE '%auto_increment%' \
                     WHERE t.TABLE_SCHEMA = ?",
                )
                .bind(db_name)
                .fetch_all(&mut *c)
                .await?;
                auto_increments.extend(
                    counters
                        .into_iter()
                        .filter_map(|(table, column, next)| Some(((table, column), next?))),
                );
                let mut rows: Vec<CatalogRow> = rows;
                for row in rows.iter_mut().filter(|r| r.2 == 0) {
                    if let Some((_, column, sql_type)) =
                        unique_auto.iter().find(|(table, _, _)| *table == row.1)
                    {
                        *row = (
                            None,
                            row.1.clone(),
                            1,
                            Some(column.clone()),
                            Some(sql_type.clone()),
                        );
                    }
                }
                rows
            }
            Connection::Postgres(c) => {
                let rows: Vec<PgCatalogRow> = sqlx::query_as(
                    "SELECT n.nspname::text, c.relname::text, array_length(con.conkey, 1), \
                            a.attname::text, format_type(a.atttypid, NULL), a.attidentity::text \
                     FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p' \
                     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1] \
                     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg\\_%' \
                     ORDER BY n.nspname, c.relname",
                )
                .fetch_all(c)
                .await?;
                rows.into_iter()
                    .map(|(schema, table, keys, column, sql_type, identity)| {
                        if identity.as_deref() == Some("a") {
                            always.insert((schema.clone(), table.clone()));
                        }
                        (
                            Some(schema),
                            table,
                            i64::from(keys.unwrap_or(0)),
                            column,
                            sql_type,
                        )
                    })
                    .collect()
            }
            Connection::Sqlite(c) => {
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                )
                .fetch_all(&mut *c)
                .await?;
                let mut rows = Vec::new();
                for (table,) in tables {
                    let columns: Vec<(String, String, i64)> =
                        sqlx::query_as("SELECT name, type, pk FROM pragma_table_info(?)")
                            .bind(&table)
                            .fetch_all(&mut *c)
                            .await?;
                    let keys: Vec<&(String, String, i64)> =
                        columns.iter().filter(|(_, _, pk)| *pk > 0).collect();
                    let first = keys
                        .first()
                        .map(|(name, sql_type, _)| (name.clone(), sql_type.clone()));
                    rows.push((
                        None,
                        table,
                        keys.len() as i64,
                        first.clone().map(|f| f.0),
                        first.map(|f| f.1),
                    ));
                }
                rows
            }
        };
        let db_type = self.db_type();
        // Counter names must name one table each: PostgreSQL's
        // `public."sales.orders"` and `sales.orders` would share one.
        let mut names: std::collections::HashMap<String, usize> = Default::default();
        for (schema, table, ..) in &rows {
            *names
                .entry(counter_table_name(schema.as_deref(), table))
                .or_default() += 1;
        }
        Ok(rows
            .into_iter()
            .map(|(schema, table, keys, column, sql_type)| {
                let name = counter_table_name(schema.as_deref(), &table);
                let mut key = classify(db_type, &name, keys, column, sql_type);
                if names[&name] > 1 {
                    key = Err(format!(
                        "another table's counter would also be named {name:?} (a table in \
                         public whose name holds a dot, beside a schema of that name): rename \
                         one of them"
                    ));
                }
                if let Ok(column) = &key
                    && always.contains(&(schema.clone().unwrap_or_default(), table.clone()))
                {
                    // It refuses explicit values: a kxy ID could not be
                    // inserted without OVERRIDING SYSTEM VALUE.
                    key = Err(format!(
                        "primary key {column} is GENERATED ALWAYS AS IDENTITY: the table \
                         refuses IDs it did not generate"
                    ));
                }
                TableInfo {
                    name,
                    history: versioned.contains(&table),
                    auto_increment: key
                        .as_ref()
                        .ok()
                        .and_then(|column| auto_increments.get(&(table.clone(), column.clone())))
                        .cloned(),
                    schema,
                    table,
                    key,
                }
            })
            .collect())
    }

    fn db_type(&self) -> DbType {
        match self {
            Connection::Mysql(_) => DbType::Mysql,
            Connection::Postgres(_) => DbType::Postgresql,
            Connection::Sqlite(_) => DbType::Sqlite,
        }
    }

    /// The largest key value of `table`: `Ok(None)` for an empty table,
    /// `Err` if it does not fit an ID (beyond 2^63−1).
    ///
    /// Identifiers cannot be bound as parameters, so the query is built
    /// with them quoted (`quote_mysql`/`quote_ansi` double any quote
    /// character inside), and the names come from the database's own
    /// catalog, not from a caller.
    pub async fn max_id(&mut self, table: &TableInfo) -> Result<Option<i64>, String> {
        let column = table.key.as_ref().map_err(Clone::clone)?;
        let max: Option<String> = match self {
            Connection::Mysql(c) => {
                let sql = format!(
                    "SELECT CAST(MAX({}) AS CHAR) FROM {}{}",
                    quote_mysql(column),
                    quote_mysql(&table.table),
                    if table.history {
                        " FOR SYSTEM_TIME ALL"
                    } else {
                        ""
                    }
                );
                // Unprepared (text protocol): each table's query is new, and
                // preparing thousands of one-off statements churned the
                // statement cache (2,000 tables took 88 s, most of it there).
                match sqlx::raw_sql(AssertSqlSafe(sql)).fetch_one(c).await {
                    Ok(row) => sqlx::Row::try_get::<Option<String>, _>(&row, 0),
                    Err(e) => Err(e),
                }
            }
            Connection::Postgres(c) => {
                let relation = format!(
                    "{}.{}",
                    quote_ansi(table.schema.as_deref().unwrap_or("public")),
                    quote_ansi(&table.table)
                );
                let sql = format!("SELECT MAX({})::text FROM {relation}", quote_ansi(column));
                sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(c).await
            }
            Connection::Sqlite(c) => {
                let sql = format!(
                    "SELECT CAST(MAX({}) AS TEXT) FROM {}",
                    quote_ansi(column),
                    quote_ansi(&table.table)
                );
                sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(c).await
            }
        }
        .map_err(|e| {
            let text = e.to_string();
            if is_timeout(&text) {
                format!(
                    "timed out reading MAX({column}) (--database-query-timeout): the table is \
                     locked or too slow: {text}"
                )
            } else {
                format!("cannot read MAX({column}): {text}")
            }
        })?;
        match max {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                // SQLite columns hold any value whatever their type.
                let integral = text
                    .strip_prefix('-')
                    .unwrap_or(&text)
                    .bytes()
                    .all(|b| b.is_ascii_digit());
                if integral && !text.is_empty() {
                    format!("its largest {column} ({text}) is beyond 2^63-1, the largest ID")
                } else {
                    format!("its largest {column} ({text}) is not an integer")
                }
            }),
        }
    }

    /// What the database says it is (`10.11.6-MariaDB`, `PostgreSQL 16.2`,
    /// `SQLite 3.45.1`): one cheap query.
    pub async fn server_version(&mut self) -> Result<String, String> {
        match self {
            Connection::Mysql(c) => {
                sqlx::query_scalar::<_, String>("SELECT CAST(VERSION() AS CHAR)")
                    .fetch_one(c)
                    .await
            }
            Connection::Postgres(c) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT 'PostgreSQL ' || current_setting('server_version')",
                )
                .fetch_one(c)
                .await
            }
            Connection::Sqlite(c) => {
                sqlx::query_scalar::<_, String>("SELECT 'SQLite ' || sqlite_version()")
                    .fetch_one(c)
                    .await
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Whether the connection still answers (after a table failed: was it
    /// the table, or the connection?).
    pub async fn ping(&mut self) -> Result<(), String> {
        use sqlx::Connection as _;
        match self {
            Connection::Mysql(c) => c.ping().await,
            Connection::Postgres(c) => c.ping().await,
            Connection::Sqlite(c) => c.ping().await,
        }
        .map_err(|e| e.to_string())
    }

    pub async fn close(self) {
        let _ = match self {
            Connection::Mysql(c) => c.close().await,
            Connection::Postgres(c) => c.close().await,
            Connection::Sqlite(c) => c.close().await,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_parsed_and_unsupported_ones_named() {
        assert_eq!(DbType::parse("MySQL"), Ok(DbType::Mysql));
        assert_eq!(DbType::parse("postgres"), Ok(DbType::Postgresql));
        assert!(
            DbType::parse("oracle")
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(
            DbType::parse("sqlserver")
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(
            DbType::parse("mongo")
                .unwrap_err()
                .contains("unknown database type")
        );
    }

    #[test]
    fn classification() {
        let ok = |keys, t: &str| {
            classify(
                DbType::Mysql,
                "orders",
                keys,
                Some("id".into()),
                Some(t.into()),
            )
        };
        assert_eq!(ok(1, "bigint"), Ok("id".into()));
        assert_eq!(
            ok(1, "varchar"),
            Err("primary key id is varchar, not an integer".into())
        );
        assert_eq!(
            ok(2, "int"),
            Err("composite primary key (2 columns)".into())
        );
        assert_eq!(
            classify(DbType::Mysql, "t", 0, None, None),
            Err("no primary key".into())
        );
        assert!(
            classify(
                DbType::Mysql,
                "bad name",
                1,
                Some("id".into()),
                Some("int".into())
            )
            .is_err()
        );
        assert_eq!(
            classify(
                DbType::Sqlite,
                "t",
                1,
                Some("id".into()),
                Some("INTEGER".into())
            ),
            Ok("id".into())
        );
        assert_eq!(quote_mysql("a`b"), "`a``b`");
        assert_eq!(quote_ansi("a\"b"), "\"a\"\"b\"");
    }
}
