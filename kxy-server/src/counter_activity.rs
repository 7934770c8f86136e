//! Per counter, what this instance handed out lately: when it last
//! allocated, and how many IDs per minute over the last hour.
//!
//! The admin page shows it next to each counter (a sparkline and the
//! runway: how long the counter lasts at this pace). It is kept in memory
//! and counts this process's answers since it started: it is a view of the
//! traffic, not a record, and nothing about allocation depends on it. With
//! several instances on one Redis, each sees its own share.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use kxy_core::SegmentKey;

/// Minutes of history kept per counter.
pub const MINUTES: usize = 60;

/// The activity of every counter this instance allocated from.
#[derive(Default)]
pub struct CounterActivity {
    counters: Mutex<HashMap<SegmentKey, Activity>>,
}

/// One counter's recent activity, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityView {
    /// Unix seconds of the last segment handed out.
    pub last_allocated_at: u64,
    /// IDs handed out per minute, oldest first; the last entry is the
    /// minute in progress.
    pub ids_per_minute: Vec<u64>,
}

impl ActivityView {
    /// IDs per minute over the last `minutes` minutes up to `now` (Unix
    /// seconds), the minute in progress counted for the part of it that
    /// has passed (at least one minute in all, so a first burst does not
    /// read as a huge pace).
    pub fn pace(&self, minutes: usize, now: u64) -> f64 {
        let minutes = minutes.clamp(1, self.ids_per_minute.len());
        let recent = &self.ids_per_minute[self.ids_per_minute.len() - minutes..];
        let elapsed = (minutes - 1) as f64 + (now % 60) as f64 / 60.0;
        recent.iter().sum::<u64>() as f64 / elapsed.max(1.0)
    }
}

struct Activity {
    last_at: u64,
    /// IDs per minute, indexed by Unix minute modulo [`MINUTES`].
    buckets: [u64; MINUTES],
    /// The Unix minute of the newest bucket.
    newest: u64,
}

impl Activity {
    /// Moves the window forward to `minute`, emptying the minutes skipped.
    fn advance(&mut self, minute: u64) {
        if minute <= self.newest {
            return;
        }
        let skipped = (minute - self.newest).min(MINUTES as u64);
        for m in minute + 1 - skipped..=minute {
            self.buckets[(m % MINUTES as u64) as usize] = 0;
        }
        self.newest = minute;
    }

    fn view(&self, now: u64) -> ActivityView {
        let minute = now / 60;
        let ids_per_minute = (minute + 1 - MINUTES as u64..=minute)
            .map(|m| {
                if m + (MINUTES as u64) <= self.newest || m > self.newest {
                    0
                } else {
                    self.buckets[(m % MINUTES as u64) as usize]
                }
            })
            .collect();
        ActivityView {
            last_allocated_at: self.last_at,
            ids_per_minute,
        }
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CounterActivity {
    /// Notes `ids` handed out of `key` now.
    pub fn record(&self, key: &SegmentKey, ids: u64) {
        self.record_at(key, ids, now());
    }

    fn record_at(&self, key: &SegmentKey, ids: u64, at: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let minute = at / 60;
        // Look up before inserting: `entry` would clone the key's four
        // names on every allocation.
        if !counters.contains_key(key) {
            let fresh = Activity {
                last_at: at,
                buckets: [0; MINUTES],
                newest: minute,
            };
            counters.insert(key.clone(), fresh);
        }
        let Some(activity) = counters.get_mut(key) else {
            return;
        };
        activity.advance(minute);
        activity.last_at = activity.last_at.max(at);
        if minute + (MINUTES as u64) > activity.newest {
            activity.buckets[(minute % MINUTES as u64) as usize] += ids;
        }
    }

    /// The activity of `key`, if this instance allocated from it.
    pub fn view(&self, key: &SegmentKey) -> Option<ActivityView> {
        self.view_at(key, now())
    }

    fn view_at(&self, key: &SegmentKey, now: u64) -> Option<ActivityView> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.get(key).map(|a| a.view(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SegmentKey {
        SegmentKey::new("s", "d", "t", "f").unwrap()
    }

    const T0: u64 = 1_800_000_000 / 60 * 60;

    #[test]
    fn minutes_are_counted_oldest_first() {
        let activity = CounterActivity::default();
        activity.record_at(&key(), 10, T0);
        activity.record_at(&key(), 5, T0 + 30);
        activity.record_at(&key(), 7, T0 + 60);
        let view = activity.view_at(&key(), T0 + 61).unwrap();
        assert_eq!(view.ids_per_minute.len(), MINUTES);
        assert_eq!(view.ids_per_minute[MINUTES - 1], 7);
        assert_eq!(view.ids_per_minute[MINUTES - 2], 15);
        assert_eq!(view.ids_per_minute.iter().sum::<u64>(), 22);
        assert_eq!(view.last_allocated_at, T0 + 60);
        assert_eq!(view.pace(1, T0 + 61), 7.0);
        assert_eq!(view.pace(2, T0 + 90), 22.0 / 1.5);
        assert!(
            activity
                .view_at(&SegmentKey::new("s", "d", "t", "g").unwrap(), T0)
                .is_none()
        );
    }

    #[test]
    fn old_minutes_fall_out_of_the_window() {
        let activity = CounterActivity::default();
        activity.record_at(&key(), 10, T0);
        // Read much later: the old minute is gone, nothing else shows.
        let later = activity.view_at(&key(), T0 + 60 * 61).unwrap();
        assert_eq!(later.ids_per_minute.iter().sum::<u64>(), 0);
        // Recorded again after a long gap: the old bucket was emptied.
        activity.record_at(&key(), 3, T0 + 60 * MINUTES as u64);
        let view = activity.view_at(&key(), T0 + 60 * MINUTES as u64).unwrap();
        assert_eq!(view.ids_per_minute.iter().sum::<u64>(), 3);
        // A late answer for a minute still in the window counts; one older
        // than the window does not.
        activity.record_at(&key(), 4, T0 + 60 * (MINUTES as u64 - 2));
        activity.record_at(&key(), 100, T0);
        let view = activity.view_at(&key(), T0 + 60 * MINUTES as u64).unwrap();
        assert_eq!(view.ids_per_minute.iter().sum::<u64>(), 7);
    }
}
