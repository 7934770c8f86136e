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
    /// The store's epoch the marks were last compared with it under
    /// (docs/continuity.md); absent in journals of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<String>,
    /// Counter storage name → highest ID handed out.
    counters: BTreeMap<String, i64>,
}

/// What a witness remembers of one store.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remembered {
    /// Per counter, the highest ID handed out.
    pub marks: Vec<(SegmentKey, i64)>,
    /// The epoch the marks were applied to the store under, if known.
    pub epoch: Option<String>,
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

    /// What is recorded for `store_id`; nothing if there is no file yet. A
    /// file that cannot be read or parsed is an error, never "nothing".
    pub fn load(&self, store_id: &str) -> Result<Remembered, String> {
        let journal = self.read(store_id)?;
        let mut marks = Vec::with_capacity(journal.counters.len());
        for (name, mark) in journal.counters {
            let key = SegmentKey::from_storage_name(&name).map_err(|e| {
                format!(
                    "witness {} names a counter kxy cannot read ({name:?}: {e})",
                    self.path(store_id).display()
                )
            })?;
            marks.push((key, mark));
        }
        Ok(Remembered {
            marks,
            epoch: journal.epoch,
        })
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
    pub fn save(
        &self,
        store_id: &str,
        epoch: Option<&str>,
        marks: &[(SegmentKey, i64)],
    ) -> Result<(), String> {
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
        if epoch.is_some() {
            journal.epoch = epoch.map(str::to_owned);
        }
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
        assert_eq!(witness.load("store1").unwrap(), Remembered::default());
        witness
            .save("store1", Some("e1"), &[(a.clone(), 100)])
            .unwrap();
        // Another instance sharing the directory saves a lower mark of a
        // and a mark of b: a keeps the higher one.
        witness
            .save("store1", None, &[(a.clone(), 50), (b.clone(), 7)])
            .unwrap();
        assert_eq!(
            witness.load("store1").unwrap(),
            Remembered {
                marks: vec![(a.clone(), 100), (b, 7)],
                epoch: Some("e1".into()),
            }
        );
        assert_eq!(
            witness.load("store2").unwrap(),
            Remembered::default(),
            "marks are per store"
        );
    }

    #[test]
    fn an_unreadable_witness_is_an_error_not_an_empty_memory() {
        let dir = tempfile::tempdir().unwrap();
        let witness = Witness::new(dir.path());
        fs::write(dir.path().join("witness-store1.json"), "{not json").unwrap();
        assert!(witness.load("store1").unwrap_err().contains("unreadable"));
        fs::write(
            dir.path().join("witness-store1.json"),
            r#"{"store_id":"store1","counters":{"a:b":5}}"#,
        )
        .unwrap();
        assert!(witness.load("store1").unwrap_err().contains("cannot read"));
    }
}
