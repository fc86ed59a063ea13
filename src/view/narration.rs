//! Words for what the model did: notable events and the current state as sentences for
//! the ARIA live region and the status line (screen readers hear what others see).

use crate::lessons::run::LessonRun;
use crate::sim::snapshot::{LoggedEvent, Notable, Snapshot};
use crate::sim::topology::{NodeKind, Topology};

/// One sentence for a logged event.
pub fn describe_event(topology: &Topology, event: &LoggedEvent) -> String {
    let at = format!("At {:.1} s", event.time.as_secs_f64());
    match &event.what {
        Notable::StateChanged { node, to } => {
            format!(
                "{at}, {} is now {}.",
                topology.node(*node).label,
                to.as_str()
            )
        }
        Notable::Injected { injection } => format!("{at}, injected: {injection}."),
        Notable::ParameterChanged { name, value } => {
            format!("{at}, {} set to {value}.", name.replace('_', " "))
        }
        Notable::NodeAdded { node } => format!("{at}, {} was added.", topology.node(*node).label),
        Notable::NodeRemoved { node } => {
            format!("{at}, {} was removed.", topology.node(*node).label)
        }
    }
}

/// The current state in one sentence: waiting, busy, done, lost.
pub fn describe_state(run: &dyn LessonRun, snapshot: &Snapshot) -> String {
    let topology = run.topology();
    let waiting: u32 = snapshot
        .nodes
        .iter()
        .filter(|view| topology.node(view.node).kind == NodeKind::Queue)
        .map(|view| view.queued)
        .sum();
    let busy: u32 = snapshot.nodes.iter().map(|view| view.busy).sum();
    let capacity: u32 = snapshot.nodes.iter().map(|view| view.capacity).sum();
    let counters = run.metrics().counters();
    let lost = counters.failed + counters.rejected + counters.dropped;
    // Nodes without a fixed number of slots report capacity 0: then only "busy".
    let busy = if capacity > 0 {
        format!("{busy} of {capacity} busy")
    } else {
        format!("{busy} busy")
    };
    format!(
        "{waiting} waiting; {busy}; {} completed; {lost} failed, rejected or dropped.",
        counters.completed
    )
}
