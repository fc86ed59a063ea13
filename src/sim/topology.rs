//! The static shape of a lesson's system: named nodes and the edges requests travel on,
//! with layout hints for drawing. Built once per run; the snapshot refers to it by id.

use serde::Serialize;

/// Index of a node in its [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeId(pub u16);

/// Index of an edge in its [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EdgeId(pub u16);

/// What a node is, so the view can pick its shape and icon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Where requests come from (clients, producers, users).
    Source,
    /// Where finished requests go (the response back to the client).
    Sink,
    /// A FIFO buffer (a queue, a backlog, a topic subscription).
    Queue,
    /// Something that does work (a server, worker, function, database).
    Server,
    /// Something that forwards (a load balancer, router, broker, DNS).
    Router,
    /// A store of state (cache, session store, database replica).
    Store,
    /// A guard in front of a dependency (circuit breaker, rate limiter, bulkhead).
    Guard,
}

/// One node: a stable machine-readable key, a short label and a layout position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSpec {
    pub key: String,
    pub label: String,
    pub kind: NodeKind,
    /// Layout position in a unit box: x and y in [0, 1], left to right, top to bottom.
    pub x: f32,
    pub y: f32,
}

/// A directed edge that requests travel along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EdgeSpec {
    pub from: NodeId,
    pub to: NodeId,
}

/// Nodes and edges of one run. Node and edge ids are indices into these vectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    pub edges: Vec<EdgeSpec>,
}

impl Topology {
    /// Adds a node and returns its id.
    pub fn add_node(&mut self, key: &str, label: &str, kind: NodeKind, x: f32, y: f32) -> NodeId {
        self.nodes.push(NodeSpec {
            key: key.to_owned(),
            label: label.to_owned(),
            kind,
            x,
            y,
        });
        NodeId((self.nodes.len() - 1) as u16)
    }

    /// Adds an edge and returns its id.
    pub fn add_edge(&mut self, from: NodeId, to: NodeId) -> EdgeId {
        self.edges.push(EdgeSpec { from, to });
        EdgeId((self.edges.len() - 1) as u16)
    }

    pub fn node(&self, id: NodeId) -> &NodeSpec {
        &self.nodes[id.0 as usize]
    }

    pub fn edge(&self, id: EdgeId) -> EdgeSpec {
        self.edges[id.0 as usize]
    }

    /// Looks a node up by its key.
    pub fn find(&self, key: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|node| node.key == key)
            .map(|index| NodeId(index as u16))
    }
}
