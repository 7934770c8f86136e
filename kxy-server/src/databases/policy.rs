//! Where a registered database may point (issue 11, point 15).
//!
//! Registering a database makes the server connect somewhere and read
//! catalogs, so the operator bounds it:
//!
//! - SQLite files are read from the server's own disk, so SQLite is off
//!   unless `--sqlite-dir` names a directory; a path (absolute, or relative
//!   to that directory) must resolve, after following symlinks, to a file
//!   inside it. `..` is refused outright. The check runs again each time the
//!   file is opened: a file swapped for a symlink later is refused too.
//! - `--database-hosts` (optional) lists the hosts, or `host:port`s, the
//!   server may connect to. Hosts are compared as written (no DNS), case
//!   aside; the default allows any.

use std::path::{Component, Path, PathBuf};

use crate::Error;

/// The operator's limits on registered databases.
#[derive(Debug, Clone, Default)]
pub struct DatabasePolicy {
    /// The canonical SQLite directory; `None` refuses SQLite.
    sqlite_dir: Option<PathBuf>,
    /// Allowed `(host, port)`s (`None`: any port); `None`: any host.
    hosts: Option<Vec<(String, Option<u16>)>>,
    /// The longest one query may run or wait for a lock; `None`: the
    /// default, [`DEFAULT_QUERY_TIMEOUT`].
    query_timeout: Option<std::time::Duration>,
    /// Added to every start initialization computes (room for writers
    /// that use the database's own default while kxy takes over).
    start_margin: i64,
}

/// How long one query of a scan may take by default: a table held under
/// an exclusive lock must not hold up the whole run.
pub const DEFAULT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `host`, `host:port` or `[v6]:port` → (host, port if given).
///
/// A bare IPv6 address (`::1`) is a host without a port. Refused: user
/// info (`user:pw@host`), port 0 or a signed one (`+3306`), a host that
/// looks like an option (`-h`), a path (a Unix socket: the drivers would
/// read it as one) and characters no host name or address has.
pub(super) fn split_address(address: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        match tail {
            "" => (host, None),
            _ => (host, Some(tail.strip_prefix(':')?)),
        }
    } else if address.matches(':').count() > 1 {
        (address, None)
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let port = match port {
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>().ok()? {
            0 => return None,
            port => Some(port),
        },
        Some(_) => return None,
        None => None,
    };
    let host_chars = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if host.is_empty() || host.len() > 255 || host.starts_with('-') || !host_chars {
        return None;
    }
    Some((host.to_owned(), port))
}

impl DatabasePolicy {
    /// The same policy with statement and lock waits bounded by `timeout`.
    pub fn with_query_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.query_timeout = Some(timeout);
        self
    }

    /// The same policy with `margin` added to each initialized start.
    pub fn with_start_margin(mut self, margin: i64) -> Self {
        self.start_margin = margin;
        self
    }

    pub fn start_margin(&self) -> i64 {
        self.start_margin
    }

    pub fn query_timeout(&self) -> std::time::Duration {
        self.query_timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT)
    }

    /// `sqlite_dir` must exist (it is canonicalized here, once); `hosts` are
    /// `host` or `host:port` entries, blanks ignored.
    pub fn new(sqlite_dir: Option<&Path>, hosts: &[String]) -> Result<Self, Error> {
        let sqlite_dir = sqlite_dir
            .map(|dir| {
                dir.canonicalize()
                    .ok()
                    .filter(|d| d.is_dir())
                    .ok_or_else(|| {
                        Error::Startup(format!(
                            "--sqlite-dir {}: not an existing directory",
                            dir.display()
                        ))
                    })
            })
            .transpose()?;
        let entries: Vec<&str> = hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect();
        let hosts = if entries.is_empty() {
            None
        } else {
            Some(
                entries
                    .iter()
                    .map(|entry| {
                        split_address(entry)
                            .map(|(host, port)| (host.to_ascii_lowercase(), port))
                            .ok_or_else(|| {
                                Error::Startup(format!(
                                    "--database-hosts: {entry:?} is not host or host:port"
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        Ok(DatabasePolicy {
            sqlite_dir,
            hosts,
            query_timeout: None,
            start_margin: 0,
        })
    }

    /// Refuses a host the allow-list does not name.
    pub(super) fn check_host(&self, host: &str, port: u16) -> Result<(), Error> {
        let Some(allowed) = &self.hosts else {
            return Ok(());
        };
        let host = host.to_ascii_lowercase();
        if allowed
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| p == port))
        {
            return Ok(());
        }
        Err(Error::invalid(
            "address",
            &format!(
                "{host}:{port} is not among the hosts this server may connect to (--database-hosts)"
            ),
        ))
    }

    /// The file a SQLite `db_name` names, if it is inside `--sqlite-dir`.
    pub(super) fn sqlite_file(&self, db_name: &str) -> Result<PathBuf, Error> {
        let Some(dir) = &self.sqlite_dir else {
            return Err(Error::invalid(
                "db_name",
                "SQLite databases are disabled on this server: start kxy-server with \
                 --sqlite-dir (or KXY_SQLITE_DIR) naming the directory of the files it may read",
            ));
        };
        let outside = || {
            Error::invalid(
                "db_name",
                "the SQLite file must be an existing file inside the directory given by \
                 --sqlite-dir (no \"..\", no symlink leading out)",
            )
        };
        let path = Path::new(db_name);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let file = dir.join(path).canonicalize().map_err(|_| outside())?;
        if !file.starts_with(dir) || !file.is_file() {
            return Err(outside());
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_hosts() {
        assert_eq!(split_address("db:3307"), Some(("db".into(), Some(3307))));
        assert_eq!(
            split_address("[::1]:5432"),
            Some(("::1".into(), Some(5432)))
        );
        assert_eq!(split_address("[::1]"), Some(("::1".into(), None)));
        for bad in ["", "db:x", "db:70000", "a b:1", "[::1]x"] {
            assert!(split_address(bad).is_none(), "{bad}");
        }
        let policy =
            DatabasePolicy::new(None, &["127.0.0.1:5432".into(), " DB.internal ".into()]).unwrap();
        assert!(policy.check_host("127.0.0.1", 5432).is_ok());
        assert!(policy.check_host("127.0.0.1", 3306).is_err());
        assert!(policy.check_host("db.INTERNAL", 1).is_ok());
        assert!(policy.check_host("db.internal.evil", 1).is_err());
        assert!(DatabasePolicy::default().check_host("anything", 1).is_ok());
        assert!(DatabasePolicy::new(None, &["a b".into()]).is_err());
    }

    #[test]
    fn sqlite_is_off_by_default_and_confined() {
        let err = DatabasePolicy::default()
            .sqlite_file("/tmp/x.db")
            .unwrap_err();
        assert!(err.to_string().contains("--sqlite-dir"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.db"), b"").unwrap();
        let policy = DatabasePolicy::new(Some(dir.path()), &[]).unwrap();
        assert!(policy.sqlite_file("a.db").is_ok());
        assert!(policy.sqlite_file("../a.db").is_err());
        assert!(policy.sqlite_file("/etc/passwd").is_err());
        assert!(policy.sqlite_file("missing.db").is_err());
    }
}
