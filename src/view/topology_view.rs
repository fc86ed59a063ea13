//! The animated architecture: nodes drawn by kind with their state as icon and text
//! (never colour alone), queues that visibly fill, and request tokens placed from the
//! snapshot (in a queue, in service, or interpolated along an edge).

use yew::prelude::*;

use crate::sim::requests::Place;
use crate::sim::snapshot::{NodeState, NodeView, Snapshot, TokenView};
use crate::sim::time::SimTime;
use crate::sim::topology::{NodeKind, NodeSpec, Topology};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 420.0;
const QUEUE_WIDTH: f64 = 200.0;
const TOKEN_GAP: f64 = 13.0;
const QUEUE_SLOTS: usize = 14;

#[derive(Properties, PartialEq)]
pub struct TopologyViewProps {
    pub topology: Topology,
    pub snapshot: Snapshot,
}

fn centre(node: &NodeSpec) -> (f64, f64) {
    (
        40.0 + node.x as f64 * (WIDTH - 80.0),
        30.0 + node.y as f64 * (HEIGHT - 60.0),
    )
}

/// An icon and a word for each state: shape and text carry the meaning.
fn state_badge(state: NodeState) -> (&'static str, &'static str) {
    match state {
        NodeState::Healthy => ("✓", "healthy"),
        NodeState::Unhealthy => ("!", "unhealthy"),
        NodeState::Down => ("✕", "down"),
        NodeState::Starting => ("…", "starting"),
        NodeState::Draining => ("↓", "draining"),
        NodeState::Open => ("⊘", "open circuit"),
        NodeState::HalfOpen => ("◐", "half-open"),
        NodeState::Off => ("○", "off"),
    }
}

#[function_component(TopologyView)]
pub fn topology_view(props: &TopologyViewProps) -> Html {
    let topology = &props.topology;
    let snapshot = &props.snapshot;
    let view_of = |index: usize| {
        snapshot
            .nodes
            .iter()
            .find(|view| view.node.0 as usize == index)
    };

    let edges = topology.edges.iter().map(|edge| {
        let (x1, y1) = centre(topology.node(edge.from));
        let (x2, y2) = centre(topology.node(edge.to));
        html! {
            <line class="edge" x1={x1.to_string()} y1={y1.to_string()} x2={x2.to_string()} y2={y2.to_string()}
                marker-end="url(#arrow)" />
        }
    });

    // Many servers share the height: draw them smaller so they never overlap.
    let servers = topology
        .nodes
        .iter()
        .filter(|node| {
            !matches!(
                node.kind,
                NodeKind::Source | NodeKind::Sink | NodeKind::Queue
            )
        })
        .count();
    let box_size = if servers > 6 {
        (104.0, 40.0)
    } else {
        (120.0, 52.0)
    };
    let nodes = topology.nodes.iter().enumerate().map(|(index, node)| {
        let view = view_of(index).cloned().unwrap_or(NodeView {
            node: crate::sim::topology::NodeId(index as u16),
            state: NodeState::Healthy,
            busy: 0,
            capacity: 0,
            queued: 0,
        });
        draw_node(node, &view, box_size)
    });

    let mut queued: Vec<&TokenView> = snapshot
        .tokens
        .iter()
        .filter(|token| matches!(token.place, Place::Queued { .. }))
        .collect();
    queued.sort_by_key(|token| match token.place {
        Place::Queued { since, .. } => (since, token.id),
        _ => (SimTime::ZERO, token.id),
    });
    // Slots in each queue follow arrival order: the front of the line is at the right.
    let mut next_slot = std::collections::BTreeMap::<u16, usize>::new();
    let mut queue_slot = std::collections::BTreeMap::<u64, usize>::new();
    for token in &queued {
        if let Place::Queued { node, .. } = token.place {
            let slot = next_slot.entry(node.0).or_insert(0);
            queue_slot.insert(token.id.0, *slot);
            *slot += 1;
        }
    }
    let tokens = snapshot.tokens.iter().filter_map(|token| {
        let (x, y) = match token.place {
            Place::Queued { node, .. } => {
                let position = queue_slot.get(&token.id.0).copied().unwrap_or(usize::MAX);
                if position >= QUEUE_SLOTS {
                    return None;
                }
                let (cx, cy) = centre(topology.node(node));
                (cx + QUEUE_WIDTH / 2.0 - 12.0 - position as f64 * TOKEN_GAP, cy)
            }
            Place::InService { node, .. } => {
                let spec = topology.node(node);
                let (cx, cy) = centre(spec);
                if matches!(spec.kind, NodeKind::Source | NodeKind::Sink | NodeKind::Queue) {
                    (cx, cy)
                } else {
                    // Right end of the box, clear of its two lines of text.
                    (cx + box_size.0 / 2.0 - 12.0, cy)
                }
            }
            Place::OnEdge { edge, depart, arrive } => {
                let spec = topology.edge(edge);
                let (x1, y1) = centre(topology.node(spec.from));
                let (x2, y2) = centre(topology.node(spec.to));
                let span = (arrive - depart).ticks().max(1) as f64;
                let done = ((snapshot.time - depart).ticks() as f64 / span).clamp(0.0, 1.0);
                (x1 + (x2 - x1) * done, y1 + (y2 - y1) * done)
            }
        };
        let class = if token.attempt > 1 { "token retry" } else { "token" };
        Some(html! {
            <circle key={token.id.0.to_string()} class={class} cx={format!("{x:.1}")} cy={format!("{y:.1}")} r="5" />
        })
    });

    html! {
        <svg class="topology" viewBox={format!("0 0 {WIDTH} {HEIGHT}")} role="img"
            aria-label="Architecture diagram with moving requests; the status text below describes it in words">
            <defs>
                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
                    <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
                </marker>
            </defs>
            <g class="edges">{ for edges }</g>
            <g class="nodes">{ for nodes }</g>
            <g class="tokens">{ for tokens }</g>
        </svg>
    }
}

fn draw_node(node: &NodeSpec, view: &NodeView, box_size: (f64, f64)) -> Html {
    let (x, y) = centre(node);
    let (icon, word) = state_badge(view.state);
    let class = format!("node node-{:?} state-{}", node.kind, view.state.as_str()).to_lowercase();
    let label_y = y + 44.0;
    let body = match node.kind {
        NodeKind::Source | NodeKind::Sink => {
            let ring = (node.kind == NodeKind::Sink).then(|| {
                html! { <circle class="ring" cx={x.to_string()} cy={y.to_string()} r="22" /> }
            });
            html! {
                <>
                    <circle class="shape" cx={x.to_string()} cy={y.to_string()} r="28" />
                    { ring }
                </>
            }
        }
        NodeKind::Queue => {
            let fill = (view.queued as f64 / QUEUE_SLOTS as f64).min(1.0);
            html! {
                <>
                    <rect class="shape" x={(x - QUEUE_WIDTH / 2.0).to_string()} y={(y - 20.0).to_string()}
                        width={QUEUE_WIDTH.to_string()} height="40" rx="4" />
                    <rect class="queue-fill" x={(x + QUEUE_WIDTH / 2.0 - QUEUE_WIDTH * fill).to_string()}
                        y={(y - 20.0).to_string()} width={(QUEUE_WIDTH * fill).to_string()} height="40" rx="4" />
                    <text class="queue-count" x={x.to_string()} y={(y - 28.0).to_string()} text-anchor="middle">
                        { format!("{} waiting", view.queued) }
                    </text>
                </>
            }
        }
        _ => {
            let (width, height) = box_size;
            let busy = if view.capacity > 0 || view.busy > 0 {
                format!(" · {}/{}", view.busy, view.capacity.max(view.busy))
            } else {
                String::new()
            };
            return html! {
                <g class={class} data-node={node.key.clone()} data-state={view.state.as_str()}>
                    <rect class="shape" x={(x - width / 2.0).to_string()} y={(y - height / 2.0).to_string()}
                        width={width.to_string()} height={height.to_string()} rx="8" />
                    <text class="label inside" x={(x - width / 2.0 + 8.0).to_string()} y={(y - 3.0).to_string()}>
                        { node.label.clone() }
                    </text>
                    <text class="state-text inside" x={(x - width / 2.0 + 8.0).to_string()} y={(y + 13.0).to_string()}>
                        { format!("{icon} {word}{busy}") }
                    </text>
                </g>
            };
        }
    };
    html! {
        <g class={class} data-node={node.key.clone()} data-state={view.state.as_str()}>
            { body }
            <text class="label" x={x.to_string()} y={label_y.to_string()} text-anchor="middle">{ node.label.clone() }</text>
        </g>
    }
}
