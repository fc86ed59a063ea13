//! The event queue and simulation loop: a min-heap ordered by (time, sequence) so that
//! events due at the same tick run first-in first-out, with cancellable timers.
//!
//! Modelled on SimPy's `Environment` (heap keyed by time then insertion id; `step`, `run`,
//! `peek`) and desque (scheduling into the past is an error value, not a silent fix).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;

use super::time::{SimDuration, SimTime};

/// Why an event could not be scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// The requested time is earlier than the current simulated time.
    InThePast { now: SimTime, requested: SimTime },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::InThePast { now, requested } => write!(
                f,
                "cannot schedule an event at {requested}: simulated time is already {now}"
            ),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// A handle to a cancellable timer (health check, visibility timeout, breaker wait...).
///
/// Handles are never reused for a different timer: cancelling a handle whose timer has
/// already fired or been cancelled is a harmless no-op that returns `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    slot: u32,
    generation: u32,
}

const NO_TIMER: u32 = u32::MAX;

struct Entry<E> {
    /// (time << 64) | sequence: one integer comparison orders by time, then FIFO.
    key: u128,
    timer_slot: u32,
    timer_generation: u32,
    event: E,
}

impl<E> Entry<E> {
    fn time(&self) -> SimTime {
        SimTime::from_ticks((self.key >> 64) as u64)
    }
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest key first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

#[derive(Clone, Copy)]
struct TimerSlot {
    generation: u32,
    armed: bool,
}

/// The pending events of one run and its clock.
///
/// Invariant: `now` never decreases, and every pending event's time is `>= now`.
pub struct Scheduler<E> {
    now: SimTime,
    next_sequence: u64,
    heap: BinaryHeap<Entry<E>>,
    timer_slots: Vec<TimerSlot>,
    free_timer_slots: Vec<u32>,
    cancelled_in_heap: usize,
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Scheduler<E> {
    pub fn new() -> Self {
        Scheduler {
            now: SimTime::ZERO,
            next_sequence: 0,
            heap: BinaryHeap::new(),
            timer_slots: Vec::new(),
            free_timer_slots: Vec::new(),
            cancelled_in_heap: 0,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Number of events still due (cancelled timers not counted).
    pub fn pending(&self) -> usize {
        self.heap.len() - self.cancelled_in_heap
    }

    /// Schedules `event` at absolute time `at`; `at == now` is allowed and runs after
    /// everything already scheduled for `now`.
    pub fn schedule_at(&mut self, at: SimTime, event: E) -> Result<(), ScheduleError> {
        if at < self.now {
            return Err(ScheduleError::InThePast {
                now: self.now,
                requested: at,
            });
        }
        self.push(at, NO_TIMER, 0, event);
        Ok(())
    }

    /// Schedules `event` after `delay` (zero delay runs after the events already due now).
    pub fn schedule_in(&mut self, delay: SimDuration, event: E) {
        let at = self.now + delay;
        self.push(at, NO_TIMER, 0, event);
    }

    /// Schedules a cancellable event after `delay` and returns its handle.
    pub fn schedule_timer_in(&mut self, delay: SimDuration, event: E) -> TimerHandle {
        let slot = match self.free_timer_slots.pop() {
            Some(slot) => slot,
            None => {
                self.timer_slots.push(TimerSlot {
                    generation: 0,
                    armed: false,
                });
                (self.timer_slots.len() - 1) as u32
            }
        };
        let entry = &mut self.timer_slots[slot as usize];
        entry.armed = true;
        let generation = entry.generation;
        let at = self.now + delay;
        self.push(at, slot, generation, event);
        TimerHandle { slot, generation }
    }

    /// Cancels a pending timer. Returns `true` if it was pending, `false` if it had already
    /// fired or been cancelled.
    pub fn cancel(&mut self, handle: TimerHandle) -> bool {
        match self.timer_slots.get_mut(handle.slot as usize) {
            Some(slot) if slot.armed && slot.generation == handle.generation => {
                slot.armed = false;
                slot.generation = slot.generation.wrapping_add(1);
                self.free_timer_slots.push(handle.slot);
                self.cancelled_in_heap += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether the timer behind `handle` is still pending.
    pub fn is_pending(&self, handle: TimerHandle) -> bool {
        self.timer_slots
            .get(handle.slot as usize)
            .is_some_and(|slot| slot.armed && slot.generation == handle.generation)
    }

    /// The time of the next live event, discarding cancelled timers at the front.
    pub fn peek_time(&mut self) -> Option<SimTime> {
        self.discard_cancelled_front();
        self.heap.peek().map(Entry::time)
    }

    /// Removes the next live event, advances the clock to its time and returns it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        loop {
            let entry = self.heap.pop()?;
            if !self.settle(&entry) {
                continue;
            }
            let time = entry.time();
            self.now = time;
            return Some((time, entry.event));
        }
    }

    /// Removes the next live event if it is due at or before `limit`.
    pub fn pop_until(&mut self, limit: SimTime) -> Option<(SimTime, E)> {
        match self.peek_time() {
            Some(time) if time <= limit => self.pop(),
            _ => None,
        }
    }

    /// Moves the clock forward to `t` with no event (for animation between events).
    /// Fails if `t` is in the past or would skip over a pending event.
    pub fn advance_to(&mut self, t: SimTime) -> Result<(), ScheduleError> {
        if t < self.now {
            return Err(ScheduleError::InThePast {
                now: self.now,
                requested: t,
            });
        }
        if let Some(next) = self.peek_time() {
            debug_assert!(next >= t, "advance_to would skip a pending event");
            if next < t {
                return Err(ScheduleError::InThePast {
                    now: t,
                    requested: next,
                });
            }
        }
        self.now = t;
        Ok(())
    }

    fn push(&mut self, at: SimTime, timer_slot: u32, timer_generation: u32, event: E) {
        let key = ((at.ticks() as u128) << 64) | self.next_sequence as u128;
        self.next_sequence += 1;
        self.heap.push(Entry {
            key,
            timer_slot,
            timer_generation,
            event,
        });
    }

    /// For a popped entry: true if it should run; frees its timer slot if it was a timer.
    fn settle(&mut self, entry: &Entry<E>) -> bool {
        if entry.timer_slot == NO_TIMER {
            return true;
        }
        let slot = &mut self.timer_slots[entry.timer_slot as usize];
        if slot.armed && slot.generation == entry.timer_generation {
            slot.armed = false;
            slot.generation = slot.generation.wrapping_add(1);
            self.free_timer_slots.push(entry.timer_slot);
            true
        } else {
            self.cancelled_in_heap -= 1;
            false
        }
    }

    fn discard_cancelled_front(&mut self) {
        while self.cancelled_in_heap > 0 {
            let Some(top) = self.heap.peek() else { return };
            if top.timer_slot == NO_TIMER {
                return;
            }
            let slot = self.timer_slots[top.timer_slot as usize];
            if slot.armed && slot.generation == top.timer_generation {
                return;
            }
            self.heap.pop();
            self.cancelled_in_heap -= 1;
        }
    }
}

/// A simulation model: reacts to its own events and schedules more.
pub trait Model {
    type Event;

    /// Handles one event at `scheduler.now()`.
    fn handle(&mut self, event: Self::Event, scheduler: &mut Scheduler<Self::Event>);
}

/// A model together with its event queue: the stepping API the view and runner drive.
pub struct Simulation<M: Model> {
    pub model: M,
    pub scheduler: Scheduler<M::Event>,
    events_processed: u64,
}

impl<M: Model> Simulation<M> {
    /// Wraps a model whose initial events are already in `scheduler`.
    pub fn new(model: M, scheduler: Scheduler<M::Event>) -> Self {
        Simulation {
            model,
            scheduler,
            events_processed: 0,
        }
    }

    pub fn now(&self) -> SimTime {
        self.scheduler.now()
    }

    /// Total events handled since the start of the run.
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// Handles the next event, if any. Returns whether one was handled.
    pub fn step(&mut self) -> bool {
        match self.scheduler.pop() {
            Some((_, event)) => {
                self.model.handle(event, &mut self.scheduler);
                self.events_processed += 1;
                true
            }
            None => false,
        }
    }

    /// Handles every event due at or before `t`, then sets the clock to `t` (if `t` is
    /// in the future). Returns the number of events handled.
    pub fn run_until(&mut self, t: SimTime) -> u64 {
        self.run_until_with_budget(t, u64::MAX).events
    }

    /// Handles at most `budget` events, in order, with no time limit.
    pub fn run_events(&mut self, budget: u64) -> u64 {
        let mut handled = 0;
        while handled < budget && self.step() {
            handled += 1;
        }
        handled
    }

    /// Handles events due at or before `t`, stopping early after `budget` events: the
    /// chunked "run to end" that lets the page breathe between chunks. The clock moves to
    /// `t` only when every event up to `t` has been handled.
    pub fn run_until_with_budget(&mut self, t: SimTime, budget: u64) -> ChunkOutcome {
        let mut handled = 0;
        while handled < budget {
            match self.scheduler.pop_until(t) {
                Some((_, event)) => {
                    self.model.handle(event, &mut self.scheduler);
                    handled += 1;
                }
                None => {
                    if t > self.scheduler.now() && t != SimTime::MAX {
                        // Cannot fail: no event is due before t and t is in the future.
                        let _ = self.scheduler.advance_to(t);
                    }
                    self.events_processed += handled;
                    return ChunkOutcome {
                        events: handled,
                        reached: true,
                    };
                }
            }
        }
        self.events_processed += handled;
        let reached = self.scheduler.peek_time().is_none_or(|next| next > t);
        if reached && t > self.scheduler.now() && t != SimTime::MAX {
            let _ = self.scheduler.advance_to(t);
        }
        ChunkOutcome {
            events: handled,
            reached,
        }
    }
}

/// What one bounded chunk of work achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// Events handled in this chunk.
    pub events: u64,
    /// Whether the target time was reached (all events up to it handled).
    pub reached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that records the order it saw events in and can schedule follow-ups.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<(u64, &'static str)>,
    }

    impl Model for Recorder {
        type Event = &'static str;
        fn handle(&mut self, event: &'static str, scheduler: &mut Scheduler<&'static str>) {
            self.seen.push((scheduler.now().ticks(), event));
            if event == "spawn" {
                scheduler.schedule_in(SimDuration::ZERO, "child-now");
                scheduler.schedule_in(SimDuration::from_ticks(5), "child-later");
            }
        }
    }

    fn at(ticks: u64) -> SimTime {
        SimTime::from_ticks(ticks)
    }

    #[test]
    fn events_run_in_time_order() {
        let mut s = Scheduler::new();
        s.schedule_at(at(30), "c").unwrap();
        s.schedule_at(at(10), "a").unwrap();
        s.schedule_at(at(20), "b").unwrap();
        let order: Vec<_> = std::iter::from_fn(|| s.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn ties_run_first_in_first_out() {
        let mut s = Scheduler::new();
        for name in ["first", "second", "third", "fourth"] {
            s.schedule_at(at(7), name).unwrap();
        }
        let order: Vec<_> = std::iter::from_fn(|| s.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["first", "second", "third", "fourth"]);
    }

    #[test]
    fn scheduling_into_the_past_is_an_error() {
        let mut s = Scheduler::new();
        s.schedule_at(at(100), "x").unwrap();
        s.pop();
        assert_eq!(
            s.schedule_at(at(99), "late"),
            Err(ScheduleError::InThePast {
                now: at(100),
                requested: at(99)
            })
        );
        assert!(s.schedule_at(at(100), "now is fine").is_ok());
        assert!(s.advance_to(at(50)).is_err());
    }

    #[test]
    fn cancelled_timers_never_fire() {
        let mut s = Scheduler::new();
        let keep = s.schedule_timer_in(SimDuration::from_ticks(10), "keep");
        let drop = s.schedule_timer_in(SimDuration::from_ticks(5), "drop");
        assert!(s.is_pending(drop));
        assert!(s.cancel(drop));
        assert!(!s.cancel(drop), "second cancel is a no-op");
        assert_eq!(s.pending(), 1);
        assert_eq!(s.peek_time(), Some(at(10)));
        assert_eq!(s.pop(), Some((at(10), "keep")));
        assert!(!s.cancel(keep), "cancelling a fired timer is a no-op");
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn reused_timer_slots_do_not_confuse_old_handles() {
        let mut s = Scheduler::new();
        let old = s.schedule_timer_in(SimDuration::from_ticks(1), "old");
        s.cancel(old);
        let new = s.schedule_timer_in(SimDuration::from_ticks(2), "new");
        assert!(
            !s.cancel(old),
            "stale handle must not cancel the slot's new timer"
        );
        assert!(s.is_pending(new));
        assert_eq!(s.pop(), Some((at(2), "new")));
    }

    #[test]
    fn run_until_handles_due_events_and_moves_the_clock() {
        let mut s = Scheduler::new();
        s.schedule_at(at(3), "spawn").unwrap();
        s.schedule_at(at(20), "after").unwrap();
        let mut sim = Simulation::new(Recorder::default(), s);
        assert_eq!(sim.run_until(at(10)), 3);
        assert_eq!(sim.now(), at(10));
        assert_eq!(
            sim.model.seen,
            [(3, "spawn"), (3, "child-now"), (8, "child-later")]
        );
        assert_eq!(
            sim.run_until(at(20)),
            1,
            "an event exactly at the limit runs"
        );
        assert_eq!(sim.events_processed(), 4);
    }

    #[test]
    fn chunked_runs_match_one_long_run() {
        let build = || {
            let mut s = Scheduler::new();
            for i in 0..50 {
                s.schedule_at(at(i * 3 % 17), if i % 2 == 0 { "spawn" } else { "x" })
                    .unwrap();
            }
            Simulation::new(Recorder::default(), s)
        };
        let mut whole = build();
        whole.run_until(at(1000));
        let mut chunked = build();
        loop {
            let outcome = chunked.run_until_with_budget(at(1000), 7);
            assert!(outcome.events <= 7);
            if outcome.reached {
                break;
            }
        }
        assert_eq!(whole.model.seen, chunked.model.seen);
        assert_eq!(chunked.now(), at(1000));
    }

    #[test]
    fn run_events_stops_at_the_budget() {
        let mut s = Scheduler::new();
        for i in 0..10 {
            s.schedule_at(at(i), "x").unwrap();
        }
        let mut sim = Simulation::new(Recorder::default(), s);
        assert_eq!(sim.run_events(4), 4);
        assert_eq!(sim.now(), at(3));
        assert_eq!(sim.run_events(100), 6);
    }
}
