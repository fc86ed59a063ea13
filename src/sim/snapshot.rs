//! What the view may see of a running model at one instant: node states, live request
//! tokens and the log of notable events. Plain data, copied out; the view never holds a
//! reference into the model.

use serde::Serialize;

use super::requests::{Place, Request, RequestId};
use super::time::SimTime;
use super::topology::NodeId;

/// A node's condition, shown by shape, icon and text (never colour alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Up and passing health checks.
    Healthy,
    /// Up but failing health checks (or slow).
    Unhealthy,
    /// Crashed or switched off.
    Down,
    /// Launching; not yet taking work.
    Starting,
    /// Finishing its current work, taking no new work.
    Draining,
    /// A circuit breaker that rejects calls.
    Open,
    /// A circuit breaker letting trial calls through.
    HalfOpen,
    /// Not provisioned: a slot a scaling group may fill later (drawn faint).
    Off,
}

impl NodeState {
    /// A stable lowercase word for CSS classes, logs and screen readers.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Healthy => "healthy",
            NodeState::Unhealthy => "unhealthy",
            NodeState::Down => "down",
            NodeState::Starting => "starting",
            NodeState::Draining => "draining",
            NodeState::Open => "open",
            NodeState::HalfOpen => "half-open",
            NodeState::Off => "off",
        }
    }
}

/// One node at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    pub node: NodeId,
    pub state: NodeState,
    /// Requests being worked on here.
    pub busy: u32,
    /// How many it can work on at once (0 where it does no work).
    pub capacity: u32,
    /// Requests waiting here (for queues; 0 elsewhere).
    pub queued: u32,
}

impl NodeView {
    /// A healthy node doing no work and holding nothing (sources, sinks, routers); set
    /// the fields that differ with struct update syntax.
    pub fn plain(node: NodeId) -> Self {
        NodeView {
            node,
            state: NodeState::Healthy,
            busy: 0,
            capacity: 0,
            queued: 0,
        }
    }
}

/// One request token at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TokenView {
    pub id: RequestId,
    pub place: Place,
    pub attempt: u16,
}

impl From<&Request> for TokenView {
    fn from(request: &Request) -> Self {
        TokenView {
            id: request.id,
            place: request.place,
            attempt: request.attempt,
        }
    }
}

/// The whole visible state at `time`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub time: SimTime,
    pub nodes: Vec<NodeView>,
    /// Live requests; at most `token_limit` of them (the earliest-born first), so a
    /// backlog of a million messages does not cost a million tokens per frame.
    pub tokens: Vec<TokenView>,
    /// How many live requests were left out of `tokens`.
    pub tokens_omitted: u64,
}

impl Snapshot {
    /// Clears the snapshot for reuse, keeping its allocations.
    pub fn reset(&mut self, time: SimTime) {
        self.time = time;
        self.nodes.clear();
        self.tokens.clear();
        self.tokens_omitted = 0;
    }

    /// Fills `tokens` from live requests, keeping at most `limit` (earliest-born first).
    pub fn collect_tokens<'a>(&mut self, live: impl Iterator<Item = &'a Request>, limit: usize) {
        self.tokens.extend(live.map(TokenView::from));
        if self.tokens.len() > limit {
            self.tokens_omitted = (self.tokens.len() - limit) as u64;
            if limit == 0 {
                self.tokens.clear();
                return;
            }
            // Linear-time selection of the `limit` earliest-born, then order just those.
            self.tokens
                .select_nth_unstable_by_key(limit - 1, |token| token.id);
            self.tokens.truncate(limit);
            self.tokens.sort_unstable_by_key(|token| token.id);
        }
    }
}

/// A lesson-specific figure shown beside the standard counters (cost, duplicates...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

/// Something worth narrating or marking on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Notable {
    /// A node changed state (crashed, recovered, circuit opened...).
    StateChanged { node: NodeId, to: NodeState },
    /// The learner (or a scenario script) injected a failure or event.
    Injected { injection: String },
    /// A parameter was changed while running.
    ParameterChanged { name: String, value: String },
    /// A node was added (scaled out, launched).
    NodeAdded { node: NodeId },
    /// A node was removed (scaled in, terminated).
    NodeRemoved { node: NodeId },
}

/// A timestamped [`Notable`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoggedEvent {
    pub time: SimTime,
    #[serde(flatten)]
    pub what: Notable,
}

/// The run's notable events, bounded: past `capacity` the oldest entries are kept and
/// later ones only counted (a run that logs that much is not read entry by entry).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventLog {
    entries: Vec<LoggedEvent>,
    capacity: usize,
    overflowed: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

impl EventLog {
    pub fn with_capacity(capacity: usize) -> Self {
        EventLog {
            entries: Vec::new(),
            capacity,
            overflowed: 0,
        }
    }

    pub fn push(&mut self, time: SimTime, what: Notable) {
        if self.entries.len() < self.capacity {
            self.entries.push(LoggedEvent { time, what });
        } else {
            self.overflowed += 1;
        }
    }

    pub fn entries(&self) -> &[LoggedEvent] {
        &self.entries
    }

    /// Entries that did not fit.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Entries logged at or after `since` (for "what happened this frame").
    pub fn since(&self, since: SimTime) -> &[LoggedEvent] {
        let start = self.entries.partition_point(|entry| entry.time < since);
        &self.entries[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::requests::RequestTable;

    #[test]
    fn token_list_is_capped_and_counts_the_rest() {
        let mut table = RequestTable::new();
        for _ in 0..10 {
            table.spawn(
                SimTime::ZERO,
                Place::Queued {
                    node: NodeId(0),
                    since: SimTime::ZERO,
                },
            );
        }
        let mut snapshot = Snapshot::default();
        snapshot.collect_tokens(table.iter(), 4);
        assert_eq!(snapshot.tokens.len(), 4);
        assert_eq!(snapshot.tokens_omitted, 6);
        let ids: Vec<u64> = snapshot.tokens.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
    }

    #[test]
    fn event_log_is_bounded_and_searchable_by_time() {
        let mut log = EventLog::with_capacity(3);
        for t in [1, 5, 5, 9] {
            log.push(
                SimTime::from_ticks(t),
                Notable::Injected {
                    injection: "burst".into(),
                },
            );
        }
        assert_eq!(log.entries().len(), 3);
        assert_eq!(log.overflowed(), 1);
        assert_eq!(log.since(SimTime::from_ticks(5)).len(), 2);
    }
}
