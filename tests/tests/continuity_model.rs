//! A model check of kxy's first promise, "no ID is handed out twice", across
//! a store that loses acknowledged allocations (docs/continuity.md).
//!
//! Run it with `cargo test -p kxy-e2e --test continuity_model -- --nocapture`
//! (states explored, time taken and the traces go to stderr); wider bounds,
//! minutes in a debug build, with `-- --ignored --nocapture`.
//!
//! [`stateright`] explores every interleaving of a small, bounded system and
//! checks, in every state it reaches, that no ID was acknowledged to clients
//! twice (an `always` property), and that an ID is acknowledged again after a
//! rollback somewhere (a `sometimes` property: the model is not safe merely
//! by refusing everything). Counterexamples are searched breadth-first on one
//! thread, so each trace is a shortest one; the exhaustive runs go
//! depth-first on every core with A and B taken as interchangeable.
//!
//! Two rule sets:
//!
//! - [`Rules::Old`], the guard of `kxy-server/src/store_guard.rs` before the
//!   continuity protocol: an instance allocates while its gate is open and
//!   compares the segment with its own mark (at or below it: fence); it
//!   notices a restart at its check (the run id it remembers differs), fences
//!   counters that stand below its own marks (or are missing) and opens at
//!   once. A client's mark refuses the segment for that client only.
//! - [`Rules::New`], docs/continuity.md: the allocation script refuses,
//!   without incrementing, unless the node's epoch is the instance's trusted
//!   epoch and the open epoch; a check observes (a heartbeat that also
//!   records the epoch as pending), verifies (fences below the marks or
//!   missing, and below the base when late), heartbeats `verified` and
//!   settles (opens the epoch once the settle period passed since it was
//!   first seen and every entry heartbeated within the lease is verified
//!   under it; an instance trusts the epoch only when it is open and it has
//!   verified under it).
//!
//! # What is modeled
//!
//! One counter, two instances (A and B), segments of one ID, IDs up to
//! [`Protocol::max_id`]. The store: the counter (a value, missing, or fenced
//! at a floor), the node's epoch (`master_replid`) as a small integer, the
//! open epoch with its base, the registry of heartbeats, the pending time of
//! the node's epoch, and one copy of its whole data (a snapshot on disk, a
//! lagging replica) that [`Action::SaveCopy`] brings up to date at any step.
//! Faults: [`Action::RollBack`] replaces the data with that copy under a new
//! epoch (a restart from an older snapshot, a failover to a lagging replica,
//! `REPLICAOF` a stale copy, a crash of a store that had not fsynced its last
//! writes: each gives the node a new `master_replid`); [`Action::Evict`]
//! removes the counter key. Instances crash (losing what is in memory; the
//! witness on disk stays) and restart. Clients: one that sends the highest ID
//! it received (its mark), one that sends none. Time passes in ticks
//! ([`Action::Tick`]); the store's times (heartbeats, first seen) are kept as
//! ages that stop growing once past every period they are compared with, so
//! the state space is finite although time is not bounded. The bounds of the
//! suite ([`Protocol::bounded`]): IDs up to 3, one rollback, one eviction,
//! one crash, interval 1 tick, settle period and lease 2 ticks (the least the
//! doc's argument allows: interval + 1; longer periods only remove
//! behaviours).
//!
//! # Assumptions, and what is abstracted away
//!
//! - **Fairness**: an instance that runs heartbeats at least once every
//!   [`Protocol::interval`] ticks (a tick waits for it). An instance cut off
//!   from the store for the whole settle period is outside this assumption,
//!   as docs/continuity.md says under "What remains uncovered". With
//!   [`Downtime::WithinInterval`] (the suite's bound) a crashed instance is
//!   held to the same deadline: it is back and has heartbeated within the
//!   interval. [`Downtime::Unbounded`] lets it stay down, which is the same
//!   as being cut off.
//! - **Witness**: [`Witness::Current`] (the suite's bound) writes it with
//!   every acknowledged segment; [`Witness::Lagging`] writes it at steps of
//!   its own, so a crash can lose the latest marks (the documented "witness
//!   older than the rollback").
//! - **Answers**: each script is one atomic step. [`Replies::WithTheScript`]
//!   (the suite's bound) handles the store's answer to an allocation in the
//!   same step (mark raised, ID acknowledged), that is, before the
//!   instance's next check step; [`Replies::Later`] lets a check step come in
//!   between, one request in flight per instance.
//! - An epoch is never reused (no failing back to a former primary that kept
//!   its `master_replid`), the store's clock does not jump (the settle period
//!   and the lease are measured with it), there is one store at a time (no
//!   split brain), and the durability checks are not modeled (a store that
//!   loses writes is a rollback). A missing counter is refused (no
//!   auto-create), as under `strict`. A client's mark fences nothing (the
//!   weaker reading of the doc's step 4, so it cannot make the model safe).
//! - A restarted instance takes its own old registry entry (kxy writes a new
//!   one under a new id and the old one ages out: more entries only make
//!   settling harder).
//! - [`Rules::Old`]: a rollback drops the instances' connections, and each
//!   re-checks before its next allocation (`store_failed` wakes the
//!   checker): the most favourable reading of today's code; it still hands
//!   out twice.
//!
//! # What the tests show
//!
//! The old rules hand an ID out twice (case 1 of the issue, and from a fresh
//! start). The new rules never do within the bounds, and still serve after a
//! rollback. Outside the assumptions they do, and the tests pin where: a
//! settle period no longer than the interval, an instance down through the
//! whole settle period (its witness is applied only when it is back, the
//! late path), a witness that lags behind a crash, and an answer handled
//! after its instance verified; burning answers to requests sent before the
//! gate closed removes the last one.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Path, Property};

const INSTANCES: usize = 2;
const NAMES: [char; INSTANCES] = ['A', 'B'];

/// An epoch (the node's `master_replid`): 0 at the start, then one new
/// number per rollback, never reused.
type Epoch = u8;

/// Which protocol the instances follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rules {
    /// Today's store guard: marks per instance, checks by run id.
    Old,
    /// docs/continuity.md.
    New,
}

/// When the witness (the marks on disk) is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Witness {
    /// With every acknowledged segment.
    Current,
    /// At separate steps: it may lag behind the marks in memory.
    Lagging,
}

/// How long a crashed instance may stay down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Downtime {
    /// It is back and has heartbeated within the interval, like a running
    /// instance (the fairness assumption).
    WithinInterval,
    /// As long as it likes (an instance stopped for a deploy, a crash loop).
    Unbounded,
}

/// Where the exploration starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Start {
    /// A fresh store at 0 under epoch 0, open, both instances trusting it.
    Fresh,
    /// Case 1 of the issue: A handed out 1, then B handed out 2, and the copy
    /// of the store (snapshot, replica) holds only 1.
    CaseOne,
}

/// When the instance handles the store's answer to an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Replies {
    /// In the same step as the script: the mark is raised before the
    /// instance's next check step.
    WithTheScript,
    /// At a later step of its own, checked as docs/continuity.md says (the
    /// mark taken before asking, the client's mark): a check may verify in
    /// between.
    Later,
    /// Later, and burnt (not handed out) when the instance's gate closed
    /// after the request was sent: the rule that closes the gap `Later` has.
    LaterUnlessTheGateClosed,
}

/// The bounded system to explore.
#[derive(Clone, Debug)]
struct Protocol {
    rules: Rules,
    start: Start,
    witness: Witness,
    downtime: Downtime,
    replies: Replies,
    /// The highest ID the counter may reach (the bound on allocations).
    max_id: u8,
    /// How many rollbacks may happen.
    rollbacks: u8,
    /// How many times the counter key may be evicted.
    evictions: u8,
    /// How many crashes may happen.
    crashes: u8,
    /// Ticks between two heartbeats of a running instance, at most.
    interval: u8,
    /// Ticks an epoch must have been seen before it may be opened.
    settle: u8,
    /// A registry entry heartbeated at most this many ticks ago is a running
    /// instance that the settle waits for.
    lease: u8,
}

impl Protocol {
    /// The bounds the tests use; the settle period is the least the doc's
    /// argument allows (interval + 1), the lease the same length.
    fn bounded(rules: Rules) -> Self {
        Protocol {
            rules,
            start: Start::Fresh,
            witness: Witness::Current,
            downtime: Downtime::WithinInterval,
            replies: Replies::WithTheScript,
            max_id: 3,
            rollbacks: 1,
            evictions: 1,
            crashes: 1,
            interval: 1,
            settle: 2,
            lease: 2,
        }
    }
}

/// The counter's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Counter {
    Missing,
    /// The last ID handed out (0: none yet).
    Value(u8),
    /// `fenced:<floor>`: every allocation is refused.
    Fenced(u8),
}

impl Counter {
    /// Whether an instance that handed out IDs up to `mark` must fence this.
    fn below(self, mark: u8) -> bool {
        mark > 0
            && match self {
                Counter::Missing => true,
                Counter::Value(v) => v < mark,
                Counter::Fenced(_) => false,
            }
    }

    /// The fence script: the greatest of the floor, the value and an earlier
    /// fence.
    fn fenced_at(self, floor: u8) -> Counter {
        match self {
            Counter::Missing => Counter::Fenced(floor),
            Counter::Value(v) | Counter::Fenced(v) => Counter::Fenced(v.max(floor)),
        }
    }
}

/// A registry entry: `<epoch>:<seen|verified>:<time>`, the time as an age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Heartbeat {
    epoch: Epoch,
    verified: bool,
    age: u8,
}

/// What a rollback takes back: the store's keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Data {
    counter: Counter,
    /// The open epoch and its base (the counter when it was settled). The
    /// store keeps a base per epoch; only the open one's is ever read (by a
    /// late instance, which found its epoch open), so only it is kept.
    open: Option<(Epoch, Counter)>,
    registry: [Option<Heartbeat>; INSTANCES],
    /// Pending: how long ago the node's current epoch was first seen. Entries
    /// of other epochs are never read again (an epoch is never reused), so
    /// only the current one is kept; a rollback clears it.
    pending: Option<u8>,
}

/// How far an instance's check got (NEW rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Check {
    Idle,
    /// Heartbeated and saw `epoch`, not the one it trusts; `late`: it was
    /// open already.
    Observed {
        epoch: Epoch,
        late: bool,
    },
    /// Its fences for `epoch` are in the store.
    Verified(Epoch),
    /// It heartbeated after verifying; the settle step is next.
    Announced(Epoch),
}

/// An allocation the store answered and the instance has not handled yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Reply {
    client: Client,
    id: u8,
    /// The instance's mark when it asked.
    before: u8,
    /// Whether its gate closed since it asked.
    gate_closed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Instance {
    up: bool,
    /// The highest ID it handed out (0: none), in memory.
    mark: u8,
    /// Its witness: the mark on disk.
    witness: u8,
    /// Whether it lets allocations through to the store.
    gate: bool,
    /// NEW: the epoch it allocates under.
    trusted: Option<Epoch>,
    /// NEW: the epoch under which its marks are applied to the store.
    verified: Option<Epoch>,
    /// NEW: its check in progress.
    check: Check,
    /// OLD: the run id (here: epoch) seen at its last check; `None` until
    /// its first check after a start, which loads the witness.
    run_id: Option<Epoch>,
    /// OLD: a rollback dropped its connection; it checks before allocating.
    reconnect: bool,
    /// Ticks since its last heartbeat (NEW) or check (OLD).
    since_check: u8,
    /// Its request in flight ([`Replies::Later`]: one at a time).
    reply: Option<Reply>,
}

impl Instance {
    /// Running, trusting epoch 0, nothing handed out yet.
    fn serving() -> Self {
        Instance {
            up: true,
            mark: 0,
            witness: 0,
            gate: true,
            trusted: Some(0),
            verified: Some(0),
            check: Check::Idle,
            run_id: Some(0),
            reconnect: false,
            since_check: 0,
            reply: None,
        }
    }

    fn close_gate(&mut self) {
        self.gate = false;
        if let Some(reply) = &mut self.reply {
            reply.gate_closed = true;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Client {
    /// Sends the highest ID it received (the kxy client).
    Marked,
    /// Sends nothing (the published Python client).
    Unmarked,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    /// The node's `master_replid`.
    epoch: Epoch,
    store: Data,
    /// A copy of the data that a rollback restores; dropped once no rollback
    /// is left, so that states differing only in it are one.
    copy: Option<Data>,
    instances: [Instance; INSTANCES],
    /// The marked client's mark.
    client_mark: u8,
    /// Every ID acknowledged to a client, one bit each.
    acked: u16,
    /// The first ID acknowledged a second time.
    twice: Option<u8>,
    /// Whether an ID was acknowledged after a rollback.
    served_after_rollback: bool,
    rollbacks: u8,
    evictions: u8,
    crashes: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// The instance asks the store for one ID for the client.
    Allocate(usize, Client),
    /// It handles the store's answer ([`Replies::Later`]).
    Answer(usize),
    /// OLD: the periodic check (run id, then the instance's own marks).
    Check(usize),
    /// NEW, step 1: the observe script (a heartbeat).
    Observe(usize),
    /// NEW, step 3: fences below the marks (and below the base when late).
    Verify(usize),
    /// NEW, step 3: the heartbeat after verifying.
    Announce(usize),
    /// NEW, step 4: the settle script, then trust the epoch if it is open.
    Settle(usize),
    /// The witness is written ([`Witness::Lagging`]).
    SaveWitness(usize),
    Crash(usize),
    Restart(usize),
    /// The copy catches up with the store (a snapshot, replication).
    SaveCopy,
    /// The store's data becomes the copy, under a new epoch.
    RollBack,
    /// The counter key is evicted.
    Evict,
    Tick,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Allocate(i, c) => write!(f, "{} allocates for the {c:?} client", NAMES[i]),
            Action::Answer(i) => write!(f, "{} handles the store's answer", NAMES[i]),
            Action::Check(i) => write!(f, "{} checks the store (run id, own marks)", NAMES[i]),
            Action::Observe(i) => write!(f, "{} observes (heartbeat)", NAMES[i]),
            Action::Verify(i) => write!(f, "{} verifies its marks", NAMES[i]),
            Action::Announce(i) => write!(f, "{} heartbeats after verifying", NAMES[i]),
            Action::Settle(i) => write!(f, "{} settles", NAMES[i]),
            Action::SaveWitness(i) => write!(f, "{} saves its witness", NAMES[i]),
            Action::Crash(i) => write!(f, "{} crashes", NAMES[i]),
            Action::Restart(i) => write!(f, "{} restarts", NAMES[i]),
            Action::SaveCopy => f.write_str("the store's copy catches up"),
            Action::RollBack => f.write_str("the store rolls back to its copy (new epoch)"),
            Action::Evict => f.write_str("the counter key is evicted"),
            Action::Tick => f.write_str("a tick passes"),
        }
    }
}

impl Protocol {
    fn initial(&self) -> State {
        let heartbeat = Some(Heartbeat {
            epoch: 0,
            verified: true,
            age: 0,
        });
        let store = Data {
            counter: Counter::Value(0),
            open: Some((0, Counter::Value(0))),
            registry: [heartbeat; INSTANCES],
            pending: None,
        };
        let mut state = State {
            epoch: 0,
            copy: Some(store.clone()),
            store,
            instances: [Instance::serving(); INSTANCES],
            client_mark: 0,
            acked: 0,
            twice: None,
            served_after_rollback: false,
            rollbacks: 0,
            evictions: 0,
            crashes: 0,
        };
        if self.start == Start::CaseOne {
            self.allocate(&mut state, 0, Client::Unmarked);
            state.copy = Some(state.store.clone());
            self.allocate(&mut state, 1, Client::Unmarked);
        }
        state
    }

    /// The allocation script, then (or at [`Action::Answer`]) the answer.
    fn allocate(&self, s: &mut State, i: usize, client: Client) {
        if self.refuses_epoch(s, i) {
            // The instance closes its gate and wakes its checker.
            s.instances[i].close_gate();
            return;
        }
        let Counter::Value(last) = s.store.counter else {
            return; // missing or fenced: refused, nothing changes
        };
        let id = last + 1;
        s.store.counter = Counter::Value(id);
        let reply = Reply {
            client,
            id,
            before: s.instances[i].mark,
            gate_closed: false,
        };
        match self.replies {
            Replies::WithTheScript => self.answer(s, i, reply),
            Replies::Later | Replies::LaterUnlessTheGateClosed => {
                s.instances[i].reply = Some(reply);
            }
        }
    }

    /// The instance's and the client's marks, then the ID to the client.
    fn answer(&self, s: &mut State, i: usize, reply: Reply) {
        let Reply {
            client,
            id,
            before,
            gate_closed,
        } = reply;
        if gate_closed && self.replies == Replies::LaterUnlessTheGateClosed {
            return; // burnt: a gap, never a repeat
        }
        if before > 0 && id <= before {
            // The store went backwards under this instance: fence.
            s.store.counter = s.store.counter.fenced_at(before);
            return;
        }
        if client == Client::Marked && id <= s.client_mark {
            return; // refused for this client only
        }
        let instance = &mut s.instances[i];
        instance.mark = instance.mark.max(id);
        if self.witness == Witness::Current {
            instance.witness = instance.mark;
        }
        if client == Client::Marked {
            s.client_mark = id;
        }
        if s.acked & (1 << id) != 0 && s.twice.is_none() {
            s.twice = Some(id);
        }
        s.acked |= 1 << id;
        s.served_after_rollback |= s.rollbacks > 0;
    }

    /// NEW: whether the allocation script refuses `moved` or `unsettled`
    /// (without incrementing): the node's epoch is not both the instance's
    /// trusted epoch and the open one.
    fn refuses_epoch(&self, s: &State, i: usize) -> bool {
        let node = Some(s.epoch);
        self.rules == Rules::New
            && (s.instances[i].trusted != node || s.store.open.map(|(e, _)| e) != node)
    }

    /// Whether an allocation by `i` changes anything (a refused one that
    /// changes nothing is left out: it only adds edges).
    fn may_allocate(&self, s: &State, i: usize) -> bool {
        let instance = &s.instances[i];
        if !instance.up || !instance.gate || instance.reply.is_some() {
            return false;
        }
        if self.rules == Rules::Old && instance.reconnect {
            return false;
        }
        self.refuses_epoch(s, i) || matches!(s.store.counter, Counter::Value(v) if v < self.max_id)
    }

    /// Whether time may pass: every instance that must heartbeat within the
    /// interval has done so.
    fn may_tick(&self, s: &State) -> bool {
        s.instances
            .iter()
            .all(|i| !self.counts(i) || i.since_check < self.interval)
    }

    /// Whether the instance is held to the heartbeat deadline.
    fn counts(&self, i: &Instance) -> bool {
        i.up || self.downtime == Downtime::WithinInterval
    }

    fn tick(&self, s: &mut State) {
        for i in 0..INSTANCES {
            if self.counts(&s.instances[i]) {
                s.instances[i].since_check += 1;
            }
        }
        let oldest = self.lease + 1; // older than the lease: all alike
        for data in std::iter::once(&mut s.store).chain(s.copy.as_mut()) {
            for heartbeat in data.registry.iter_mut().flatten() {
                heartbeat.age = (heartbeat.age + 1).min(oldest);
            }
        }
        if let Some(age) = &mut s.store.pending {
            *age = (*age + 1).min(self.settle);
        }
    }

    /// The heartbeat script (observe.lua): `verified` only if the node's
    /// epoch is the one the instance verified under.
    fn heartbeat(&self, s: &mut State, i: usize) {
        let instance = &mut s.instances[i];
        s.store.registry[i] = Some(Heartbeat {
            epoch: s.epoch,
            verified: instance.verified == Some(s.epoch),
            age: 0,
        });
        instance.since_check = 0;
        if s.store.open.map(|(e, _)| e) != Some(s.epoch) && s.store.pending.is_none() {
            s.store.pending = Some(0);
        }
    }

    fn observe(&self, s: &mut State, i: usize) {
        self.heartbeat(s, i);
        let epoch = s.epoch;
        let open = s.store.open.map(|(e, _)| e) == Some(epoch);
        let instance = &mut s.instances[i];
        if instance.trusted == Some(epoch) {
            if open {
                instance.gate = true;
            } else {
                instance.check = Check::Announced(epoch);
            }
        } else {
            instance.close_gate();
            instance.check = Check::Observed { epoch, late: open };
        }
    }

    fn verify(&self, s: &mut State, i: usize) {
        let Check::Observed { epoch, late } = s.instances[i].check else {
            unreachable!("verify follows observe");
        };
        let mark = s.instances[i].mark;
        let base_below = late
            && s.store
                .open
                .is_some_and(|(e, base)| e == epoch && base.below(mark));
        if s.store.counter.below(mark) || base_below {
            s.store.counter = s.store.counter.fenced_at(mark);
        }
        let instance = &mut s.instances[i];
        instance.verified = Some(epoch);
        instance.check = Check::Verified(epoch);
    }

    fn settle(&self, s: &mut State, i: usize) {
        let Check::Announced(epoch) = s.instances[i].check else {
            unreachable!("settle follows the heartbeat");
        };
        // settle.lua: `moved` unless the node's epoch is the one asked about.
        if s.epoch == epoch && s.store.open.map(|(e, _)| e) != Some(epoch) {
            let store = &s.store;
            let settled = store.pending.is_some_and(|age| age >= self.settle);
            let all_verified = store
                .registry
                .iter()
                .flatten()
                .filter(|h| h.age <= self.lease)
                .all(|h| h.epoch == epoch && h.verified);
            if settled && all_verified {
                s.store.open = Some((epoch, s.store.counter));
                s.store.pending = None;
            }
        }
        let instance = &mut s.instances[i];
        if s.epoch == epoch
            && s.store.open.map(|(e, _)| e) == Some(epoch)
            && instance.verified == Some(epoch)
        {
            instance.trusted = Some(epoch);
            instance.gate = true;
        }
        instance.check = Check::Idle;
    }

    /// Today's check: a changed run id (or a start) makes the instance fence
    /// what stands below its own marks; then it opens.
    fn old_check(&self, s: &mut State, i: usize) {
        let instance = &mut s.instances[i];
        if instance.run_id != Some(s.epoch) && s.store.counter.below(instance.mark) {
            s.store.counter = s.store.counter.fenced_at(instance.mark);
        }
        instance.run_id = Some(s.epoch);
        instance.gate = true;
        instance.reconnect = false;
        instance.since_check = 0;
    }

    fn crash(&self, s: &mut State, i: usize) {
        let instance = &mut s.instances[i];
        *instance = Instance {
            up: false,
            mark: instance.witness,
            witness: instance.witness,
            gate: false,
            trusted: None,
            verified: None,
            check: Check::Idle,
            run_id: None,
            reconnect: false,
            // Down, it is held to the deadline only under WithinInterval.
            since_check: match self.downtime {
                Downtime::WithinInterval => instance.since_check,
                Downtime::Unbounded => 0,
            },
            reply: None, // lost with the process: burnt
        };
        s.crashes += 1;
    }

    fn roll_back(&self, s: &mut State) {
        s.store = s.copy.clone().expect("a rollback needs a copy");
        s.store.pending = None;
        s.rollbacks += 1;
        s.epoch = s.rollbacks;
        if s.rollbacks == self.rollbacks {
            s.copy = None;
        }
        for instance in &mut s.instances {
            instance.reconnect = self.rules == Rules::Old && instance.up;
        }
    }
}

impl Protocol {
    /// One line per state, for the traces: what the rules in force read.
    fn describe(&self, s: &State) -> String {
        let epoch = |e: Option<Epoch>| e.map_or("-".to_owned(), |e| format!("e{e}"));
        let mut out = format!("store e{} {:?}", s.epoch, s.store.counter);
        if self.rules == Rules::New {
            let _ = write!(
                out,
                " open {}",
                s.store
                    .open
                    .map_or("-".to_owned(), |(e, base)| format!("e{e} (base {base:?})"))
            );
            for (name, heartbeat) in NAMES.iter().zip(&s.store.registry) {
                if let Some(h) = heartbeat {
                    let seen = if h.verified { "verified" } else { "seen" };
                    let _ = write!(out, " {name}=e{}:{seen}:age {}", h.epoch, h.age);
                }
            }
            if let Some(age) = s.store.pending {
                let _ = write!(out, " pending age {age}");
            }
        }
        if let Some(copy) = &s.copy {
            let _ = write!(out, ", copy {:?}", copy.counter);
        }
        for (name, i) in NAMES.iter().zip(&s.instances) {
            let _ = write!(
                out,
                " | {name}{} mark {} gate {}",
                if i.up { "" } else { " (down)" },
                i.mark,
                if i.gate { "open" } else { "closed" },
            );
            if self.witness == Witness::Lagging {
                let _ = write!(out, " witness {}", i.witness);
            }
            match self.rules {
                Rules::Old => {
                    let _ = write!(out, " run id {}", epoch(i.run_id));
                    if i.reconnect {
                        out.push_str(" (reconnecting)");
                    }
                }
                Rules::New => {
                    let _ = write!(
                        out,
                        " trusted {} verified {} {:?}",
                        epoch(i.trusted),
                        epoch(i.verified),
                        i.check
                    );
                }
            }
            if let Some(reply) = i.reply {
                let _ = write!(out, " answer {} in flight", reply.id);
            }
        }
        let acked: Vec<u8> = (1..16).filter(|id| s.acked & (1 << id) != 0).collect();
        let _ = write!(out, " | acked {acked:?}");
        if let Some(id) = s.twice {
            let _ = write!(out, ", {id} TWICE");
        }
        out
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..INSTANCES {
            let instance = &s.instances[i];
            if self.may_allocate(s, i) {
                actions.push(Action::Allocate(i, Client::Unmarked));
                // A refusal is the same for either client.
                if !self.refuses_epoch(s, i) {
                    actions.push(Action::Allocate(i, Client::Marked));
                }
            }
            if instance.up && instance.reply.is_some() {
                actions.push(Action::Answer(i));
            }
            if instance.up {
                match (self.rules, instance.check) {
                    (Rules::Old, _) => actions.push(Action::Check(i)),
                    (Rules::New, Check::Idle) => actions.push(Action::Observe(i)),
                    (Rules::New, Check::Observed { .. }) => actions.push(Action::Verify(i)),
                    (Rules::New, Check::Verified(_)) => actions.push(Action::Announce(i)),
                    (Rules::New, Check::Announced(_)) => actions.push(Action::Settle(i)),
                }
                if self.witness == Witness::Lagging && instance.witness != instance.mark {
                    actions.push(Action::SaveWitness(i));
                }
                if s.crashes < self.crashes {
                    actions.push(Action::Crash(i));
                }
            } else {
                actions.push(Action::Restart(i));
            }
        }
        if s.copy.as_ref().is_some_and(|copy| *copy != s.store) {
            actions.push(Action::SaveCopy);
        }
        if s.rollbacks < self.rollbacks {
            actions.push(Action::RollBack);
        }
        if s.evictions < self.evictions && matches!(s.store.counter, Counter::Value(_)) {
            actions.push(Action::Evict);
        }
        if self.may_tick(s) {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Allocate(i, client) => self.allocate(&mut s, i, client),
            Action::Answer(i) => {
                let reply = s.instances[i].reply.take().expect("an answer to handle");
                self.answer(&mut s, i, reply);
            }
            Action::Check(i) => self.old_check(&mut s, i),
            Action::Observe(i) => self.observe(&mut s, i),
            Action::Verify(i) => self.verify(&mut s, i),
            Action::Announce(i) => {
                self.heartbeat(&mut s, i);
                let Check::Verified(epoch) = s.instances[i].check else {
                    unreachable!("the heartbeat follows verify");
                };
                s.instances[i].check = Check::Announced(epoch);
            }
            Action::Settle(i) => self.settle(&mut s, i),
            Action::SaveWitness(i) => s.instances[i].witness = s.instances[i].mark,
            Action::Crash(i) => self.crash(&mut s, i),
            Action::Restart(i) => s.instances[i].up = true,
            Action::SaveCopy => s.copy = Some(s.store.clone()),
            Action::RollBack => self.roll_back(&mut s),
            Action::Evict => {
                s.store.counter = Counter::Missing;
                s.evictions += 1;
            }
            Action::Tick => self.tick(&mut s),
        }
        Some(s)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(NEVER_TWICE, |_, s: &State| s.twice.is_none()),
            Property::sometimes(SERVES_AFTER_ROLLBACK, |_, s: &State| {
                s.served_after_rollback
            }),
        ]
    }
}

const NEVER_TWICE: &str = "no ID is acknowledged twice";
const SERVES_AFTER_ROLLBACK: &str = "an ID is acknowledged after a rollback";

/// What one exploration found, and what it cost.
struct Outcome {
    states: usize,
    elapsed: Duration,
    twice: Option<Path<State, Action>>,
    served_after_rollback: Option<Path<State, Action>>,
}

/// A and B are interchangeable: the state with them swapped (instances and
/// their registry entries, in the store and in its copy) is the same state
/// for the properties, so the exhaustive search visits one of the two.
fn representative(s: &State) -> State {
    let key = |i: usize| {
        (
            s.instances[i],
            s.store.registry[i],
            s.copy.as_ref().map(|copy| copy.registry[i]),
        )
    };
    let mut r = s.clone();
    if key(1) < key(0) {
        r.instances.swap(0, 1);
        r.store.registry.swap(0, 1);
        if let Some(copy) = &mut r.copy {
            copy.registry.swap(0, 1);
        }
    }
    r
}

enum Search {
    /// Breadth-first until `HasDiscoveries`: the shortest trace.
    Shortest(HasDiscoveries),
    /// Depth-first over every reachable state (unless an ID is acknowledged
    /// twice), with A and B interchangeable: half the states.
    Everything,
}

/// Runs the checker and says what it cost on stderr.
fn explore(what: &str, protocol: &Protocol, search: Search) -> Outcome {
    let threads = match search {
        // stateright's breadth-first search finds the shortest trace only on
        // one thread; the traces searched for are short.
        Search::Shortest(_) => 1,
        Search::Everything => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let started = Instant::now();
    let builder = protocol.clone().checker().threads(threads);
    let (states, twice, served_after_rollback) = match search {
        Search::Shortest(finish_when) => {
            let checker = builder.finish_when(finish_when).spawn_bfs().join();
            (
                checker.unique_state_count(),
                checker.discovery(NEVER_TWICE),
                checker.discovery(SERVES_AFTER_ROLLBACK),
            )
        }
        Search::Everything => {
            let checker = builder
                .symmetry_fn(representative)
                .finish_when(HasDiscoveries::AnyFailures)
                .spawn_dfs()
                .join();
            (
                checker.unique_state_count(),
                checker.discovery(NEVER_TWICE),
                checker.discovery(SERVES_AFTER_ROLLBACK),
            )
        }
    };
    let outcome = Outcome {
        states,
        elapsed: started.elapsed(),
        twice,
        served_after_rollback,
    };
    eprintln!(
        "{what}: {} states explored in {:.2?} (threads: {threads})",
        outcome.states, outcome.elapsed
    );
    outcome
}

fn trace(protocol: &Protocol, path: &Path<State, Action>) -> String {
    let mut out = String::new();
    for (state, action) in path.clone().into_vec() {
        let _ = writeln!(out, "      {}", protocol.describe(&state));
        if let Some(action) = action {
            let _ = writeln!(out, "  {action}");
        }
    }
    out
}

/// Explores until an ID is acknowledged twice; returns the (shortest) trace.
fn hands_out_twice(what: &str, protocol: &Protocol) -> Path<State, Action> {
    let outcome = explore(
        what,
        protocol,
        Search::Shortest(HasDiscoveries::AnyFailures),
    );
    let path = outcome
        .twice
        .unwrap_or_else(|| panic!("{what}: expected an ID acknowledged twice, found none"));
    eprintln!("{what}: counterexample:\n{}", trace(protocol, &path));
    path
}

/// Fails, with the trace, if the exploration found an ID acknowledged twice.
fn assert_never_twice(what: &str, protocol: &Protocol, outcome: &Outcome) {
    if let Some(path) = &outcome.twice {
        panic!(
            "{what}: an ID acknowledged twice:\n{}",
            trace(protocol, path)
        );
    }
}

/// The exhaustive run of the NEW rules in the bounded model, shared by the
/// test of the property and the test that it is not vacuous.
fn new_rules_everywhere() -> &'static (Protocol, Outcome) {
    static RUN: OnceLock<(Protocol, Outcome)> = OnceLock::new();
    RUN.get_or_init(|| {
        let protocol = Protocol::bounded(Rules::New);
        let outcome = explore("NEW rules", &protocol, Search::Everything);
        (protocol, outcome)
    })
}

#[test]
fn old_rules_hand_out_another_instances_ids_again_after_a_rollback() {
    let protocol = Protocol {
        start: Start::CaseOne,
        ..Protocol::bounded(Rules::Old)
    };
    let path = hands_out_twice("OLD rules, case 1", &protocol);
    // Case 1: B's ID 2 is lost by the rollback; A checks, its own mark (1)
    // passes, it opens and hands 2 out again.
    assert_eq!(
        path.clone().into_actions(),
        [
            Action::RollBack,
            Action::Check(0),
            Action::Allocate(0, Client::Unmarked)
        ]
    );
    assert_eq!(path.last_state().twice, Some(2));
}

#[test]
fn old_rules_hand_out_twice_from_a_fresh_start_too() {
    hands_out_twice("OLD rules, fresh start", &Protocol::bounded(Rules::Old));
}

#[test]
fn new_rules_never_hand_out_an_id_twice_in_the_bounded_model() {
    let (protocol, outcome) = new_rules_everywhere();
    assert_never_twice("NEW rules", protocol, outcome);
}

#[test]
fn new_rules_still_serve_after_a_rollback() {
    let (protocol, outcome) = new_rules_everywhere();
    let path = outcome
        .served_after_rollback
        .as_ref()
        .expect("the new rules should serve again after a rollback");
    eprintln!(
        "NEW rules serve after a rollback (a depth-first trace, {} steps):\n{}",
        path.clone().into_actions().len(),
        trace(protocol, path)
    );
}

/// The doc's argument needs the settle period to outlast the interval: a
/// running instance that has not heartbeated under the new epoch yet is
/// not waited for.
#[test]
fn new_rules_hand_out_twice_when_the_settle_period_is_only_the_interval() {
    let protocol = Protocol {
        settle: 1,
        lease: 1,
        max_id: 1,
        ..Protocol::bounded(Rules::New)
    };
    hands_out_twice("NEW rules, settle period = interval", &protocol);
}

/// An instance that is down for the whole settle period is not waited for:
/// the others settle without its marks and repeat its lost IDs. Its witness
/// only lets it see the repeat when it is back (the late path).
#[test]
fn new_rules_hand_out_twice_when_an_instance_stays_down_through_the_settle_period() {
    let protocol = Protocol {
        downtime: Downtime::Unbounded,
        max_id: 1,
        evictions: 0,
        ..Protocol::bounded(Rules::New)
    };
    hands_out_twice("NEW rules, unbounded downtime", &protocol);
}

/// The documented gap "a witness older than the rollback".
#[test]
fn new_rules_hand_out_twice_when_a_crash_loses_marks_the_witness_had_not_saved() {
    let protocol = Protocol {
        witness: Witness::Lagging,
        max_id: 1,
        evictions: 0,
        ..Protocol::bounded(Rules::New)
    };
    hands_out_twice("NEW rules, lagging witness", &protocol);
}

/// An answer handled after the instance's verify raises a mark that the
/// verify did not apply.
#[test]
fn new_rules_hand_out_twice_when_an_answer_is_handled_after_the_check_verified() {
    let protocol = Protocol {
        replies: Replies::Later,
        max_id: 1,
        evictions: 0,
        crashes: 0,
        ..Protocol::bounded(Rules::New)
    };
    hands_out_twice("NEW rules, answers handled later", &protocol);
}

/// Burning an answer to a request sent before the gate closed removes that
/// repeat.
#[test]
fn new_rules_never_hand_out_twice_when_answers_after_a_closed_gate_are_burnt() {
    let what = "NEW rules, late answers burnt after the gate closed";
    let protocol = Protocol {
        replies: Replies::LaterUnlessTheGateClosed,
        max_id: 2,
        evictions: 0,
        crashes: 0,
        ..Protocol::bounded(Rules::New)
    };
    let outcome = explore(what, &protocol, Search::Everything);
    assert_never_twice(what, &protocol, &outcome);
}

/// Wider bounds than the suite can afford on every run (minutes in a debug
/// build): `cargo test -p kxy-e2e --test continuity_model -- --ignored
/// --nocapture`.
#[test]
#[ignore = "minutes: wider bounds, run by hand"]
fn new_rules_never_hand_out_twice_within_wider_bounds() {
    let bounded = Protocol::bounded(Rules::New);
    let wider = [
        (
            "NEW rules, two rollbacks",
            Protocol {
                rollbacks: 2,
                evictions: 0,
                ..bounded.clone()
            },
        ),
        (
            "NEW rules, two crashes",
            Protocol {
                crashes: 2,
                evictions: 0,
                ..bounded.clone()
            },
        ),
        (
            "NEW rules, interval 2, settle period 3",
            Protocol {
                interval: 2,
                settle: 3,
                lease: 3,
                ..bounded.clone()
            },
        ),
        (
            "NEW rules, IDs up to 4",
            Protocol {
                max_id: 4,
                ..bounded.clone()
            },
        ),
        (
            "NEW rules, late answers burnt after the gate closed, with crashes and evictions",
            Protocol {
                replies: Replies::LaterUnlessTheGateClosed,
                ..bounded.clone()
            },
        ),
    ];
    for (what, protocol) in &wider {
        let outcome = explore(what, protocol, Search::Everything);
        assert_never_twice(what, protocol, &outcome);
    }
}
