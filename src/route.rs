//! The app's address: which page, lesson, parameters, seed and scheduled commands, and
//! how the page is presented (embed mode, panels, locked parameters, trusted host
//! origins), parsed from URL query pairs into validated values once, and written back so
//! a copied link reproduces a run exactly.
//!
//! Invalid values never fail the page: each falls back to its default and adds a notice
//! that the view shows. No web crates here; the view hands in the raw pairs.
//!
//! Keys: `lesson`, `seed`, `p.<parameter>` (values at the start of the run), `schedule`
//! (commands at simulated times: `120:kill-primary,300:load=40`), `page`, and the
//! presentation keys `embed=1`, `panels=topology,charts,...`, `locked=1`,
//! `origins=https://course.example,...`.

use std::fmt::Write as _;

use crate::lessons::params::{Liveness, ParamValues, Seed};
use crate::lessons::run::LessonCommand;
use crate::lessons::{self, LessonSpec};
use crate::sim::time::{SimTime, TICKS_PER_SECOND};

/// The seed a lesson starts with when the URL names none.
pub const DEFAULT_SEED: Seed = Seed(1);

/// Query keys for parameters are prefixed so they never collide with app keys.
pub const PARAM_PREFIX: &str = "p.";

/// Where the app is.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Home,
    Lesson(LessonRoute),
    /// Every glossary term (`?page=glossary`).
    Glossary,
    /// The mixed exam drill across lessons (`?page=drill`).
    Drill,
}

/// A lesson with its validated parameters, seed and command schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct LessonRoute {
    pub lesson: &'static str,
    /// The parameters the run starts with (live changes are in `schedule`).
    pub params: ParamValues,
    pub seed: Seed,
    /// Injections and live parameter changes at simulated times, in time order.
    pub schedule: Vec<Scheduled>,
}

/// A command the run applies at a simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    pub at: SimTime,
    pub command: LessonCommand,
}

/// Most scheduled commands a link may carry (a long session of clicks stays shareable;
/// a runaway link cannot make the page replay forever).
pub const MAX_SCHEDULED: usize = 200;

impl Scheduled {
    /// `T:ID` for an injection, `T:NAME=VALUE` for a live parameter change; T in seconds
    /// with at most six decimals, so every tick survives the round trip.
    pub fn to_text(&self) -> String {
        let mut text = seconds_text(self.at);
        text.push(':');
        match &self.command {
            LessonCommand::Inject(id) => text.push_str(id),
            LessonCommand::SetParam { name, value } => {
                let _ = write!(text, "{name}={value}");
            }
        }
        text
    }

    /// Parses one entry against `spec`: a known injection or a known live parameter with
    /// a valid value, at a time within the lesson's run.
    pub fn parse(spec: &LessonSpec, params: &ParamValues, raw: &str) -> Result<Self, String> {
        let (time, what) = raw.split_once(':').ok_or_else(|| {
            format!("'{raw}' is not SECONDS:INJECTION or SECONDS:PARAMETER=VALUE")
        })?;
        let at = parse_seconds(time.trim())
            .ok_or_else(|| format!("'{time}' in '{raw}' is not a time in seconds"))?;
        let horizon = SimTime::ZERO + spec.default_duration;
        if at > horizon {
            return Err(format!(
                "'{raw}' is after the end of the run ({} s)",
                horizon.as_secs_f64()
            ));
        }
        let what = what.trim();
        let command = match what.split_once('=') {
            None => {
                let injection = spec.injection(what).ok_or_else(|| {
                    let known: Vec<&str> = spec.injections.iter().map(|i| i.id).collect();
                    format!(
                        "this lesson has no failure called '{what}' (it has: {})",
                        known.join(", ")
                    )
                })?;
                LessonCommand::Inject(injection.id.to_owned())
            }
            Some((name, value)) => {
                let param = params
                    .spec(name.trim())
                    .map_err(|problem| problem.to_string())?;
                if param.liveness != Liveness::Live {
                    return Err(format!(
                        "{} cannot change during a run (it restarts the run)",
                        param.name
                    ));
                }
                let value = param
                    .parse(value.trim())
                    .map_err(|problem| problem.to_string())?;
                LessonCommand::SetParam {
                    name: param.name.to_owned(),
                    value,
                }
            }
        };
        Ok(Scheduled { at, command })
    }
}

/// Seconds with up to six decimals, trailing zeros dropped (`120`, `12.5`, `0.000001`).
fn seconds_text(at: SimTime) -> String {
    let whole = at.ticks() / TICKS_PER_SECOND;
    let fraction = at.ticks() % TICKS_PER_SECOND;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Non-negative decimal seconds, at most six decimals, read exactly (no float rounding).
fn parse_seconds(text: &str) -> Option<SimTime> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 6
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    let ticks = whole.checked_mul(TICKS_PER_SECOND)?.checked_add(fraction)?;
    Some(SimTime::from_ticks(ticks))
}

/// A panel of the lesson page that a link (or an embedding course page) can hide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Panel {
    /// The animated architecture, timeline and status line.
    Topology,
    /// Parameters, failure injections and the recent-events list.
    Controls,
    /// Figures, live charts and the lesson's tables.
    Charts,
    /// The lesson text and its "try this" steps.
    Narrative,
    /// The checkpoint quiz.
    Quiz,
}

impl Panel {
    pub const ALL: [Panel; 5] = [
        Panel::Topology,
        Panel::Controls,
        Panel::Charts,
        Panel::Narrative,
        Panel::Quiz,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Panel::Topology => "topology",
            Panel::Controls => "controls",
            Panel::Charts => "charts",
            Panel::Narrative => "narrative",
            Panel::Quiz => "quiz",
        }
    }

    fn from_key(key: &str) -> Option<Panel> {
        Panel::ALL.into_iter().find(|panel| panel.key() == key)
    }
}

/// A web origin (`https://course.example` or `http://localhost:8000`) trusted to send
/// commands to an embedded lesson. Scheme and host are lower-cased; no path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    pub fn parse(raw: &str) -> Result<Origin, String> {
        let text = raw.trim().to_ascii_lowercase();
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| format!("'{raw}' is not an http or https origin"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port_ok = port.is_none_or(|port| {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        });
        if !host_ok || !port_ok {
            return Err(format!(
                "'{raw}' is not an origin (scheme, host and optional port, like https://course.example)"
            ));
        }
        Ok(Origin(text.strip_suffix('/').unwrap_or(&text).to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the page is presented; independent of which run it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presentation {
    /// Minimal chrome for an iframe in a course page.
    pub embed: bool,
    /// The lesson panels shown, in `Panel` order.
    pub panels: Vec<Panel>,
    /// Parameters are shown but the learner cannot change them.
    pub locked: bool,
    /// Host origins whose `postMessage` commands are accepted (none by default).
    pub origins: Vec<Origin>,
}

impl Default for Presentation {
    fn default() -> Self {
        Presentation {
            embed: false,
            panels: Panel::ALL.to_vec(),
            locked: false,
            origins: Vec::new(),
        }
    }
}

impl Presentation {
    pub fn shows(&self, panel: Panel) -> bool {
        self.panels.contains(&panel)
    }

    fn parse_into(&mut self, key: &str, value: &str, notices: &mut Vec<String>) {
        match key {
            "embed" => match parse_flag(value) {
                Some(on) => self.embed = on,
                None => notices.push(format!(
                    "Ignored embed={value} in the link: use embed=1 or embed=0."
                )),
            },
            "locked" => match parse_flag(value) {
                Some(on) => self.locked = on,
                None => notices.push(format!(
                    "Ignored locked={value} in the link: use locked=1 or locked=0."
                )),
            },
            "panels" => {
                let mut panels = Vec::new();
                for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    match Panel::from_key(word) {
                        Some(panel) if !panels.contains(&panel) => panels.push(panel),
                        Some(_) => {}
                        None => notices.push(format!(
                            "Ignored the panel '{word}' in the link (panels are topology, controls, charts, narrative, quiz)."
                        )),
                    }
                }
                if panels.is_empty() {
                    notices
                        .push("The link shows no known panel, so every panel is shown.".to_owned());
                    panels = Panel::ALL.to_vec();
                }
                panels.sort();
                self.panels = panels;
            }
            "origins" => {
                let mut origins = Vec::new();
                for word in value.split(',').filter(|w| !w.trim().is_empty()) {
                    match Origin::parse(word) {
                        Ok(origin) if !origins.contains(&origin) => origins.push(origin),
                        Ok(_) => {}
                        Err(problem) => {
                            notices.push(format!("Ignored a host origin in the link: {problem}."))
                        }
                    }
                }
                self.origins = origins;
            }
            _ => {}
        }
    }

    fn to_pairs(&self, pairs: &mut Vec<(String, String)>) {
        if self.embed {
            pairs.push(("embed".to_owned(), "1".to_owned()));
        }
        if self.panels != Panel::ALL {
            let keys: Vec<&str> = self.panels.iter().map(|panel| panel.key()).collect();
            pairs.push(("panels".to_owned(), keys.join(",")));
        }
        if self.locked {
            pairs.push(("locked".to_owned(), "1".to_owned()));
        }
        if !self.origins.is_empty() {
            let origins: Vec<&str> = self.origins.iter().map(Origin::as_str).collect();
            pairs.push(("origins".to_owned(), origins.join(",")));
        }
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl LessonRoute {
    pub fn spec(&self) -> &'static LessonSpec {
        lessons::find(self.lesson).expect("routes only hold known lessons")
    }

    /// A lesson at its defaults.
    pub fn defaults(spec: &'static LessonSpec) -> Self {
        LessonRoute {
            lesson: spec.id,
            params: spec.default_params(),
            seed: DEFAULT_SEED,
            schedule: Vec::new(),
        }
    }
}

/// A parsed address and what had to be corrected in it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRoute {
    pub route: Route,
    pub presentation: Presentation,
    /// One sentence per value that was ignored or replaced by its default.
    pub notices: Vec<String>,
}

/// Parses decoded query pairs (`lesson`, `seed`, `p.<name>`). Unknown keys are ignored
/// silently (host pages may add their own); bad values are reported in `notices`.
pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ParsedRoute {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let mut notices = Vec::new();
    let mut presentation = Presentation::default();
    for (key, value) in &pairs {
        presentation.parse_into(key, value, &mut notices);
    }
    let lesson_id = pairs
        .iter()
        .rev()
        .find(|(key, _)| *key == "lesson")
        .map(|(_, value)| *value);
    let Some(lesson_id) = lesson_id.filter(|id| !id.is_empty()) else {
        let page = pairs
            .iter()
            .rev()
            .find(|(key, _)| *key == "page")
            .map(|(_, value)| *value);
        let route = match page {
            None | Some("") | Some("home") => Route::Home,
            Some("glossary") => Route::Glossary,
            Some("drill") => Route::Drill,
            Some(other) => {
                notices.push(format!(
                    "There is no page called '{other}', so the lesson list is shown instead."
                ));
                Route::Home
            }
        };
        return ParsedRoute {
            route,
            presentation,
            notices,
        };
    };
    let Some(spec) = lessons::find(lesson_id) else {
        notices.push(format!(
            "There is no lesson called '{lesson_id}', so the lesson list is shown instead."
        ));
        return ParsedRoute {
            route: Route::Home,
            presentation,
            notices,
        };
    };
    let mut route = LessonRoute::defaults(spec);
    let mut schedule_text = None;
    for (key, value) in pairs {
        if key == "schedule" {
            schedule_text = Some(value);
            continue;
        }
        if key == "seed" {
            match Seed::parse(value) {
                Ok(seed) => route.seed = seed,
                Err(problem) => notices.push(format!(
                    "Ignored the seed in the link: {problem}. Using seed {DEFAULT_SEED}."
                )),
            }
        } else if let Some(name) = key.strip_prefix(PARAM_PREFIX) {
            if let Err(problem) = route.params.set_text(name, value) {
                let fallback = route
                    .params
                    .spec(name)
                    .map(|spec| format!(" Using the default, {}.", spec.default_value()))
                    .unwrap_or_default();
                notices.push(format!("Ignored a value in the link: {problem}.{fallback}"));
            }
        }
    }
    // The schedule is read last: its parameter changes are checked against the lesson's
    // parameters.
    for raw in schedule_text
        .unwrap_or_default()
        .split(',')
        .filter(|raw| !raw.trim().is_empty())
    {
        if route.schedule.len() == MAX_SCHEDULED {
            notices.push(format!(
                "The link schedules more than {MAX_SCHEDULED} commands; only the first {MAX_SCHEDULED} are used."
            ));
            break;
        }
        match Scheduled::parse(spec, &route.params, raw) {
            Ok(entry) => route.schedule.push(entry),
            Err(problem) => notices.push(format!(
                "Ignored a scheduled command in the link: {problem}."
            )),
        }
    }
    // Stable: commands at the same instant keep the link's order.
    route.schedule.sort_by_key(|entry| entry.at);
    ParsedRoute {
        route: Route::Lesson(route),
        presentation,
        notices,
    }
}

/// The query pairs that reproduce `route` presented as `presentation`: only values that
/// differ from their defaults, so links stay short and survive new parameters.
pub fn to_pairs(route: &Route, presentation: &Presentation) -> Vec<(String, String)> {
    let mut pairs = route_pairs(route);
    presentation.to_pairs(&mut pairs);
    pairs
}

fn route_pairs(route: &Route) -> Vec<(String, String)> {
    match route {
        Route::Home => Vec::new(),
        Route::Glossary => vec![("page".to_owned(), "glossary".to_owned())],
        Route::Drill => vec![("page".to_owned(), "drill".to_owned())],
        Route::Lesson(lesson) => {
            let mut pairs = vec![
                ("lesson".to_owned(), lesson.lesson.to_owned()),
                ("seed".to_owned(), lesson.seed.to_string()),
            ];
            pairs.extend(
                lesson.params.changed().map(|(spec, value)| {
                    (format!("{PARAM_PREFIX}{}", spec.name), value.to_string())
                }),
            );
            if !lesson.schedule.is_empty() {
                let entries: Vec<String> = lesson.schedule.iter().map(Scheduled::to_text).collect();
                pairs.push(("schedule".to_owned(), entries.join(",")));
            }
            pairs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesson(parsed: &ParsedRoute) -> &LessonRoute {
        match &parsed.route {
            Route::Lesson(lesson) => lesson,
            other => panic!("expected a lesson route, got {other:?}"),
        }
    }

    #[test]
    fn no_lesson_means_home() {
        assert_eq!(parse([]).route, Route::Home);
        assert_eq!(parse([("utm_source", "course")]).route, Route::Home);
        assert!(parse([]).notices.is_empty());
    }

    #[test]
    fn a_full_link_parses_into_validated_values() {
        let parsed = parse([
            ("lesson", "queueing-basics"),
            ("seed", "42"),
            ("p.arrival_rate", "1.8"),
            ("p.servers", "2"),
        ]);
        assert!(parsed.notices.is_empty(), "{:?}", parsed.notices);
        let route = lesson(&parsed);
        assert_eq!(route.seed, Seed(42));
        assert_eq!(route.params.number("arrival_rate"), 1.8);
        assert_eq!(route.params.integer("servers"), 2);
    }

    #[test]
    fn garbage_falls_back_to_defaults_with_a_notice_each() {
        let parsed = parse([
            ("lesson", "queueing-basics"),
            ("seed", "banana"),
            ("p.servers", "9999"),
            ("p.arrival_rate", "NaN"),
            ("p.colour", "red"),
        ]);
        let route = lesson(&parsed);
        assert_eq!(route.seed, DEFAULT_SEED);
        assert_eq!(route.params, queueing_basics_defaults());
        assert_eq!(parsed.notices.len(), 4, "{:?}", parsed.notices);
        assert!(parsed.notices[1].contains("whole number from 1 to 64"));
        assert!(parsed.notices[1].contains("Using the default, 1."));
    }

    fn queueing_basics_defaults() -> ParamValues {
        lessons::find("queueing-basics").unwrap().default_params()
    }

    #[test]
    fn pages_round_trip_and_unknown_pages_go_home_with_a_notice() {
        for route in [Route::Home, Route::Glossary, Route::Drill] {
            let pairs = to_pairs(&route, &Presentation::default());
            let parsed = parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            assert_eq!(parsed.route, route);
            assert!(parsed.notices.is_empty());
        }
        let parsed = parse([("page", "admin")]);
        assert_eq!(parsed.route, Route::Home);
        assert!(parsed.notices[0].contains("admin"));
        // A lesson wins over a page.
        let parsed = parse([("page", "glossary"), ("lesson", "queueing-basics")]);
        assert!(matches!(parsed.route, Route::Lesson(_)));
    }

    #[test]
    fn an_unknown_lesson_goes_home_with_a_notice() {
        let parsed = parse([("lesson", "no-such-thing")]);
        assert_eq!(parsed.route, Route::Home);
        assert!(parsed.notices[0].contains("no-such-thing"));
    }

    #[test]
    fn links_round_trip_and_omit_defaults() {
        let parsed = parse([
            ("lesson", "queueing-basics"),
            ("seed", "9"),
            ("p.servers", "3"),
        ]);
        let pairs = to_pairs(&parsed.route, &parsed.presentation);
        assert_eq!(
            pairs,
            [
                ("lesson".to_owned(), "queueing-basics".to_owned()),
                ("seed".to_owned(), "9".to_owned()),
                ("p.servers".to_owned(), "3".to_owned()),
            ]
        );
        let again = parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(again, parsed);
    }
}
