//! Fences: segments a client refuses, so that it never hands out an ID twice
//! even when a server does.
//!
//! A server hands out a segment twice only when its store forgot an
//! allocation: a Redis that lost acknowledged writes, a restore from an
//! older backup, a failover to a lagging replica, or a client configured
//! with two servers that do not share a store. The client cannot see the
//! store, but it can see what it was given. Two fences follow:
//!
//! - **High water** ([`HighWater`], one per process): for each (store,
//!   counter), the segments this process received. A segment that does not
//!   start above the highest end this process had received *when it sent
//!   the request* is refused: the store went backwards. Segments received
//!   while the request was in flight are checked for overlap instead, so
//!   that two concurrent requests answered out of order are both accepted.
//!   The registry is process-global because every client and generator of a
//!   process hands IDs to the same program.
//! - **Store pins** ([`StorePins`], one per client): the first store a
//!   client hears from for a counter is the one it keeps to. A segment from
//!   a server that names another store is refused: the two stores count
//!   independently and hand out the same ranges.
//!
//! Servers that do not name their store (older kxy servers, the seed's
//! Python service) can neither be checked against a pin nor replace one.
//! Their segments are fenced per *deployment*: the set of base URLs of the
//! client that asked ([`StoreScope::Unnamed`]). A client's URLs are
//! servers of one deployment by configuration, so failing over among them
//! is fenced; two clients of independent deployments that happen to use
//! the same counter names do not refuse each other's segments, which one
//! process-wide "unknown store" would do.
//!
//! Both fences are part of per-process state (see [`crate::fork`]): a
//! forked child keeps its parent's marks and pins when they can be copied
//! safely, and starts empty when not.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use kxy_core::{Segment, SegmentKey};

use crate::fork::{self, PerProcess};

/// The id a kxy store was given when it was first initialised (32
/// lowercase hex digits), as servers report it with each segment.
pub type StoreId = Arc<str>;

/// Whose counting a mark belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreScope {
    /// A store that named itself: every client of the process shares its
    /// marks.
    Named(StoreId),
    /// Servers that name no store, identified by the client's base URLs
    /// (sorted, space-separated).
    Unnamed(Arc<str>),
}

/// How many of a counter's latest segments the registry keeps to check
/// answers that arrive out of order for overlap.
const RECENT_SEGMENTS: usize = 16;

/// How many of a counter's mark changes the registry keeps, to know the
/// mark a request was sent under. A request in flight across more arrivals
/// of its counter than this is checked against an earlier, lower mark:
/// weaker, never wrong.
const MARK_HISTORY: usize = 256;

/// The process's high-water registry.
pub struct HighWater;

/// The registry's sequence number when a request was sent: segments
/// recorded after it are the ones the answer may have raced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Default, Clone)]
struct Marks {
    /// Sequence number of the latest recorded segment, over all counters.
    sequence: u64,
    counters: HashMap<(StoreScope, SegmentKey), CounterMarks>,
}

/// What one process received of one counter.
///
/// A segment answering a request sent at ticket `t` must start above the
/// mark (the highest end received) as it stood at `t`: everything received
/// by then was allocated before the request was even sent. Comparing with
/// the mark as it stands when the answer arrives would be wrong, since
/// answers to concurrent requests arrive in any order. Segments that arrived
/// while the request was in flight are checked for overlap instead.
#[derive(Default, Clone)]
struct CounterMarks {
    /// `(sequence, mark after that segment)`, oldest first: the mark is
    /// non-decreasing, so the mark at a ticket is the last entry at or
    /// before it.
    history: VecDeque<(u64, i64)>,
    /// The newest entry dropped from `history`, if any.
    dropped: Option<(u64, i64)>,
    /// The latest segments, oldest first, each with its sequence number.
    recent: VecDeque<(u64, Segment)>,
}

impl CounterMarks {
    fn highest(&self) -> i64 {
        self.history
            .back()
            .or(self.dropped.as_ref())
            .map_or(0, |&(_, mark)| mark)
    }

    /// The mark as it stood at `ticket`, or a lower one where the history
    /// no longer reaches back that far (0: no check possible).
    fn mark_at(&self, ticket: Ticket) -> i64 {
        let newer = self
            .history
            .partition_point(|&(sequence, _)| sequence <= ticket.0);
        if newer > 0 {
            return self.history[newer - 1].1;
        }
        match self.dropped {
            Some((sequence, mark)) if sequence <= ticket.0 => mark,
            _ => 0,
        }
    }

    /// `Err(highest)` if `segment` must be refused for a request sent at
    /// `ticket`: it does not start above the mark at the send, or it
    /// overlaps a segment that arrived during the flight.
    fn check(&self, segment: Segment, ticket: Ticket) -> Result<(), i64> {
        let during_flight = self
            .recent
            .iter()
            .filter(|&&(sequence, _)| sequence > ticket.0);
        let overlaps = during_flight
            .clone()
            .any(|&(_, s)| segment.start <= s.end && s.start <= segment.end);
        if segment.start <= self.mark_at(ticket) || overlaps {
            Err(self.highest())
        } else {
            Ok(())
        }
    }

    fn record(&mut self, sequence: u64, segment: Segment) {
        let mark = self.highest().max(segment.end);
        self.history.push_back((sequence, mark));
        if self.history.len() > MARK_HISTORY {
            self.dropped = self.history.pop_front();
        }
        self.recent.push_back((sequence, segment));
        if self.recent.len() > RECENT_SEGMENTS {
            self.recent.pop_front();
        }
    }
}

static MARKS: PerProcess<Mutex<Marks>> = PerProcess::empty();

impl HighWater {
    fn marks() -> MutexGuard<'static, Marks> {
        MARKS
            .get(fork::inherit)
            .lock()
            // A panic under this lock leaves marks at worst incomplete for
            // one segment, which the next record repairs.
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Taken before a request is sent; see [`HighWater::admit`].
    pub fn ticket() -> Ticket {
        Ticket(Self::marks().sequence)
    }

    /// The highest segment end this process received for `key` from
    /// `scope`, if any.
    pub fn highest(scope: &StoreScope, key: &SegmentKey) -> Option<i64> {
        let marks = Self::marks();
        marks
            .counters
            .get(&(scope.clone(), key.clone()))
            .map(CounterMarks::highest)
    }

    /// Records `segment` of `key` from `scope`, for a request sent at
    /// `ticket`, or refuses it with the highest end it conflicts with.
    pub fn admit(
        scope: &StoreScope,
        key: &SegmentKey,
        segment: Segment,
        ticket: Ticket,
    ) -> Result<(), i64> {
        let mut marks = Self::marks();
        marks.sequence += 1;
        let sequence = marks.sequence;
        let counter = marks
            .counters
            .entry((scope.clone(), key.clone()))
            .or_default();
        counter.check(segment, ticket)?;
        counter.record(sequence, segment);
        Ok(())
    }
}

/// The store each counter of one client is pinned to. Cheap to clone the
/// map (a child copies it); one lookup per segment request.
pub struct StorePins {
    pins: PerProcess<Mutex<HashMap<SegmentKey, StoreId>>>,
}

impl StorePins {
    pub fn new() -> Self {
        StorePins {
            pins: PerProcess::new(Mutex::new(HashMap::new())),
        }
    }

    /// Pins copied from `other`, for a client rebuilt after a fork.
    pub fn copied_from(other: &StorePins) -> Self {
        StorePins {
            pins: PerProcess::new(Mutex::new(other.lock().clone())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SegmentKey, StoreId>> {
        self.pins
            .get(fork::inherit)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store `key` is pinned to, if any.
    pub fn pinned(&self, key: &SegmentKey) -> Option<StoreId> {
        self.lock().get(key).cloned()
    }

    /// Pins `key` to `store` if it is not pinned yet; `Err(pinned)` if it
    /// is pinned to another store. A server that names no store changes
    /// nothing and is never refused here.
    pub fn pin_or_check(&self, key: &SegmentKey, store: Option<&StoreId>) -> Result<(), StoreId> {
        let Some(store) = store else {
            return Ok(());
        };
        let mut pins = self.lock();
        match pins.get(key) {
            Some(pinned) if pinned != store => Err(pinned.clone()),
            Some(_) => Ok(()),
            None => {
                pins.insert(key.clone(), store.clone());
                Ok(())
            }
        }
    }
}

impl Default for StorePins {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: i64, end: i64) -> Segment {
        Segment { start, end }
    }

    fn named(id: char) -> StoreScope {
        StoreScope::Named(id.to_string().repeat(32).into())
    }

    fn unnamed(urls: &str) -> StoreScope {
        StoreScope::Unnamed(urls.into())
    }

    /// A counter no other test uses, since the registry is process-global.
    fn fresh_key(name: &str) -> SegmentKey {
        SegmentKey::new("fence-test", "db", name, "id").unwrap()
    }

    #[test]
    fn a_segment_at_or_below_the_high_water_is_refused() {
        let _stable = fork::GENERATION_TESTS.read();
        let key = fresh_key("backwards");
        let store = named('a');
        assert_eq!(HighWater::highest(&store, &key), None);
        let ticket = HighWater::ticket();
        HighWater::admit(&store, &key, seg(1, 10), ticket).unwrap();
        assert_eq!(HighWater::highest(&store, &key), Some(10));

        let ticket = HighWater::ticket();
        assert_eq!(HighWater::admit(&store, &key, seg(5, 14), ticket), Err(10));
        assert_eq!(HighWater::admit(&store, &key, seg(1, 10), ticket), Err(10));
        HighWater::admit(&store, &key, seg(11, 20), ticket).unwrap();
        // A refused segment did not move the mark; an accepted one did.
        assert_eq!(HighWater::highest(&store, &key), Some(20));
    }

    #[test]
    fn stores_are_fenced_separately_and_unnamed_ones_per_deployment() {
        let _stable = fork::GENERATION_TESTS.read();
        let key = fresh_key("per_store");
        let (a, b) = (named('a'), named('b'));
        let (here, there) = (unnamed("http://a http://b"), unnamed("http://c"));
        let ticket = HighWater::ticket();
        for scope in [&a, &b, &here, &there] {
            HighWater::admit(scope, &key, seg(1, 100), ticket).unwrap();
        }
        let ticket = HighWater::ticket();
        assert_eq!(HighWater::admit(&here, &key, seg(50, 60), ticket), Err(100));
        assert_eq!(HighWater::admit(&a, &key, seg(100, 160), ticket), Err(100));
    }

    #[test]
    fn concurrent_answers_arriving_out_of_order_are_both_accepted() {
        let _stable = fork::GENERATION_TESTS.read();
        let key = fresh_key("out_of_order");
        let scope = unnamed("http://a");
        let (first_sent, second_sent) = (HighWater::ticket(), HighWater::ticket());
        // The second request's answer (the later segment) arrives first.
        HighWater::admit(&scope, &key, seg(11, 20), second_sent).unwrap();
        HighWater::admit(&scope, &key, seg(1, 10), first_sent).unwrap();
        // But an overlap with what arrived during the flight is refused...
        let third_sent = HighWater::ticket();
        let fourth_sent = HighWater::ticket();
        HighWater::admit(&scope, &key, seg(31, 40), fourth_sent).unwrap();
        assert_eq!(
            HighWater::admit(&scope, &key, seg(35, 44), third_sent),
            Err(40)
        );
        // ...and so is anything at or below what had arrived before the send.
        assert_eq!(
            HighWater::admit(&scope, &key, seg(15, 16), third_sent),
            Err(40)
        );
        HighWater::admit(&scope, &key, seg(21, 30), third_sent).unwrap();
    }

    #[test]
    fn a_request_that_outlived_the_memory_is_checked_against_an_earlier_mark() {
        let _stable = fork::GENERATION_TESTS.read();
        let key = fresh_key("forgotten");
        let scope = unnamed("http://a");
        HighWater::admit(&scope, &key, seg(1, 10), HighWater::ticket()).unwrap();
        let sent_long_ago = HighWater::ticket();
        // Many answers to later requests arrive while this one is in flight,
        // more than the registry remembers; they leave 11..=20 free.
        for i in 0..=MARK_HISTORY as i64 {
            let ticket = HighWater::ticket();
            let start = 100 + i * 10;
            HighWater::admit(&scope, &key, seg(start, start + 9), ticket).unwrap();
        }
        // Its answer is not refused for arriving late (that would discard
        // good IDs under load)...
        HighWater::admit(&scope, &key, seg(11, 20), sent_long_ago).unwrap();
        // ...but anything at or below the mark it was sent under still is.
        let again = HighWater::ticket();
        assert!(HighWater::admit(&scope, &key, seg(5, 8), again).is_err());
    }

    #[test]
    fn many_concurrent_answers_in_any_order_are_all_accepted() {
        let _stable = fork::GENERATION_TESTS.read();
        let key = fresh_key("many_in_flight");
        let scope = unnamed("http://a");
        // 100 requests sent at once; the store hands out 1..=1000 in order,
        // the answers arrive in reverse.
        let tickets: Vec<Ticket> = (0..100).map(|_| HighWater::ticket()).collect();
        for (i, ticket) in tickets.iter().enumerate().rev() {
            let start = 1 + i as i64 * 10;
            HighWater::admit(&scope, &key, seg(start, start + 9), *ticket).unwrap();
        }
        assert_eq!(HighWater::highest(&scope, &key), Some(1000));
    }

    #[test]
    fn the_first_store_named_is_pinned() {
        let _stable = fork::GENERATION_TESTS.read();
        let pins = StorePins::new();
        let key = fresh_key("pinned");
        let (a, b): (StoreId, StoreId) = ("a".repeat(32).into(), "b".repeat(32).into());
        assert_eq!(pins.pin_or_check(&key, None), Ok(()));
        assert_eq!(pins.pinned(&key), None, "an unnamed store pins nothing");
        assert_eq!(pins.pin_or_check(&key, Some(&a)), Ok(()));
        assert_eq!(pins.pin_or_check(&key, Some(&b)), Err(a.clone()));
        assert_eq!(pins.pin_or_check(&key, None), Ok(()), "allowed, pin kept");
        assert_eq!(pins.pinned(&key), Some(a.clone()));
        assert_eq!(StorePins::copied_from(&pins).pinned(&key), Some(a));
        assert_eq!(pins.pinned(&fresh_key("other")), None);
    }

    #[test]
    fn a_forked_child_keeps_marks_and_pins() {
        let _bumping = fork::GENERATION_TESTS.write();
        let key = fresh_key("inherited");
        let store: StoreId = "c".repeat(32).into();
        let pins = StorePins::new();
        pins.pin_or_check(&key, Some(&store)).unwrap();
        let scope = StoreScope::Named(store.clone());
        HighWater::admit(&scope, &key, seg(1, 10), HighWater::ticket()).unwrap();
        fork::after_fork_in_child();
        assert_eq!(HighWater::highest(&scope, &key), Some(10));
        assert_eq!(pins.pinned(&key), Some(store));
    }
}
