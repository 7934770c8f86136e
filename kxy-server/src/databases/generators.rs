//! The database's own ID generators, which a counter must start above.
//!
//! `MAX(id)` is not the highest ID a table's rows may get: MariaDB/MySQL
//! `AUTO_INCREMENT` never goes back (rows 1–10 inserted and 5–10 deleted
//! leave `MAX` at 4 and the next default at 11), a PostgreSQL sequence or
//! identity may stand far ahead of the rows (rolled-back inserts, or
//! `setval`), and SQLite `AUTOINCREMENT` keeps its own high mark. A kxy ID
//! at or below what the database itself will hand out next collides the
//! moment another writer relies on the default, so initialization starts
//! each counter at the greatest of `MAX(id)` and the generator's *next*
//! value: every kxy ID is above anything the table holds or its generator
//! has handed out or is about to.

use sqlx::AssertSqlSafe;

use super::drivers::{Connection, TableInfo, quote_ansi};

/// Where a table's generator stands: the value it hands out next, and
/// what it is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub next: i64,
    pub source: &'static str,
}

impl Connection {
    /// Why the account may not see every table of `db_name`, if so.
    /// MySQL/MariaDB list only the tables an account holds a privilege on,
    /// so a table it cannot read is not "skipped": it is missing. Without
    /// SELECT on the whole database (or globally) that is possible, and
    /// the report says so. PostgreSQL lists every table whatever the
    /// privileges (an unreadable one is skipped with the reason).
    pub async fn schema_visibility(&mut self, db_name: &str) -> Option<String> {
        let Connection::Mysql(c) = self else {
            return None;
        };
        let grants: Result<i64, _> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES \
                     WHERE PRIVILEGE_TYPE = 'SELECT') \
                  + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES \
                     WHERE PRIVILEGE_TYPE = 'SELECT' AND ? LIKE TABLE_SCHEMA)",
        )
        .bind(db_name)
        .fetch_one(&mut *c)
        .await;
        match grants {
            Ok(0) => Some(format!(
                "the account has no SELECT on all of {db_name}: MySQL/MariaDB list only the \
                 tables it holds privileges on, so tables it cannot see are missing from this \
                 report (and have no counter); grant SELECT ON {db_name}.* to see them all"
            )),
            Ok(_) => None,
            Err(e) => Some(format!("cannot tell whether every table is visible: {e}")),
        }
    }

    /// The table's own generator on its key column, if it has one; `Err`
    /// if it cannot be read or stands beyond 2^63−1 (the table cannot take
    /// kxy IDs safely then).
    pub async fn own_generator(&mut self, table: &TableInfo) -> Result<Option<Generated>, String> {
        let column = table.key.as_ref().map_err(Clone::clone)?;
        let read = |e: sqlx::Error| format!("cannot read the generator of {column}: {e}");
        let (next_or_last, source, is_next): (Option<String>, _, _) = match self {
            Connection::Mysql(_) => {
                // AUTO_INCREMENT is the *next* value, and counts only when it
                // belongs to the key column; the catalog read it for every
                // table at once (a query per table costs ~40 ms on MariaDB).
                (table.auto_increment.clone(), "auto_increment", true)
            }
            Connection::Postgres(c) => {
                // Serial and identity columns both own a sequence; its last
                // value is NULL until it first hands one out.
                let relation = format!(
                    "{}.{}",
                    quote_ansi(table.schema.as_deref().unwrap_or("public")),
                    quote_ansi(&table.table)
                );
                let last = sqlx::query_scalar(
                    "SELECT pg_sequence_last_value(s::regclass)::text \
                     FROM pg_get_serial_sequence($1, $2) AS s WHERE s IS NOT NULL",
                )
                .bind(&relation)
                .bind(column)
                .fetch_optional(&mut *c)
                .await
                .map_err(read)?
                .flatten();
                (last, "sequence", false)
            }
            Connection::Sqlite(c) => {
                // Only AUTOINCREMENT tables have a row here; the table
                // itself exists only once one was created.
                let sql = "SELECT CAST(seq AS TEXT) FROM sqlite_sequence WHERE name = ?";
                let last = match sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(&table.table)
                    .fetch_optional(&mut *c)
                    .await
                {
                    Ok(last) => last.flatten(),
                    Err(_) => None,
                };
                (last, "sqlite_sequence", false)
            }
        };
        let Some(text) = next_or_last else {
            return Ok(None);
        };
        let value: i128 = text
            .parse()
            .map_err(|_| format!("its {source} ({text}) is not an integer"))?;
        let next = if is_next { value } else { value + 1 };
        let next = i64::try_from(next)
            .map_err(|_| format!("its {source} ({text}) is beyond 2^63-1, the largest ID"))?;
        Ok(Some(Generated { next, source }))
    }
}
