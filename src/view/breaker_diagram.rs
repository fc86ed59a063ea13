//! A circuit breaker's state machine (CLOSED, OPEN, HALF_OPEN, as resilience4j names
//! them) drawn with its transitions; the current state is marked by a thick outline, a
//! "now" tag and text, and the latest transitions are listed with their times.

use yew::prelude::*;

use crate::sim::snapshot::NodeState;

#[derive(Properties, PartialEq)]
pub struct BreakerDiagramProps {
    /// The guard node's state: healthy = closed.
    pub state: NodeState,
    /// (seconds, state entered), oldest first.
    pub transitions: Vec<(f64, NodeState)>,
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Open => "OPEN",
        NodeState::HalfOpen => "HALF_OPEN",
        _ => "CLOSED",
    }
}

#[function_component(BreakerDiagram)]
pub fn breaker_diagram(props: &BreakerDiagramProps) -> Html {
    let current = state_name(props.state);
    // (name, x, y, what it does)
    let boxes = [
        ("CLOSED", 10.0, 30.0, "calls pass; outcomes recorded"),
        ("OPEN", 380.0, 30.0, "calls rejected at once"),
        ("HALF_OPEN", 195.0, 150.0, "a few trial calls pass"),
    ];
    let drawn = boxes.iter().map(|&(name, x, y, what)| {
        let active = name == current;
        html! {
            <g class={classes!("breaker-state", active.then_some("current"))} data-breaker-state={name}>
                <rect x={x.to_string()} y={y.to_string()} width="170" height="54" rx="10" />
                <text x={(x + 85.0).to_string()} y={(y + 22.0).to_string()} text-anchor="middle" class="name">
                    { if active { format!("▶ {name}") } else { name.to_owned() } }
                </text>
                <text x={(x + 85.0).to_string()} y={(y + 42.0).to_string()} text-anchor="middle" class="what">{ what }</text>
            </g>
        }
    });
    let recent = props.transitions.iter().rev().take(4).map(|(at, state)| {
        html! { <li>{ format!("{at:.1} s → {}", state_name(*state)) }</li> }
    });
    html! {
        <figure class="breaker-diagram" aria-label={format!("Circuit breaker state machine; now {current}")}>
            <svg viewBox="0 0 560 215" role="img" aria-hidden="true">
                <defs>
                    <marker id="breaker-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" />
                    </marker>
                </defs>
                <g class="breaker-edges">
                    <path d="M 180 57 L 378 57" marker-end="url(#breaker-arrow)" />
                    <text x="279" y="49" text-anchor="middle">{ "failure or slow-call rate" }</text>
                    <text x="279" y="73" text-anchor="middle">{ "≥ threshold" }</text>
                    <path d="M 440 84 L 347 150" marker-end="url(#breaker-arrow)" />
                    <text x="410" y="127">{ "wait elapsed" }</text>
                    <path d="M 215 150 L 110 86" marker-end="url(#breaker-arrow)" />
                    <text x="40" y="127">{ "trials healthy" }</text>
                    <path d="M 330 150 L 420 86" marker-end="url(#breaker-arrow)" />
                    <text x="368" y="112" text-anchor="end">{ "trials fail" }</text>
                </g>
                { for drawn }
            </svg>
            <figcaption>
                <strong>{ format!("Breaker now {current}") }</strong>
                { format!(" · {} transitions", props.transitions.len()) }
                <ul class="breaker-transitions">{ for recent }</ul>
            </figcaption>
        </figure>
    }
}
