//! The lesson page: owns the running lesson, drives it from `requestAnimationFrame`, and
//! lays out transport, parameters, injections, the animated topology, live charts and
//! the spoken status. Starts paused.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo::render::{request_animation_frame, AnimationFrame};
use yew::prelude::*;

use crate::embed::{self, HostCommand};
use crate::learning::progress::Progress;
use crate::lessons::params::{Liveness, ParamValue, ParamValues, Seed};
use crate::lessons::run::LessonCommand;
use crate::route::{LessonRoute, Panel, Presentation, Route, Scheduled};

use super::breaker_diagram::BreakerDiagram;
use super::charts::{chart_data, Charts};
use super::figures::format_figure;
use super::injections::Injections;
use super::lesson_content::{use_lesson_content, ContentNotice, ContentState};
use super::narration::{describe_event, describe_state};
use super::narrative::Narrative;
use super::param_controls::ParamControls;
use super::quiz::Quiz;
use super::runtime::LessonRuntime;
use super::runtime::SPEEDS;
use super::share_bar::{ExportKind, ShareBar};
use super::shortcuts::{shortcut_for, Shortcut, ShortcutsHelp};
use super::sweep_table::SweepTable;
use super::timeline::Timeline;
use super::topology_view::TopologyView;
use super::transport::Transport;
use super::utilisation_chart::UtilisationChart;

/// The per-frame callback, shared so each frame can schedule the next; emptied on
/// cleanup to break the cycle.
type FrameCallback = Rc<RefCell<Option<Box<dyn Fn(f64)>>>>;

#[derive(Properties, PartialEq)]
pub struct LessonPageProps {
    pub route: LessonRoute,
    /// Embed mode, visible panels, locked parameters.
    pub presentation: Presentation,
    /// The page changed its own route (parameter, seed): update the address.
    pub on_route_change: Callback<LessonRoute>,
    pub on_home: Callback<()>,
    pub progress: Progress,
    /// (lesson id, question id, correct)
    pub on_answer: Callback<(String, String, bool)>,
    /// Commands from a host page, taken when `host_tick` changes.
    pub host_inbox: super::HostInbox,
    pub host_tick: u64,
}

#[function_component(LessonPage)]
pub fn lesson_page(props: &LessonPageProps) -> Html {
    let runtime = use_mut_ref(|| LessonRuntime::new(&props.route));
    let playing = use_state_eq(|| false);
    let fast_forwarding = use_state_eq(|| false);
    let speed = use_state_eq(|| 1.0f64);
    let frame = use_state(|| 0u64);
    let message = use_state(|| None::<String>);
    let heard = use_mut_ref(|| 0usize);
    let reduced_motion = use_memo((), |_| prefers_reduced_motion());

    // A new route from outside (link, back button) rebuilds the run.
    {
        let runtime = runtime.clone();
        let frame = frame.clone();
        let playing = playing.clone();
        use_effect_with(props.route.clone(), move |route| {
            if runtime.borrow().route != *route {
                let comparing = runtime.borrow().partner.is_some();
                *runtime.borrow_mut() = LessonRuntime::rebuilt(route, comparing);
                playing.set(false);
                frame.set(*frame + 1);
            }
        });
    }

    // The animation loop: one model advance per frame while playing or fast-forwarding.
    {
        let runtime = runtime.clone();
        let frame = frame.clone();
        let fast_forwarding_state = fast_forwarding.clone();
        let playing_state = playing.clone();
        use_effect_with(
            (*playing, *fast_forwarding, *speed, *reduced_motion),
            move |&(playing, fast_forwarding, speed, reduced_motion)| {
                let handle: Rc<RefCell<Option<AnimationFrame>>> = Rc::new(RefCell::new(None));
                let tick: FrameCallback = Rc::new(RefCell::new(None));
                if playing || fast_forwarding {
                    let last = Rc::new(Cell::new(None::<f64>));
                    let last_drawn = Rc::new(Cell::new(None::<f64>));
                    let counter = Rc::new(Cell::new(*frame));
                    let next_handle = handle.clone();
                    let next_tick = tick.clone();
                    *tick.borrow_mut() = Some(Box::new(move |timestamp: f64| {
                        let elapsed = last
                            .get()
                            .map_or(0.0, |previous| (timestamp - previous) / 1000.0);
                        last.set(Some(timestamp));
                        let done = {
                            let mut runtime = runtime.borrow_mut();
                            if fast_forwarding {
                                runtime.fast_forward_frame()
                            } else {
                                runtime.play_frame(elapsed, speed);
                                false
                            }
                        };
                        // With reduced motion the picture changes in discrete steps
                        // (twice a second) instead of tokens gliding every frame.
                        let due = !reduced_motion
                            || done
                            || last_drawn
                                .get()
                                .is_none_or(|drawn| timestamp - drawn >= 500.0);
                        if due {
                            last_drawn.set(Some(timestamp));
                            counter.set(counter.get() + 1);
                            frame.set(counter.get());
                        }
                        if done {
                            fast_forwarding_state.set(false);
                            playing_state.set(false);
                            return;
                        }
                        let again = next_tick.clone();
                        *next_handle.borrow_mut() = Some(request_animation_frame(move |t| {
                            if let Some(tick) = again.borrow().as_ref() {
                                tick(t)
                            }
                        }));
                    }));
                    let first = tick.clone();
                    *handle.borrow_mut() = Some(request_animation_frame(move |t| {
                        if let Some(tick) = first.borrow().as_ref() {
                            tick(t)
                        }
                    }));
                }
                move || {
                    tick.borrow_mut().take();
                    handle.borrow_mut().take();
                }
            },
        );
    }

    // Keyboard shortcuts (see `shortcuts::KEYS`), anywhere on the page except while
    // typing in a form field, and except Space/Enter on buttons and links (which press
    // them). The listener is registered once and calls the latest handler.
    let help_open = use_state_eq(|| false);
    let key_handler = use_mut_ref(|| None::<Callback<Shortcut>>);
    {
        let key_handler = key_handler.clone();
        use_effect_with((), move |_| {
            let document = gloo::utils::document();
            let options = gloo::events::EventListenerOptions::enable_prevent_default();
            let listener = gloo::events::EventListener::new_with_options(
                &document,
                "keydown",
                options,
                move |event| {
                    let event: &web_sys::KeyboardEvent = wasm_bindgen::JsCast::unchecked_ref(event);
                    if event.ctrl_key() || event.alt_key() || event.meta_key() {
                        return;
                    }
                    let key = event.key();
                    let tag = event
                        .target()
                        .and_then(|target| {
                            wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(target).ok()
                        })
                        .map(|element| element.tag_name().to_ascii_lowercase())
                        .unwrap_or_default();
                    let typing = matches!(tag.as_str(), "input" | "select" | "textarea");
                    let pressing = matches!(tag.as_str(), "button" | "a" | "summary")
                        && (key == " " || key == "Enter");
                    if (typing && key != "Escape") || pressing {
                        return;
                    }
                    let Some(shortcut) = shortcut_for(&key) else {
                        return;
                    };
                    if let Some(handler) = key_handler.borrow().as_ref() {
                        event.prevent_default();
                        handler.emit(shortcut);
                    }
                },
            );
            move || drop(listener)
        });
    }

    let spec = props.route.spec();
    let (content_state, retry_content) = use_lesson_content(spec.id);
    let bump = {
        let frame = frame.clone();
        move || frame.set(*frame + 1)
    };

    let on_toggle = {
        let playing = playing.clone();
        Callback::from(move |_| playing.set(!*playing))
    };
    let on_step = {
        let runtime = runtime.clone();
        let bump = bump.clone();
        Callback::from(move |_| {
            runtime.borrow_mut().step();
            bump();
        })
    };
    let on_reset = {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let fast_forwarding = fast_forwarding.clone();
        let heard = heard.clone();
        let bump = bump.clone();
        let on_route_change = props.on_route_change.clone();
        Callback::from(move |_| {
            // Reset starts over clean: the scheduled commands go too.
            let mut route = runtime.borrow().route.clone();
            route.schedule.clear();
            let comparing = runtime.borrow().partner.is_some();
            *runtime.borrow_mut() = LessonRuntime::rebuilt(&route, comparing);
            *heard.borrow_mut() = 0;
            playing.set(false);
            fast_forwarding.set(false);
            on_route_change.emit(route);
            bump();
        })
    };
    let on_run_to_end = {
        let fast_forwarding = fast_forwarding.clone();
        let playing = playing.clone();
        Callback::from(move |_| {
            playing.set(false);
            fast_forwarding.set(true);
        })
    };
    let on_seek = {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let fast_forwarding = fast_forwarding.clone();
        let bump = bump.clone();
        Callback::from(move |seconds: f64| {
            if *fast_forwarding {
                return;
            }
            playing.set(false);
            runtime
                .borrow_mut()
                .seek(crate::sim::time::SimTime::from_secs_f64(seconds.max(0.0)));
            bump();
        })
    };
    let on_step_back = {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let bump = bump.clone();
        Callback::from(move |_| {
            playing.set(false);
            runtime.borrow_mut().step_back();
            bump();
        })
    };
    let on_speed = {
        let speed = speed.clone();
        Callback::from(move |value: f64| speed.set(value))
    };
    let on_seed = {
        let runtime = runtime.clone();
        let message = message.clone();
        let on_route_change = props.on_route_change.clone();
        Callback::from(move |text: String| match Seed::parse(&text) {
            Ok(seed) => {
                let mut route = runtime.borrow().route.clone();
                route.seed = seed;
                message.set(None);
                on_route_change.emit(route);
            }
            Err(problem) => message.set(Some(problem)),
        })
    };
    let on_param = {
        let runtime = runtime.clone();
        let message = message.clone();
        let on_route_change = props.on_route_change.clone();
        let bump = bump.clone();
        Callback::from(move |(name, value): (&'static str, ParamValue)| {
            let mut route = runtime.borrow().route.clone();
            let Ok(spec) = route.params.spec(name) else {
                return;
            };
            // Before the run has started, every change is a start value.
            let started = runtime.borrow().run.events_processed() > 0;
            if spec.liveness == Liveness::Live && started {
                // A live change joins the run's journal (and so the link's schedule).
                let command = LessonCommand::SetParam {
                    name: name.to_owned(),
                    value,
                };
                let mut runtime = runtime.borrow_mut();
                match runtime.apply(&command) {
                    Ok(()) => message.set(None),
                    Err(problem) => {
                        message.set(Some(problem.to_string()));
                        return;
                    }
                }
                route = runtime.route.clone();
            } else if route.params.set(name, value).is_err() {
                return;
            }
            // A restart parameter changes how the run starts: the page rebuilds it from
            // the new route, keeping the schedule.
            on_route_change.emit(route);
            bump();
        })
    };
    let on_inject = {
        let runtime = runtime.clone();
        let message = message.clone();
        let bump = bump.clone();
        let on_route_change = props.on_route_change.clone();
        Callback::from(move |id: &'static str| {
            let result = runtime
                .borrow_mut()
                .apply(&LessonCommand::Inject(id.to_owned()));
            match result {
                // The injection joins the link's schedule.
                Ok(()) => {
                    message.set(None);
                    on_route_change.emit(runtime.borrow().route.clone());
                }
                Err(problem) => message.set(Some(problem.to_string())),
            }
            bump();
        })
    };
    let on_compare = {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let heard = heard.clone();
        let bump = bump.clone();
        Callback::from(move |_: MouseEvent| {
            let comparing = runtime.borrow().partner.is_some();
            runtime.borrow_mut().set_comparing(!comparing);
            *heard.borrow_mut() = 0;
            playing.set(false);
            bump();
        })
    };
    // Commands from the host page (embedding): the same paths as the buttons.
    {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let inbox = props.host_inbox.clone();
        let on_reset = on_reset.clone();
        let on_inject = on_inject.clone();
        let on_route_change = props.on_route_change.clone();
        let origins = props.presentation.origins.clone();
        let bump = bump.clone();
        use_effect_with(props.host_tick, move |_| {
            let commands: Vec<HostCommand> = inbox.0.borrow_mut().drain(..).collect();
            for command in commands {
                let problem = match command {
                    HostCommand::Play => {
                        playing.set(true);
                        None
                    }
                    HostCommand::Pause => {
                        playing.set(false);
                        None
                    }
                    HostCommand::Reset => {
                        on_reset.emit(());
                        None
                    }
                    HostCommand::Inject(id) => match spec.injection(&id) {
                        Some(injection) => {
                            on_inject.emit(injection.id);
                            None
                        }
                        None => Some(format!("this lesson has no failure called '{id}'")),
                    },
                    HostCommand::SetParams(pairs) => {
                        apply_host_params(&runtime, &pairs, &on_route_change).err()
                    }
                    // Handled by the app.
                    HostCommand::ResetProgress => None,
                };
                if let Some(problem) = problem {
                    super::host_bridge::post(&embed::error(&problem), &origins);
                }
            }
            bump();
        });
    }
    let on_export = {
        let runtime = runtime.clone();
        let message = message.clone();
        Callback::from(move |kind: ExportKind| {
            let runtime = runtime.borrow();
            let stem = format!(
                "{}-seed{}-t{}",
                spec.id,
                runtime.route.seed.0,
                runtime.run.now().as_secs_f64().round()
            );
            let result = match kind {
                ExportKind::ChartsSvg => super::export::charts_as_svg()
                    .ok_or_else(|| "there are no charts on the page".to_owned())
                    .and_then(|svg| {
                        super::export::download(
                            &format!("{stem}-charts.svg"),
                            "image/svg+xml",
                            &svg,
                        )
                    }),
                ExportKind::ChartsPng => {
                    super::export::download_charts_png(&format!("{stem}-charts.png"))
                }
                ExportKind::MetricsCsv => {
                    let charts = chart_data(runtime.run.metrics(), runtime.run.now());
                    super::export::download(
                        &format!("{stem}-series.csv"),
                        "text/csv",
                        &super::export::charts_csv(&charts),
                    )
                }
                ExportKind::MetricsJson => super::export::download(
                    &format!("{stem}-metrics.json"),
                    "application/json",
                    &metrics_json(&runtime),
                ),
            };
            message.set(
                result
                    .err()
                    .map(|problem| format!("Could not export: {problem}.")),
            );
        })
    };
    let help_button = use_node_ref();
    {
        // Focus goes back to the help button in the same render that removes the
        // dialog, so no one ever sees focus stranded on the page body.
        let help_button = help_button.clone();
        let was_open = use_mut_ref(|| false);
        use_effect_with(*help_open, move |open| {
            if *was_open.borrow() && !*open {
                if let Some(button) = help_button.cast::<web_sys::HtmlElement>() {
                    let _ = button.focus();
                }
            }
            *was_open.borrow_mut() = *open;
        });
    }
    let on_close_help = {
        let help_open = help_open.clone();
        Callback::from(move |_: ()| help_open.set(false))
    };
    let on_shortcut = {
        let playing = *playing;
        let fast_forwarding = *fast_forwarding;
        let current_speed = *speed;
        let help_open = help_open.clone();
        let on_close_help = on_close_help.clone();
        let (on_toggle, on_step, on_step_back, on_run_to_end, on_reset, on_speed, on_inject) = (
            on_toggle.clone(),
            on_step.clone(),
            on_step_back.clone(),
            on_run_to_end.clone(),
            on_reset.clone(),
            on_speed.clone(),
            on_inject.clone(),
        );
        Callback::from(move |shortcut: Shortcut| {
            if *help_open {
                // The dialog is modal: only closing it works.
                if matches!(shortcut, Shortcut::CloseHelp | Shortcut::Help) {
                    on_close_help.emit(());
                }
                return;
            }
            let speed_index = SPEEDS
                .iter()
                .position(|s| (*s - current_speed).abs() < 1e-9)
                .unwrap_or(2);
            match shortcut {
                Shortcut::TogglePlay if !fast_forwarding => on_toggle.emit(()),
                Shortcut::Step if !playing && !fast_forwarding => on_step.emit(()),
                Shortcut::StepBack if !fast_forwarding => on_step_back.emit(()),
                Shortcut::RunToEnd if !fast_forwarding => on_run_to_end.emit(()),
                Shortcut::Reset => on_reset.emit(()),
                Shortcut::Slower => on_speed.emit(SPEEDS[speed_index.saturating_sub(1)]),
                Shortcut::Faster => on_speed.emit(SPEEDS[(speed_index + 1).min(SPEEDS.len() - 1)]),
                Shortcut::Inject(index) => {
                    if let Some(injection) = spec.injections.get(index) {
                        on_inject.emit(injection.id);
                    }
                }
                Shortcut::Help => help_open.set(true),
                _ => {}
            }
        })
    };
    *key_handler.borrow_mut() = Some(on_shortcut);
    let on_open_help = {
        let help_open = help_open.clone();
        Callback::from(move |_: MouseEvent| help_open.set(true))
    };
    let shortcuts_dialog = help_open.then(|| {
        let injections: Vec<&'static str> = spec.injections.iter().map(|i| i.label).collect();
        html! { <ShortcutsHelp {injections} on_close={on_close_help.clone()} /> }
    });
    let lesson_content = match content_state {
        ContentState::Ready(content) => Some(content),
        ContentState::Loading | ContentState::Failed(_) => None,
    };
    let on_try = {
        let runtime = runtime.clone();
        let playing = playing.clone();
        let message = message.clone();
        let on_route_change = props.on_route_change.clone();
        let heard = heard.clone();
        let bump = bump.clone();
        Callback::from(move |index: usize| {
            let Some(step) = lesson_content.and_then(|c| c.try_this.get(index)) else {
                return;
            };
            let mut route = runtime.borrow().route.clone();
            match ParamValues::from_assignments(spec.params, step.set.iter().map(String::as_str)) {
                Ok(params) => route.params = params,
                Err(problem) => {
                    message.set(Some(problem.to_string()));
                    return;
                }
            }
            // The step's failure happens at once: it is the schedule's only command.
            route.schedule = step
                .inject
                .iter()
                .map(|id| Scheduled {
                    at: crate::sim::time::SimTime::ZERO,
                    command: LessonCommand::Inject(id.clone()),
                })
                .collect();
            let comparing = runtime.borrow().partner.is_some();
            let fresh = LessonRuntime::rebuilt(&route, comparing);
            message.set(fresh.schedule_problems.first().cloned());
            let route = fresh.route.clone();
            *runtime.borrow_mut() = fresh;
            *heard.borrow_mut() = 0;
            on_route_change.emit(route);
            playing.set(step.inject.is_some());
            bump();
        })
    };
    let quiz = lesson_content.map(|content| {
        let records = content
            .questions
            .iter()
            .map(|question| props.progress.answer(spec.id, &question.id))
            .collect::<Vec<_>>();
        let on_answer = props
            .on_answer
            .reform(move |(question, correct): (String, bool)| (spec.id.to_owned(), question, correct));
        html! { <Quiz lesson={spec.id} questions={content.questions.as_slice()} {records} {on_answer} /> }
    });
    let narrative = match lesson_content {
        Some(content) => html! { <Narrative {content} {on_try} /> },
        None => html! { <ContentNotice state={content_state} on_retry={retry_content} /> },
    };
    let on_home = props.on_home.reform(|event: MouseEvent| {
        event.prevent_default();
    });

    let runtime_ref = runtime.borrow();
    let run = runtime_ref.run.as_ref();
    let now = run.now();
    let log = run.log().entries();
    let topology = run.topology().clone();
    let latest_events: Vec<String> = log
        .iter()
        .rev()
        .take(5)
        .map(|event| describe_event(&topology, event))
        .collect();
    let status = describe_state(run, &runtime_ref.snapshot);
    // The live region announces only what is new since it last spoke, followed by the
    // state it left the system in ("... Worker 2 is now down. Now: 14 waiting; ...").
    let announcement = {
        let mut heard = heard.borrow_mut();
        let fresh = log.len().saturating_sub(*heard);
        *heard = log.len();
        if fresh > 0 {
            let mut words = latest_events
                .iter()
                .take(fresh.min(3))
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            words.push_str(" Now: ");
            words.push_str(&status);
            words
        } else {
            String::new()
        }
    };
    let charts = chart_data(run.metrics(), now);
    let summary = run.summary();
    let notice = (*message)
        .clone()
        .map(|text| html! { <p class="notice" role="alert">{ text }</p> });
    let events_list = latest_events
        .iter()
        .map(|line| html! { <li>{ line.clone() }</li> });
    let extra_figures = run.extra_figures().into_iter().map(|figure| {
        let value = format_figure(&figure);
        html! {
            <div><dt>{ figure.label }</dt><dd data-figure={figure.key} data-value={figure.value.to_string()}>{ value }</dd></div>
        }
    });

    // Lesson-specific views beyond the generic ones.
    let lesson_chart = match spec.id {
        "queueing-basics" => html! {
            <UtilisationChart params={runtime_ref.route.params.clone()} seed={runtime_ref.route.seed} />
        },
        "rate-limiting" => html! {
            <super::goodput_chart::GoodputChart params={runtime_ref.route.params.clone()} seed={runtime_ref.route.seed} />
        },
        _ => html! {},
    };
    let breaker_diagram = spec.breaker_node.and_then(|key| {
        let node = topology.find(key)?;
        let state = runtime_ref
            .snapshot
            .nodes
            .iter()
            .find(|view| view.node == node)?
            .state;
        let transitions = log
            .iter()
            .filter_map(|entry| match entry.what {
                crate::sim::snapshot::Notable::StateChanged { node: changed, to }
                    if changed == node =>
                {
                    Some((entry.time.as_secs_f64(), to))
                }
                _ => None,
            })
            .collect::<Vec<_>>();
        Some(html! { <BreakerDiagram {state} {transitions} /> })
    });
    let sweep_table = spec.sweep.map(|parameter| {
        html! {
            <SweepTable lesson={spec.id} {parameter} params={runtime_ref.start_params.clone()}
                seed={runtime_ref.route.seed} until={runtime_ref.horizon.as_secs_f64()} />
        }
    });
    let compare_toggle = spec.compare.map(|name| {
        let comparing = runtime_ref.partner.is_some();
        let label = if comparing {
            "Show one variant".to_owned()
        } else {
            format!("Compare side by side ({})", name.replace('_', " "))
        };
        html! {
            <button type="button" class="compare-toggle" aria-pressed={comparing.to_string()} onclick={on_compare}>
                { label }
            </button>
        }
    });
    let main_view = match &runtime_ref.partner {
        None => {
            html! { <TopologyView topology={topology.clone()} snapshot={runtime_ref.snapshot.clone()} /> }
        }
        Some(partner) => {
            let compared = spec.compare.unwrap_or_default();
            let side = |label: String,
                        run: &dyn crate::lessons::run::LessonRun,
                        snapshot: &crate::sim::snapshot::Snapshot| {
                let summary = run.summary();
                let rows = [
                    ("Completed", summary.completed.to_string()),
                    ("Failed", summary.failed.to_string()),
                    ("Rejected", summary.rejected.to_string()),
                    ("p99 latency", format!("{:.2} s", summary.latency_p99)),
                ]
                .into_iter()
                .chain(
                    // A lesson lists its figures most important first.
                    run.extra_figures()
                        .into_iter()
                        .take(4)
                        .map(|f| (f.label, format_figure(&f))),
                );
                html! {
                    <figure class="variant" data-variant={label.clone()}>
                        <figcaption><strong>{ label }</strong></figcaption>
                        <TopologyView topology={run.topology().clone()} snapshot={snapshot.clone()} />
                        <dl class="figures compact">
                            { for rows.map(|(name, value)| html! { <div><dt>{ name }</dt><dd>{ value }</dd></div> }) }
                        </dl>
                    </figure>
                }
            };
            let current = runtime_ref.route.params.get(compared).to_string();
            html! {
                <div class="comparison" aria-label="Side-by-side comparison on the same seed">
                    { side(format!("{compared} = {current}"), run, &runtime_ref.snapshot) }
                    { side(format!("{compared} = {}", partner.label), partner.run.as_ref(), &partner.snapshot) }
                </div>
            }
        }
    };

    let shows = |panel: Panel| props.presentation.shows(panel);
    let embed = props.presentation.embed;
    let header = if embed {
        html! {
            <header class="embed-header">
                <h1>{ spec.title }</h1>
                <a class="open-full" href={super::url::absolute(&Route::Lesson(runtime_ref.route.clone()), &Presentation::default())}
                    target="_blank" rel="noopener">{ "Open in Patterns Playground ↗" }</a>
            </header>
        }
    } else {
        html! {
            <>
                <nav class="breadcrumb"><a href="?" onclick={on_home}>{ "← All lessons" }</a>{ " · " }<a href="?page=glossary" target="_blank">{ "Glossary (new tab)" }</a></nav>
                <h1>{ spec.title }</h1>
                <p class="lesson-summary">{ spec.summary }</p>
            </>
        }
    };
    let schedule_problems = runtime_ref
        .schedule_problems
        .iter()
        .map(|line| html! { <p class="notice" role="status">{ line.clone() }</p> });
    let share_bar = (!embed).then(|| {
        html! {
            <ShareBar route={runtime_ref.route.clone()} presentation={props.presentation.clone()}
                title={spec.title} {on_export} />
        }
    });
    let figures = html! {
        <dl class="figures">
            <div><dt>{ "Completed" }</dt><dd data-figure="completed" data-value={summary.completed.to_string()}>{ summary.completed }</dd></div>
            <div><dt>{ "Mean wait" }</dt><dd data-figure="wait_mean" data-value={summary.wait_mean.to_string()}>{ format!("{:.2} s", summary.wait_mean) }</dd></div>
            <div><dt>{ "p99 latency" }</dt><dd data-figure="latency_p99" data-value={summary.latency_p99.to_string()}>{ format!("{:.2} s", summary.latency_p99) }</dd></div>
            <div><dt>{ "Rejected" }</dt><dd data-figure="rejected" data-value={summary.rejected.to_string()}>{ summary.rejected }</dd></div>
            <div><dt>{ "Failed" }</dt><dd data-figure="failed" data-value={summary.failed.to_string()}>{ summary.failed }</dd></div>
            <div><dt>{ "Duplicated" }</dt><dd data-figure="duplicated" data-value={summary.duplicated.to_string()}>{ summary.duplicated }</dd></div>
            { for extra_figures }
            <div><dt>{ "Events" }</dt><dd data-figure="events" data-value={run.events_processed().to_string()}>{ run.events_processed() }</dd></div>
        </dl>
    };
    let stage = html! {
        <section class="stage" aria-label="Simulation">
            if shows(Panel::Topology) {
                { compare_toggle }
                { main_view }
                { breaker_diagram }
                <Timeline now={now.as_secs_f64()} horizon={runtime_ref.horizon.as_secs_f64()}
                    topology={topology.clone()} markers={runtime_ref.markers.clone()}
                    can_step_back={runtime_ref.can_step_back() && !*fast_forwarding}
                    {on_seek} {on_step_back} />
            }
            <p class="status" data-testid="status">
                { format!("t = {:.1} s. {status}", now.as_secs_f64()) }
            </p>
            <p class="live" aria-live="polite" aria-atomic="true">{ announcement }</p>
            if shows(Panel::Charts) {
                { figures }
                <Charts {charts} />
                { lesson_chart }
                { sweep_table }
            }
        </section>
    };
    let controls = shows(Panel::Controls).then(|| {
        html! {
            <aside class="controls">
                <ParamControls params={runtime_ref.current_params()} locked={props.presentation.locked} on_change={on_param} />
                <Injections injections={spec.injections} {on_inject} />
                <section class="event-log" aria-label="Recent events">
                    <h3>{ "Recent events" }</h3>
                    <ul>{ for events_list }</ul>
                </section>
            </aside>
        }
    });
    let learning = (shows(Panel::Narrative) || shows(Panel::Quiz)).then(|| {
        html! {
            <div class="learning">
                if shows(Panel::Narrative) { { narrative } }
                if shows(Panel::Quiz) { { quiz } }
            </div>
        }
    });
    let classes = classes!("lesson-page", embed.then_some("embed"));

    html! {
        <main id="app-root" class={classes} data-lesson={spec.id}>
            { header }
            { notice }
            { for schedule_problems }
            <Transport
                playing={*playing}
                fast_forwarding={*fast_forwarding}
                speed={*speed}
                time={now.as_secs_f64()}
                horizon={runtime_ref.horizon.as_secs_f64()}
                seed={runtime_ref.route.seed.0}
                {on_toggle} {on_step} {on_reset} {on_run_to_end} {on_speed} {on_seed}
            />
            <button type="button" class="shortcuts-button" ref={help_button} aria-keyshortcuts="?"
                onclick={on_open_help}>{ "Keyboard shortcuts (?)" }</button>
            { shortcuts_dialog }
            { share_bar }
            <div class={classes!("lesson-layout", controls.is_none().then_some("no-controls"))}>
                { stage }
                { controls }
            </div>
            { learning }
        </main>
    }
}

/// Applies host-sent parameter values all together (or none, if any is invalid): live
/// ones through the run's journal, restart ones by one rebuild from the new route.
fn apply_host_params(
    runtime: &Rc<RefCell<LessonRuntime>>,
    pairs: &[(String, String)],
    on_route_change: &Callback<LessonRoute>,
) -> Result<(), String> {
    let current = runtime.borrow().current_params();
    let values = embed::validate_params(&current, pairs)?;
    let mut runtime = runtime.borrow_mut();
    let started = runtime.run.events_processed() > 0;
    let mut restart = runtime.route.params.clone();
    let mut needs_restart = false;
    for (name, value) in values {
        let live = started
            && current
                .spec(name)
                .is_ok_and(|spec| spec.liveness == Liveness::Live);
        if live {
            runtime
                .apply(&LessonCommand::SetParam {
                    name: name.to_owned(),
                    value,
                })
                .map_err(|problem| problem.to_string())?;
        } else {
            restart
                .set(name, value)
                .map_err(|problem| problem.to_string())?;
            needs_restart = true;
        }
    }
    let mut route = runtime.route.clone();
    if needs_restart {
        route.params = restart;
    }
    on_route_change.emit(route);
    Ok(())
}

/// The run's numbers as JSON, in the headless runner's shape (`simulate --json`) plus the
/// schedule: what a learner hands in with an assignment.
fn metrics_json(runtime: &LessonRuntime) -> String {
    let run = runtime.run.as_ref();
    let params: serde_json::Map<String, serde_json::Value> = runtime
        .start_params
        .iter()
        .map(|(spec, value)| (spec.name.to_owned(), serde_json::json!(value.to_string())))
        .collect();
    let figures: serde_json::Map<String, serde_json::Value> = run
        .extra_figures()
        .into_iter()
        .map(|figure| (figure.key.to_owned(), serde_json::json!(figure.value)))
        .collect();
    let schedule: Vec<String> = runtime
        .route
        .schedule
        .iter()
        .map(Scheduled::to_text)
        .collect();
    let mut report = serde_json::json!({
        "lesson": runtime.route.lesson,
        "seed": runtime.route.seed.0,
        "until": run.now().as_secs_f64(),
        "params": params,
        "schedule": schedule,
        "events": run.events_processed(),
    });
    if let (Some(object), Ok(serde_json::Value::Object(summary))) =
        (report.as_object_mut(), serde_json::to_value(run.summary()))
    {
        object.extend(summary);
        object.insert("figures".to_owned(), serde_json::Value::Object(figures));
    }
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

/// Whether the learner asked the system for reduced motion.
fn prefers_reduced_motion() -> bool {
    web_sys::window()
        .and_then(|window| {
            window
                .match_media("(prefers-reduced-motion: reduce)")
                .ok()
                .flatten()
        })
        .is_some_and(|query| query.matches())
}
