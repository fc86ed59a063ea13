//! The scrubbable timeline under the topology: a time slider (keyboard: arrows, Page
//! Up/Down, Home/End), markers for injected failures and state changes that jump to
//! their instant, and "step back". Seeking is the page's job (a deterministic replay);
//! this component only reports where the learner wants to be.

use yew::prelude::*;

use crate::sim::snapshot::{LoggedEvent, NodeState, Notable};
use crate::sim::topology::Topology;

use super::narration::describe_event;

/// Most markers drawn; beyond that, evenly spaced ones are kept.
const MARKER_LIMIT: usize = 80;
/// Rows of markers.
const LANES: usize = 3;
/// Events closer than this (percent of the track) are one marker.
const SAME_INSTANT: f64 = 0.3;

#[derive(Properties, PartialEq)]
pub struct TimelineProps {
    /// Simulated seconds now.
    pub now: f64,
    /// Where the run ends, in seconds.
    pub horizon: f64,
    pub topology: Topology,
    /// Notable events of the furthest run seen (including ones after `now` after a
    /// seek back).
    pub markers: Vec<LoggedEvent>,
    pub can_step_back: bool,
    /// Seconds the learner wants to see.
    pub on_seek: Callback<f64>,
    pub on_step_back: Callback<()>,
}

/// A glyph and a class for a marker (shape and text, never colour alone).
fn marker_look(event: &LoggedEvent) -> Option<(&'static str, &'static str)> {
    Some(match &event.what {
        Notable::Injected { .. } => ("⚡", "injected"),
        Notable::StateChanged { to, .. } => match to {
            NodeState::Down => ("✖", "down"),
            NodeState::Open => ("⊘", "open"),
            NodeState::HalfOpen => ("◐", "half-open"),
            NodeState::Unhealthy => ("!", "unhealthy"),
            NodeState::Healthy => ("✔", "healthy"),
            NodeState::Starting => ("▲", "starting"),
            NodeState::Draining | NodeState::Off => return None,
        },
        Notable::NodeAdded { .. } => ("+", "added"),
        Notable::NodeRemoved { .. } => ("−", "removed"),
        Notable::ParameterChanged { .. } => ("⚙", "parameter"),
    })
}

#[function_component(Timeline)]
pub fn timeline(props: &TimelineProps) -> Html {
    let horizon = props.horizon.max(1e-9);
    let on_input = props.on_seek.reform(|event: InputEvent| {
        let input: web_sys::HtmlInputElement = event.target_unchecked_into();
        input.value().parse::<f64>().unwrap_or(0.0)
    });
    let on_step_back = props.on_step_back.reform(|_: MouseEvent| ());
    let interesting: Vec<&LoggedEvent> = props
        .markers
        .iter()
        .filter(|event| marker_look(event).is_some())
        .collect();
    // Events at (almost) the same instant share one marker that lists them all, so a
    // failure that changes four things at once is one button, not a pile.
    let mut groups: Vec<Vec<&LoggedEvent>> = Vec::new();
    for event in interesting {
        let percent = event.time.as_secs_f64() / horizon * 100.0;
        match groups.last_mut() {
            Some(group)
                if percent - group[0].time.as_secs_f64() / horizon * 100.0 < SAME_INSTANT =>
            {
                group.push(event)
            }
            _ => groups.push(vec![event]),
        }
    }
    let stride = groups.len().div_ceil(MARKER_LIMIT).max(1);
    // Markers closer than ~2% of the track stack in lanes so each stays clickable.
    let mut lane_ends = [f64::NEG_INFINITY; LANES];
    let placed: Vec<(&Vec<&LoggedEvent>, f64, usize)> = groups
        .iter()
        .step_by(stride)
        .map(|group| {
            let percent = (group[0].time.as_secs_f64() / horizon * 100.0).clamp(0.0, 100.0);
            let lane = lane_ends
                .iter()
                .position(|&end| percent - end >= 2.0)
                .unwrap_or(LANES - 1);
            lane_ends[lane] = percent;
            (group, percent, lane)
        })
        .collect();
    let lanes_used = placed
        .iter()
        .map(|(_, _, lane)| lane + 1)
        .max()
        .unwrap_or(1);
    let markers = placed.into_iter().map(|(group, percent, lane)| {
        // The group shows its injection if it has one, else its first event.
        let lead = group
            .iter()
            .find(|event| matches!(event.what, Notable::Injected { .. }))
            .unwrap_or(&group[0]);
        let (glyph, class) = marker_look(lead).expect("filtered above");
        let at = group[0].time.as_secs_f64();
        let left = format!("left: {percent:.3}%; top: {}rem", lane as f64 * 1.8);
        let text = group
            .iter()
            .map(|event| describe_event(&props.topology, event))
            .collect::<Vec<_>>()
            .join("; ");
        let seek = props.on_seek.reform(move |_: MouseEvent| at);
        let future = at > props.now;
        // The count drawn on a shared marker is part of its accessible name as well
        // (WCAG 2.5.3, label in name).
        let (glyph, label) = if group.len() > 1 {
            (
                format!("{glyph}{}", group.len()),
                format!("Jump to {} events: {text}", group.len()),
            )
        } else {
            (glyph.to_owned(), format!("Jump to: {text}"))
        };
        html! {
            <li class={classes!("marker", class, future.then_some("future"))} style={left}>
                <button type="button" title={text.clone()} aria-label={label} onclick={seek}>
                    <span aria-hidden="true">{ glyph }</span>
                </button>
            </li>
        }
    });
    // A round step (0.1 s … 60 s) giving at least ~600 positions.
    let step = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0]
        .into_iter()
        .rev()
        .find(|step| horizon / step >= 600.0)
        .unwrap_or(0.1);
    html! {
        <section class="timeline" aria-label="Timeline">
            <div class="timeline-track" style={format!("padding-top: {}rem", lanes_used as f64 * 1.8)}>
                <ol class="timeline-markers" aria-label="Marked events">{ for markers }</ol>
                <input type="range" class="timeline-slider" min="0" max={horizon.to_string()}
                    step={step.to_string()} value={props.now.to_string()}
                    aria-label="Simulated time" aria-valuetext={format!("{:.1} seconds", props.now)}
                    oninput={on_input} />
            </div>
            <button type="button" class="step-back" onclick={on_step_back} disabled={!props.can_step_back}>
                <span aria-hidden="true">{ "◀ " }</span>{ "Step back" }
            </button>
        </section>
    }
}
