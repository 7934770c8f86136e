//! `Swap<T>`: a value that can be replaced after `fork`, read without locks.
//!
//! The Python objects hold their Rust client or generator here. In a forked
//! child the package replaces it with a fresh one (see `kxy_client::fork`).
//! The old value is leaked, never dropped: it may hold locks or wait on
//! threads of the parent that do not exist in the child. Because replaced
//! values are never freed, a reference obtained from [`Swap::get`] stays
//! valid for as long as the `Swap` lives, which makes the lock-free read
//! sound.

use std::sync::atomic::{AtomicPtr, Ordering};

pub struct Swap<T> {
    current: AtomicPtr<T>,
}

impl<T> Swap<T> {
    pub fn new(value: T) -> Self {
        Swap {
            current: AtomicPtr::new(Box::into_raw(Box::new(value))),
        }
    }

    #[inline]
    pub fn get(&self) -> &T {
        // SAFETY: the pointer came from Box::into_raw and is freed only in
        // Drop, never while `self` is borrowed; replaced values are leaked.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// Installs `value`; the previous value is leaked (see module docs).
    pub fn replace_leaking(&self, value: T) {
        let _previous = self
            .current
            .swap(Box::into_raw(Box::new(value)), Ordering::AcqRel);
    }
}

impl<T> Drop for Swap<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::into_raw and nothing else owns it.
        drop(unsafe { Box::from_raw(*self.current.get_mut()) });
    }
}
