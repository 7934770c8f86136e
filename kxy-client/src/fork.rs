//! Forked processes: a child must never hand out its parent's cached IDs.
//!
//! After `fork`, parent and child hold copies of the same buffered segments;
//! if both used them, IDs would repeat. A child also inherits the background
//! runtime's memory without its threads, HTTP connections shared with the
//! parent, and every lock exactly as it was: a lock held by a parent thread
//! at the moment of the fork stays held forever in the child, because the
//! thread that would release it does not exist there.
//!
//! So kxy-client counts forks. The first client created in a process
//! registers, with `pthread_atfork`, a child handler that does one thing:
//! it adds one to a global *fork generation*. That is an atomic add, which
//! is async-signal-safe, the only kind of work POSIX allows between `fork`
//! and `exec` in a multi-threaded process. Every piece of per-process state
//! (a generator's cache, a client's HTTP connections and store pins, the
//! high-water registry, the background runtime) remembers the generation it
//! was built in and, when it finds a newer one, starts over: it builds a
//! fresh value and *leaks* the parent's, never dropping it and never waiting
//! on its locks. State that is worth keeping (store pins, high-water marks)
//! is copied only if its lock is free, which proves no parent thread was
//! changing it when the process forked.
//!
//! This works without anyone's help: a Rust or C host that forks, or a
//! Python program that forks without `os.register_at_fork` hooks, gets the
//! same guarantee. The hot path pays one relaxed load of the generation.
//! [`after_fork_in_child`] remains for callers that fork in a way that
//! bypasses `pthread_atfork` handlers (a raw `clone` system call); the
//! Python package calls it from its own fork hook as a second line.

use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// How many forks separate this process from the one that loaded
/// kxy-client. Only ever incremented, by the child handler (or by
/// [`after_fork_in_child`]). Every `next_id` reads it, so it has a cache
/// line of its own: a write to a neighbouring static would otherwise make
/// every core fetch the line again.
static GENERATION: CacheLine<AtomicU64> = CacheLine(AtomicU64::new(0));

#[repr(align(64))]
struct CacheLine<T>(T);

static WATCH_FORKS: Once = Once::new();

/// The `pthread_atfork` child handler: runs in the child, in the thread that
/// called `fork`, before `fork` returns there.
extern "C" fn count_fork_in_child() {
    // An atomic add is async-signal-safe; nothing else may happen here.
    GENERATION.0.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler, once per process. Called whenever
/// per-process state is created (a client, the runtime, the registry), so
/// it has run before any segment can be cached.
pub(crate) fn watch_forks() {
    WATCH_FORKS.call_once(|| {
        // SAFETY: registers a handler that only performs an atomic add.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
        if rc != 0 {
            tracing::warn!(
                "pthread_atfork failed ({rc}): a forked child must call \
                 kxy_client::fork::after_fork_in_child before using kxy"
            );
        }
    });
}

/// The current fork generation (see the module docs).
#[inline]
pub fn generation() -> u64 {
    // Relaxed is enough: the value changes only in a child's single thread
    // before that process starts any other, and thread creation orders it
    // before everything those threads do.
    GENERATION.0.load(Ordering::Relaxed)
}

/// Declares this process a forked child, as the `pthread_atfork` handler
/// does by itself: every generator, client, the registry and the runtime
/// start over on their next use. Call it only in a forked child, before any
/// other thread uses kxy (the Python package calls it from its
/// `os.register_at_fork` hook). Calling it when the handler already ran
/// only starts over once more, which costs the cached IDs and nothing else.
pub fn after_fork_in_child() {
    GENERATION.0.fetch_add(1, Ordering::Relaxed);
}

/// A value that belongs to one process: read without locks, replaced (and
/// the old value leaked) on first use after a fork.
///
/// Readers get `&T` for as long as the `PerProcess` lives. That is sound
/// because a replaced value is never freed: only the value of the current
/// generation is dropped with the `PerProcess`.
pub(crate) struct PerProcess<T> {
    current: AtomicPtr<Tagged<T>>,
}

struct Tagged<T> {
    generation: u64,
    value: T,
}

impl<T> PerProcess<T> {
    /// Empty until the first [`PerProcess::get`], which builds the value
    /// (for statics).
    pub(crate) const fn empty() -> Self {
        PerProcess {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn new(value: T) -> Self {
        watch_forks();
        PerProcess {
            current: AtomicPtr::new(Box::into_raw(Box::new(Tagged {
                generation: generation(),
                value,
            }))),
        }
    }

    /// The value of this process. If there is none yet, or the one there
    /// was built before a fork, `build` makes one from the parent's value
    /// (`None` if there was none); `build` must not take the parent's locks
    /// except with `try_lock`.
    #[inline]
    pub(crate) fn get(&self, build: impl FnOnce(Option<&T>) -> T) -> &T {
        let seen = self.current.load(Ordering::Acquire);
        // SAFETY: non-null pointers stored here come from Box::into_raw and
        // are freed only in Drop (see the type docs).
        if let Some(tagged) = unsafe { seen.as_ref() }
            && tagged.generation == generation()
        {
            return &tagged.value;
        }
        self.replace(seen, build)
    }

    #[cold]
    fn replace(&self, mut seen: *mut Tagged<T>, build: impl FnOnce(Option<&T>) -> T) -> &T {
        watch_forks();
        let now = generation();
        // SAFETY: as in `get`.
        let old = unsafe { seen.as_ref() }.map(|t| &t.value);
        let fresh = Box::into_raw(Box::new(Tagged {
            generation: now,
            value: build(old),
        }));
        loop {
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The old value, if any, is leaked on purpose.
                // SAFETY: `fresh` is now owned by `self` and never freed
                // while `self` is borrowed.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(winner) => {
                    // SAFETY: as in `get`.
                    let winner_ref = unsafe { &*winner };
                    if winner_ref.generation == now {
                        // Another thread of this process got there first;
                        // ours was never shared and was built here.
                        // SAFETY: `fresh` came from Box::into_raw above.
                        drop(unsafe { Box::from_raw(fresh) });
                        return &winner_ref.value;
                    }
                    seen = winner;
                }
            }
        }
    }
}

impl<T> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        // SAFETY: as in `get`; `&mut self` means no reader remains.
        if let Some(tagged) = unsafe { current.as_ref() }
            && tagged.generation == generation()
        {
            // SAFETY: built in this process and owned by `self`.
            drop(unsafe { Box::from_raw(current) });
        }
        // A value from before a fork is leaked: dropping it could wait on
        // locks or threads of the parent.
    }
}

/// A copy of `parent`'s contents for a forked child, or `T::default()` when
/// its lock is held (a parent thread was changing it at the fork, so it may
/// be half-written; its lock will never be released in this process).
pub(crate) fn inherit<T: Clone + Default>(
    parent: Option<&std::sync::Mutex<T>>,
) -> std::sync::Mutex<T> {
    let copied = parent
        .and_then(|lock| match lock.try_lock() {
            Ok(guard) => Some(guard.clone()),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().clone()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
        .unwrap_or_default();
    std::sync::Mutex::new(copied)
}

/// Unit tests that advance the process's fork generation hold the write
/// side; tests whose per-process state must not be renewed under them hold
/// the read side.
#[cfg(test)]
pub(crate) static GENERATION_TESTS: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// Counts drops, to see which values are freed and which leaked.
    struct Counted<'a>(u32, &'a AtomicUsize);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_new_generation_replaces_the_value_and_leaks_the_old() {
        let _bumping = GENERATION_TESTS.write();
        let drops = AtomicUsize::new(0);
        let value = PerProcess::new(Counted(1, &drops));
        assert_eq!(value.get(|_| unreachable!("same process")).0, 1);

        after_fork_in_child();
        let renewed = value.get(|parent| Counted(parent.expect("had a value").0 + 1, &drops));
        assert_eq!(renewed.0, 2);
        // Built once per generation: later reads return the same value.
        assert_eq!(value.get(|_| unreachable!("already renewed")).0, 2);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the parent's value leaked");
        drop(value);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the current value is freed"
        );
    }

    #[test]
    fn an_empty_value_is_built_on_first_use() {
        let _stable = GENERATION_TESTS.read();
        let value: PerProcess<u32> = PerProcess::empty();
        assert_eq!(*value.get(|parent| parent.map_or(7, |p| p + 1)), 7);
        assert_eq!(*value.get(|_| unreachable!("built")), 7);
    }

    #[test]
    fn a_child_copies_unlocked_state_and_drops_locked_state() {
        let free = Mutex::new(vec![1, 2, 3]);
        assert_eq!(*inherit(Some(&free)).lock().unwrap(), vec![1, 2, 3]);
        let held = Mutex::new(vec![1, 2, 3]);
        let _guard = held.lock().unwrap();
        assert!(inherit(Some(&held)).lock().unwrap().is_empty());
        assert!(inherit::<Vec<i32>>(None).lock().unwrap().is_empty());
    }

    #[test]
    fn the_fork_handler_counts_forks() {
        let _bumping = GENERATION_TESTS.write();
        watch_forks();
        let before = generation();
        count_fork_in_child();
        assert!(generation() > before);
    }
}
