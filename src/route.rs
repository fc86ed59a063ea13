//! The app's address: which page, lesson, parameters and seed, parsed from URL query
//! pairs into validated values once, and written back so a copied link reproduces a run.
//!
//! Invalid values never fail the page: each falls back to its default and adds a notice
//! that the view shows. No web crates here; the view hands in the raw pairs.

use crate::lessons::params::{ParamValues, Seed};
use crate::lessons::{self, LessonSpec};

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

/// A lesson with its validated parameters and seed.
#[derive(Clone, Debug, PartialEq)]
pub struct LessonRoute {
    pub lesson: &'static str,
    pub params: ParamValues,
    pub seed: Seed,
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
        }
    }
}

/// A parsed address and what had to be corrected in it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRoute {
    pub route: Route,
    /// One sentence per value that was ignored or replaced by its default.
    pub notices: Vec<String>,
}

/// Parses decoded query pairs (`lesson`, `seed`, `p.<name>`). Unknown keys are ignored
/// silently (host pages may add their own); bad values are reported in `notices`.
pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ParsedRoute {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let mut notices = Vec::new();
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
        return ParsedRoute { route, notices };
    };
    let Some(spec) = lessons::find(lesson_id) else {
        notices.push(format!(
            "There is no lesson called '{lesson_id}', so the lesson list is shown instead."
        ));
        return ParsedRoute {
            route: Route::Home,
            notices,
        };
    };
    let mut route = LessonRoute::defaults(spec);
    for (key, value) in pairs {
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
    ParsedRoute {
        route: Route::Lesson(route),
        notices,
    }
}

/// The query pairs that reproduce `route`: only parameters that differ from their
/// defaults, so links stay short and survive new parameters being added.
pub fn to_pairs(route: &Route) -> Vec<(String, String)> {
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
            let pairs = to_pairs(&route);
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
        let pairs = to_pairs(&parsed.route);
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
