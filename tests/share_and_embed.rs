//! Sharing and embedding: links round-trip (property-tested over random routes of every
//! lesson), garbage falls back to defaults with notices, a link's schedule replays the
//! author's clicks exactly, the iframe snippet is correct, and host messages are
//! validated; outgoing statements have the xAPI shape.

use patterns_playground::embed::{self, HostCommand, Incoming};
use patterns_playground::lessons::journal::{replay, Journal};
use patterns_playground::lessons::params::{ParamKind, ParamValues, Seed};
use patterns_playground::lessons::run::LessonCommand;
use patterns_playground::lessons::{catalog, find, LessonSpec};
use patterns_playground::route::{
    parse, to_pairs, LessonRoute, Origin, Panel, ParsedRoute, Presentation, Route, Scheduled,
};
use patterns_playground::sim::time::SimTime;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;

fn reparse(route: &Route, presentation: &Presentation) -> ParsedRoute {
    let pairs = to_pairs(route, presentation);
    parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn below(rng: &mut Xoshiro256PlusPlus, n: u64) -> u64 {
    rng.next_u64() % n
}

fn random_value_text(rng: &mut Xoshiro256PlusPlus, kind: &ParamKind) -> String {
    match *kind {
        ParamKind::Number { min, max, .. } => {
            let unit = below(rng, 1_000_001) as f64 / 1_000_000.0;
            let value = (min + unit * (max - min)).clamp(min, max);
            format!("{value}")
        }
        ParamKind::Integer { min, max, .. } => {
            (min + below(rng, (max - min + 1) as u64) as i64).to_string()
        }
        ParamKind::Choice { options, .. } => {
            options[below(rng, options.len() as u64) as usize].to_owned()
        }
        ParamKind::Toggle { .. } => if below(rng, 2) == 0 { "off" } else { "on" }.to_owned(),
    }
}

fn random_route(rng: &mut Xoshiro256PlusPlus, spec: &'static LessonSpec) -> LessonRoute {
    let mut route = LessonRoute::defaults(spec);
    route.seed = Seed(rng.next_u64() >> below(rng, 64));
    for param in spec.params {
        if below(rng, 2) == 0 {
            let text = random_value_text(rng, &param.kind);
            route.params.set_text(param.name, &text).unwrap();
        }
    }
    let horizon = spec.default_duration.ticks();
    let live: Vec<_> = spec
        .params
        .iter()
        .filter(|p| p.liveness == patterns_playground::lessons::params::Liveness::Live)
        .collect();
    for _ in 0..below(rng, 6) {
        let at = SimTime::from_ticks(below(rng, horizon + 1));
        let command = if !spec.injections.is_empty() && (live.is_empty() || below(rng, 2) == 0) {
            let injection = &spec.injections[below(rng, spec.injections.len() as u64) as usize];
            LessonCommand::Inject(injection.id.to_owned())
        } else if let Some(param) = live.get(below(rng, live.len().max(1) as u64) as usize) {
            let text = random_value_text(rng, &param.kind);
            LessonCommand::SetParam {
                name: param.name.to_owned(),
                value: param.parse(&text).unwrap(),
            }
        } else {
            continue;
        };
        route.schedule.push(Scheduled { at, command });
    }
    route.schedule.sort_by_key(|entry| entry.at);
    route
}

fn random_presentation(rng: &mut Xoshiro256PlusPlus) -> Presentation {
    let mut panels: Vec<Panel> = Panel::ALL
        .into_iter()
        .filter(|_| below(rng, 3) != 0)
        .collect();
    if panels.is_empty() {
        panels.push(Panel::Quiz);
    }
    let origins = [
        "https://course.example",
        "http://localhost:8123",
        "https://lms.school.edu:8443",
    ]
    .into_iter()
    .filter(|_| below(rng, 2) == 0)
    .map(|o| Origin::parse(o).unwrap())
    .collect();
    Presentation {
        embed: below(rng, 2) == 0,
        panels,
        locked: below(rng, 2) == 0,
        origins,
    }
}

#[test]
fn random_routes_of_every_lesson_survive_the_round_trip_through_a_link() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    for spec in catalog() {
        for _ in 0..150 {
            let route = Route::Lesson(random_route(&mut rng, spec));
            let presentation = random_presentation(&mut rng);
            let parsed = reparse(&route, &presentation);
            assert!(
                parsed.notices.is_empty(),
                "{}: {:?}",
                spec.id,
                parsed.notices
            );
            assert_eq!(parsed.route, route, "{}", spec.id);
            assert_eq!(parsed.presentation, presentation, "{}", spec.id);
        }
    }
}

#[test]
fn garbage_in_any_key_falls_back_with_a_notice_and_never_panics() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let junk = [
        "",
        "-1",
        "1e999",
        "NaN",
        "%%",
        "::",
        "9:9:9",
        "0:",
        ":x",
        "a=b",
        "1.0000001:x",
        "https://",
        "javascript:alert(1)",
        "🙂",
        "99999999999999999999",
        ",,,",
        "1:load=",
    ];
    let keys = [
        "lesson", "seed", "schedule", "embed", "panels", "locked", "origins", "page",
    ];
    for spec in catalog() {
        for _ in 0..200 {
            let mut pairs: Vec<(String, String)> = vec![("lesson".to_owned(), spec.id.to_owned())];
            for _ in 0..1 + below(&mut rng, 4) {
                let key = if below(&mut rng, 3) == 0 {
                    format!(
                        "p.{}",
                        spec.params[below(&mut rng, spec.params.len() as u64) as usize].name
                    )
                } else {
                    keys[below(&mut rng, keys.len() as u64) as usize].to_owned()
                };
                let value = junk[below(&mut rng, junk.len() as u64) as usize].to_owned();
                pairs.push((key, value));
            }
            let parsed = parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            // Whatever came out is itself a clean link.
            let again = reparse(&parsed.route, &parsed.presentation);
            assert!(again.notices.is_empty(), "{pairs:?} -> {:?}", again.notices);
            assert_eq!(again.route, parsed.route);
        }
    }
    let parsed = parse([
        ("lesson", "failover"),
        (
            "schedule",
            "120:kill-primary,abc,5000000:kill-primary,60:meteor,30:mode=active-active",
        ),
        ("panels", "topology,bogus"),
        ("origins", "ftp://x.example,https://ok.example"),
        ("embed", "maybe"),
    ]);
    let Route::Lesson(route) = &parsed.route else {
        panic!("a lesson")
    };
    assert_eq!(route.schedule.len(), 1, "{:?}", route.schedule);
    assert_eq!(route.schedule[0].to_text(), "120:kill-primary");
    assert_eq!(parsed.presentation.panels, [Panel::Topology]);
    assert_eq!(
        parsed.presentation.origins,
        [Origin::parse("https://ok.example").unwrap()]
    );
    assert!(!parsed.presentation.embed);
    let text = parsed.notices.join("\n");
    for expected in [
        "abc",
        "after the end",
        "meteor",
        "restarts the run",
        "bogus",
        "ftp://",
        "embed=maybe",
    ] {
        assert!(
            text.contains(expected),
            "no notice about {expected}: {text}"
        );
    }
}

#[test]
fn schedule_times_keep_every_tick() {
    let spec = find("failover").unwrap();
    let params = spec.default_params();
    for (text, ticks) in [
        ("0", 0),
        ("0.000001", 1),
        ("12.5", 12_500_000),
        ("120", 120_000_000),
    ] {
        let entry = Scheduled::parse(spec, &params, &format!("{text}:kill-primary")).unwrap();
        assert_eq!(entry.at, SimTime::from_ticks(ticks));
        assert_eq!(entry.to_text(), format!("{text}:kill-primary"));
    }
    for bad in [
        "-1:kill-primary",
        "1.0000001:kill-primary",
        "1e3:kill-primary",
        ".:kill-primary",
    ] {
        assert!(Scheduled::parse(spec, &params, bad).is_err(), "{bad}");
    }
}

/// What a learner's clicks at these times produce, versus what the link built from them
/// replays: identical summaries and figures.
#[test]
fn a_links_schedule_replays_the_authors_run_exactly() {
    for spec in catalog().iter().filter(|spec| !spec.injections.is_empty()) {
        let params = spec.default_params();
        let horizon = SimTime::ZERO + spec.default_duration;
        let times = [
            horizon.ticks() / 7,
            horizon.ticks() / 3,
            horizon.ticks() / 2,
        ];
        let mut live = spec.start(&params, Seed(11));
        let mut schedule = Vec::new();
        for (i, ticks) in times.into_iter().enumerate() {
            let at = SimTime::from_ticks(ticks);
            // A click before Play happens before any event.
            if at > live.now() {
                live.run_until(at);
            }
            let command =
                LessonCommand::Inject(spec.injections[i % spec.injections.len()].id.to_owned());
            if live.apply(&command).is_ok() {
                schedule.push(Scheduled { at, command });
            }
        }
        live.run_until(horizon);

        let mut route = LessonRoute::defaults(spec);
        route.seed = Seed(11);
        route.schedule = schedule;
        let parsed = reparse(&Route::Lesson(route.clone()), &Presentation::default());
        assert_eq!(parsed.route, Route::Lesson(route.clone()));
        let (journal, _, refusals) = Journal::from_schedule(
            spec,
            &route.params,
            route.seed,
            route
                .schedule
                .iter()
                .map(|entry| (entry.at, &entry.command)),
        );
        assert!(refusals.is_empty(), "{}: {refusals:?}", spec.id);
        let replayed = replay(spec, &params, Seed(11), &journal, horizon);
        assert_eq!(replayed.summary(), live.summary(), "{}", spec.id);
        assert_eq!(
            replayed.extra_figures(),
            live.extra_figures(),
            "{}",
            spec.id
        );
        assert_eq!(
            replayed.log().entries(),
            live.log().entries(),
            "{}",
            spec.id
        );
    }
}

#[test]
fn the_iframe_snippet_points_at_the_link_and_escapes_it() {
    let snippet = embed::iframe_snippet(
        "https://host.example/pp/?lesson=failover&embed=1&panels=topology,quiz",
        "Failover \"A\" <B>",
        720,
    );
    assert_eq!(
        snippet,
        "<iframe src=\"https://host.example/pp/?lesson=failover&amp;embed=1&amp;panels=topology,quiz\" \
         title=\"Failover &quot;A&quot; &lt;B&gt; (Patterns Playground)\" width=\"100%\" height=\"720\" \
         style=\"border: 0; max-width: 100%;\" loading=\"lazy\" allow=\"clipboard-write\"></iframe>"
    );
}

#[test]
fn host_commands_are_validated() {
    let command = |value: serde_json::Value| embed::parse_command(&value);
    assert_eq!(
        command(json!({"target": "patterns-playground", "command": "play"})),
        Incoming::Command(HostCommand::Play)
    );
    assert_eq!(
        command(
            json!({"target": "patterns-playground", "command": "inject", "id": "kill-primary"})
        ),
        Incoming::Command(HostCommand::Inject("kill-primary".to_owned()))
    );
    assert_eq!(
        command(
            json!({"target": "patterns-playground", "command": "set-params", "params": {"dns_ttl": 30, "mode": "active-active", "x": true}})
        ),
        Incoming::Command(HostCommand::SetParams(vec![
            ("dns_ttl".to_owned(), "30".to_owned()),
            ("mode".to_owned(), "active-active".to_owned()),
            ("x".to_owned(), "on".to_owned()),
        ]))
    );
    for other in [
        json!("hello"),
        json!(null),
        json!({"type": "resize"}),
        json!({"target": "other", "command": "play"}),
    ] {
        assert_eq!(command(other), Incoming::NotForUs);
    }
    for malformed in [
        json!({"target": "patterns-playground"}),
        json!({"target": "patterns-playground", "command": "explode"}),
        json!({"target": "patterns-playground", "command": "inject"}),
        json!({"target": "patterns-playground", "command": "set-params", "params": [1]}),
        json!({"target": "patterns-playground", "command": "set-params", "params": {"a": {"b": 1}}}),
    ] {
        assert!(
            matches!(command(malformed.clone()), Incoming::Malformed(_)),
            "{malformed}"
        );
    }
    // All or nothing against the lesson's schema.
    let params: ParamValues = find("failover").unwrap().default_params();
    let ok = embed::validate_params(&params, &[("dns_ttl".to_owned(), "30".to_owned())]).unwrap();
    assert_eq!(ok.len(), 1);
    assert!(embed::validate_params(
        &params,
        &[
            ("dns_ttl".to_owned(), "30".to_owned()),
            ("dns_ttl".to_owned(), "-5".to_owned())
        ]
    )
    .is_err());
    assert!(embed::validate_params(&params, &[("nope".to_owned(), "1".to_owned())]).is_err());
}

#[test]
fn outgoing_messages_are_shaped_like_xapi_statements_without_personal_data() {
    let spec = find("circuit-breaker").unwrap();
    let url = "https://host.example/pp/?lesson=circuit-breaker";
    let answered = embed::quiz_answered(spec, url, "q1", "Why open?", true);
    assert_eq!(answered["source"], "patterns-playground");
    assert_eq!(answered["type"], "quiz-answered");
    assert_eq!(answered["statement"]["verb"]["id"], embed::VERB_ANSWERED);
    assert_eq!(
        answered["statement"]["object"]["id"],
        format!("{url}#question-q1")
    );
    assert_eq!(answered["statement"]["result"]["score"]["scaled"], 1.0);
    assert!(answered["statement"].get("actor").is_none());

    let complete = embed::lesson_complete(spec, url, 4, 6);
    assert_eq!(complete["type"], "lesson-complete");
    let score = &complete["statement"]["result"]["score"];
    assert_eq!(
        (score["raw"].as_u64(), score["max"].as_u64()),
        (Some(4), Some(6))
    );
    assert!((score["scaled"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-12);
    assert_eq!(complete["statement"]["result"]["success"], false);
    assert_eq!(complete["statement"]["verb"]["id"], embed::VERB_COMPLETED);

    let ready = embed::ready(Some(spec), Some(&spec.default_params()));
    assert_eq!(ready["lesson"], "circuit-breaker");
    assert!(ready["injections"]
        .as_array()
        .is_some_and(|ids| !ids.is_empty()));
    assert_eq!(embed::resize(812)["height"], 812);
}
