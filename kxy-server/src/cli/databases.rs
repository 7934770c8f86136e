//! `kxy-server databases ...`: list, initialize and scan registered databases.

use super::DatabasesCommand;
use crate::Error;
use crate::databases::DatabaseService;

pub(super) async fn run_databases(
    databases: &DatabaseService,
    command: DatabasesCommand,
) -> Result<(), Error> {
    match command {
        DatabasesCommand::List => {
            for db in databases.list().await? {
                println!(
                    "{}  {:<10}  {:<24}  {}  (counters as {}:{})",
                    db.guid,
                    db.db_type.to_string(),
                    db.address,
                    db.db_name,
                    db.system_code,
                    db.counter_db_name
                );
            }
        }
        DatabasesCommand::Initialize { guid } => {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} tables  {elapsed}")
                    .expect("a valid template"),
            );
            let report = databases
                .initialize(&guid, |done, total, _| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await;
            bar.finish_and_clear();
            let report = report?;
            for r in &report.registered {
                println!(
                    "registered {}.{}: next ID {} ({})",
                    r.table, r.field, r.next_id, r.outcome
                );
            }
            for s in &report.skipped {
                println!("skipped {}: {}", s.table, s.reason);
            }
            println!(
                "{} of {} tables registered, {} skipped",
                report.registered.len(),
                report.tables_total,
                report.skipped.len()
            );
            for warning in &report.warnings {
                println!("warning: {warning}");
            }
            if let Some(cause) = report.failed {
                return Err(Error::Database(format!("initializing stopped: {cause}")));
            }
        }
        DatabasesCommand::ImportSeed { from, prefix } => {
            let (imported, skipped) = import_seed(databases, &from, &prefix).await?;
            println!("{imported} databases imported, {skipped} skipped");
        }
        DatabasesCommand::Scan => {
            let found = databases.scan_once().await?;
            println!("{found} new tables discovered");
        }
    }
    Ok(())
}

/// Reads every `{prefix}:db_config:{guid}` of the seed's Redis and imports
/// it (see `databases::seed_import`); prints each outcome.
async fn import_seed(
    databases: &DatabaseService,
    url: &str,
    prefix: &str,
) -> Result<(usize, usize), Error> {
    use crate::databases::Imported;
    use crate::store::redis_url;
    let shown = redis_url::display(url);
    let failed = |e: redis::RedisError| {
        Error::Startup(format!(
            "cannot read the seed's Redis at {shown}: {}",
            redis_url::scrub(&e.to_string(), url)
        ))
    };
    let client = redis::Client::open(url).map_err(failed)?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(failed)?;
    let pattern = format!("{prefix}:db_config:*");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    let (mut imported, mut skipped) = (0, 0);
    for key in keys {
        let guid = key
            .trim_start_matches(&format!("{prefix}:db_config:"))
            .to_owned();
        let json: Result<Option<String>, _> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await;
        let outcome = match json {
            Ok(Some(json)) => databases.import_seed(&guid, &json).await,
            Ok(None) => continue,
            Err(e) => Imported::Skipped(format!("cannot read it: {e}")),
        };
        match outcome {
            Imported::Registered(new_guid) => {
                imported += 1;
                let set = format!("{prefix}:discovered_tables:{guid}");
                let tables: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&set)
                    .query_async(&mut connection)
                    .await
                    .unwrap_or_default();
                let discovered = databases.import_seed_discovered(&new_guid, &tables).await?;
                println!("imported {key} as {new_guid} ({discovered} discovered tables)");
            }
            Imported::Skipped(reason) => {
                skipped += 1;
                println!("skipped {key}: {reason}");
            }
        }
    }
    Ok((imported, skipped))
}
