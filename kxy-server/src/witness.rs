//! The witness: a small journal of high-water marks on the instance's disk.
//!
//! An instance keeps its [`crate::high_water`] marks in memory, so a freshly
//! started instance on a store that went backwards would have nothing to
//! compare with. The witness file remembers the marks across restarts. It is
//! written off the hot path (about once a second, when marks moved), so it
//! may lag the latest allocations by that much: it catches a rollback that
//! reaches further back than its last write, which the snapshot and backup
//! rollbacks it exists for do.
//!
//! One file per store (`witness-<store id>.json` under the data directory):
//! marks of one store mean nothing for another. Instances sharing a data
//! directory share the file; each write merges under a file lock, keeping
//! the highest mark of each counter, so no instance lowers another's.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

/// The witness files of one data directory.
#[derive(Debug, Clone)]
pub struct Witness {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct Journal {
    store_id: String,
    /// Counter storage name → highest ID handed out.
    counters: BTreeMap<String, i64>,
}

impl Witness {
    pub fn new(dir: &Path) -> Self {
        Witness {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, store_id: &str) -> PathBuf {
        self.dir.join(format!("witness-{store_id}.json"))
    }

    /// The marks recorded for `store_id`; none if there is no file yet.
    pub fn load(&self, store_id: &str) -> Result<Vec<(SegmentKey, i64)>, String> {
        let journal = self.read(store_id)?;
        let mut marks = Vec::with_capacity(journal.counters.len());
        for (name, mark) in journal.counters {
            match SegmentKey::from_storage_name(&name) {
                Ok(key) => marks.push((key, mark)),
                Err(e) => tracing::warn!("witness: skipping unreadable counter {name:?}: {e}"),
            }
        }
        Ok(marks)
    }

    fn read(&self, store_id: &str) -> Result<Journal, String> {
        let path = self.path(store_id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("witness {} is unreadable: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
            Err(e) => Err(format!("cannot read witness {}: {e}", path.display())),
        }
    }

    /// Merges `marks` into the file of `store_id` (highest mark wins),
    /// durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, store_id: &str, marks: &[(SegmentKey, i64)]) -> Result<(), String> {
        let io = |what: &str, e: std::io::Error| format!("witness: cannot {what}: {e}");
        fs::create_dir_all(&self.dir).map_err(|e| io("create the data directory", e))?;
        // A separate lock file: the journal itself is replaced by rename.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("witness.lock"))
            .map_err(|e| io("open witness.lock", e))?;
        lock.lock().map_err(|e| io("lock witness.lock", e))?;
        let mut journal = self.read(store_id)?;
        journal.store_id = store_id.to_owned();
        for (key, mark) in marks {
            let slot = journal.counters.entry(key.storage_name()).or_insert(*mark);
            *slot = (*slot).max(*mark);
        }
        let bytes = serde_json::to_vec_pretty(&journal).map_err(|e| e.to_string())?;
        let path = self.path(store_id);
        let temporary = path.with_extension("json.tmp");
        let mut file = File::create(&temporary).map_err(|e| io("create", e))?;
        file.write_all(&bytes).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        fs::rename(&temporary, &path).map_err(|e| io("rename", e))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("fsync the data directory", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_and_merge_upwards() {
        let dir = tempfile::tempdir().unwrap();
        let witness = Witness::new(dir.path());
        let a = SegmentKey::new("s", "d", "a", "id").unwrap();
        let b = SegmentKey::new("s", "d", "b", "id").unwrap();
        assert_eq!(witness.load("store1").unwrap(), vec![]);
        witness.save("store1", &[(a.clone(), 100)]).unwrap();
        // Another instance sharing the directory saves a lower mark of a
        // and a mark of b: a keeps the higher one.
        witness
            .save("store1", &[(a.clone(), 50), (b.clone(), 7)])
            .unwrap();
        assert_eq!(
            witness.load("store1").unwrap(),
            vec![(a.clone(), 100), (b, 7)]
        );
        assert_eq!(
            witness.load("store2").unwrap(),
            vec![],
            "marks are per store"
        );
        fs::write(dir.path().join("witness-store1.json"), "{not json").unwrap();
        assert!(witness.load("store1").unwrap_err().contains("unreadable"));
    }
}
