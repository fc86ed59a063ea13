//! Where every live request is: in a queue, in service at a node, or travelling an edge.
//! Models move requests through this table; snapshots read it to draw tokens, and the
//! conservation invariant counts it.

use serde::Serialize;
use slab::Slab;

use super::time::SimTime;
use super::topology::{EdgeId, NodeId};

/// A request's identity as the view sees it: unique for the whole run, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestId(pub u64);

/// A model's handle to a live request (an index into the table; reused after finish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey(usize);

/// Where a request is right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "at", rename_all = "kebab-case")]
pub enum Place {
    /// Waiting in the queue at `node` since `since` (sort by `since` for queue order).
    Queued { node: NodeId, since: SimTime },
    /// Being worked on at `node` since `since`.
    InService { node: NodeId, since: SimTime },
    /// Travelling `edge`, left at `depart`, arrives at `arrive`: the view interpolates.
    OnEdge {
        edge: EdgeId,
        depart: SimTime,
        arrive: SimTime,
    },
}

/// One live request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub id: RequestId,
    pub born: SimTime,
    pub place: Place,
    /// Delivery or retry attempt, starting at 1.
    pub attempt: u16,
}

/// The table of live requests.
#[derive(Debug, Default)]
pub struct RequestTable {
    live: Slab<Request>,
    next_id: u64,
}

impl RequestTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new request born at `born` and placed at `place`.
    pub fn spawn(&mut self, born: SimTime, place: Place) -> RequestKey {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        RequestKey(self.live.insert(Request {
            id,
            born,
            place,
            attempt: 1,
        }))
    }

    /// Moves a live request. Panics if `key` is not live (a model bug).
    pub fn move_to(&mut self, key: RequestKey, place: Place) {
        self.live[key.0].place = place;
    }

    /// Counts one more attempt (a redelivery or retry).
    pub fn next_attempt(&mut self, key: RequestKey) -> u16 {
        let request = &mut self.live[key.0];
        request.attempt = request.attempt.saturating_add(1);
        request.attempt
    }

    /// Removes a request that completed, failed, was rejected or dropped.
    pub fn finish(&mut self, key: RequestKey) -> Request {
        self.live.remove(key.0)
    }

    pub fn get(&self, key: RequestKey) -> &Request {
        &self.live[key.0]
    }

    /// Number of live requests: the "in flight" side of the conservation invariant.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Total requests ever spawned.
    pub fn spawned(&self) -> u64 {
        self.next_id
    }

    /// Every live request, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Request> {
        self.live.iter().map(|(_, request)| request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_even_when_slots_are() {
        let mut table = RequestTable::new();
        let place = Place::Queued {
            node: NodeId(0),
            since: SimTime::ZERO,
        };
        let a = table.spawn(SimTime::ZERO, place);
        let first_id = table.get(a).id;
        table.finish(a);
        let b = table.spawn(SimTime::ZERO, place);
        assert_ne!(table.get(b).id, first_id);
        assert_eq!(table.len(), 1);
        assert_eq!(table.spawned(), 2);
    }

    #[test]
    fn attempts_count_up_from_one() {
        let mut table = RequestTable::new();
        let key = table.spawn(
            SimTime::ZERO,
            Place::InService {
                node: NodeId(1),
                since: SimTime::ZERO,
            },
        );
        assert_eq!(table.get(key).attempt, 1);
        assert_eq!(table.next_attempt(key), 2);
    }
}
