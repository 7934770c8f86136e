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
        DatabasesCommand::Scan => {
            let found = databases.scan_once().await?;
            println!("{found} new tables discovered");
        }
    }
    Ok(())
}
