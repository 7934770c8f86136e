//! `kxy-server counters ...`: register, raise and list counters.

use kxy_core::SegmentKey;
use serde::Serialize;

use super::{CounterAdd, CounterRaise};
use crate::Error;
use crate::segments::SegmentService;
use crate::store::Registration;

pub(super) async fn add_counter(segments: &SegmentService, add: &CounterAdd) -> Result<(), Error> {
    let key = add.name.key()?;
    let registration = segments.register(&key, add.start).await?;
    print_registration(&key, add.start, registration);
    Ok(())
}

pub(super) async fn raise_counter(
    segments: &SegmentService,
    raise: &CounterRaise,
) -> Result<(), Error> {
    let key = raise.name.key()?;
    let registration = segments.raise(&key, raise.to).await?;
    print_registration(&key, raise.to, registration);
    Ok(())
}

fn print_registration(key: &SegmentKey, start: i64, registration: Registration) {
    let next = |current: i64| current.saturating_add(1);
    match registration {
        Registration::Created => println!(
            "registered {key} at {start}; the first ID handed out will be {}",
            next(start)
        ),
        Registration::Raised { from } => println!(
            "raised {key} from {from} to {start}; the next ID handed out will be {}",
            next(start)
        ),
        Registration::Unfenced { floor } => println!(
            "raised {key} to {start} and lifted its fence (floor {floor}); the next ID handed \
             out will be {}",
            next(start)
        ),
        Registration::Unchanged { current } => println!(
            "{key} already stands at {current} (next ID {}); left unchanged, \
             because counters never move backwards",
            next(current)
        ),
    }
}

#[derive(Serialize)]
struct CounterRow<'a> {
    system_code: &'a str,
    db_name: &'a str,
    table_name: &'a str,
    field_name: &'a str,
    current: i64,
    next_id: Option<i64>,
    /// Refuses to allocate until raised to at least `current`.
    fenced: bool,
}

pub(super) async fn list_counters(segments: &SegmentService, json: bool) -> Result<(), Error> {
    let counters = segments.counters().await?;
    let rows: Vec<CounterRow> = counters
        .iter()
        .map(|c| CounterRow {
            system_code: c.key.system_code(),
            db_name: c.key.db_name(),
            table_name: c.key.table_name(),
            field_name: c.key.field_name(),
            current: c.current,
            next_id: c.current.checked_add(1).filter(|_| !c.fenced),
            fenced: c.fenced,
        })
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::Startup(format!("cannot write JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if rows.is_empty() {
        println!("no counters registered");
        return Ok(());
    }
    let width = counters
        .iter()
        .map(|c| c.key.storage_name().len())
        .max()
        .unwrap_or(0)
        .max("COUNTER".len());
    println!(
        "{:<width$}  {:>20}  {:>20}",
        "COUNTER", "CURRENT", "NEXT ID"
    );
    for (counter, row) in counters.iter().zip(&rows) {
        let next = match row.next_id {
            Some(n) => n.to_string(),
            None if row.fenced => "FENCED: raise it".to_owned(),
            None => "exhausted".to_owned(),
        };
        println!(
            "{:<width$}  {:>20}  {:>20}",
            counter.key.storage_name(),
            row.current,
            next
        );
    }
    Ok(())
}
