//! Lesson parameters: the schema a lesson declares, and raw text (URL, command line,
//! form fields) parsed once into validated values. After parsing nothing re-checks.

use std::fmt;

/// The kind and valid range of one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamKind {
    /// A real number in `[min, max]`; `step` is the slider's granularity.
    Number {
        min: f64,
        max: f64,
        step: f64,
        default: f64,
    },
    /// A whole number in `[min, max]`.
    Integer { min: i64, max: i64, default: i64 },
    /// One of a fixed list of words.
    Choice {
        options: &'static [&'static str],
        default: &'static str,
    },
    /// On or off.
    Toggle { default: bool },
}

/// How a parameter change takes effect while a run is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Applied to the running model at once (rates, timeouts, toggles).
    Live,
    /// Changes the system's shape; the run restarts from time zero with the new value.
    Restart,
}

/// One parameter as a lesson declares it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// Machine name used in URLs and on the command line (`arrival_rate`).
    pub name: &'static str,
    /// Short human label (`Arrival rate`).
    pub label: &'static str,
    /// Unit shown beside the value (`req/s`), or empty.
    pub unit: &'static str,
    /// One sentence on what it does.
    pub help: &'static str,
    pub kind: ParamKind,
    pub liveness: Liveness,
}

/// A number parameter that may change mid-run (`.restart()` makes it restart-only).
pub const fn number(
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    help: &'static str,
    (min, max, step, default): (f64, f64, f64, f64),
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit,
        help,
        kind: ParamKind::Number {
            min,
            max,
            step,
            default,
        },
        liveness: Liveness::Live,
    }
}

/// A whole-number parameter that may change mid-run (`.restart()` makes it restart-only).
pub const fn integer(
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    help: &'static str,
    (min, max, default): (i64, i64, i64),
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit,
        help,
        kind: ParamKind::Integer { min, max, default },
        liveness: Liveness::Live,
    }
}

impl ParamSpec {
    /// The same parameter, but changing it means restarting the run.
    pub const fn restart(self) -> ParamSpec {
        ParamSpec {
            liveness: Liveness::Restart,
            ..self
        }
    }
}

/// A validated parameter value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    Number(f64),
    Integer(i64),
    Choice(&'static str),
    Toggle(bool),
}

impl serde::Serialize for ParamValue {
    /// As the plain JSON value: number, integer, string or boolean.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Number(value) => serializer.serialize_f64(*value),
            ParamValue::Integer(value) => serializer.serialize_i64(*value),
            ParamValue::Choice(word) => serializer.serialize_str(word),
            ParamValue::Toggle(on) => serializer.serialize_bool(*on),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Number(value) => write!(f, "{value}"),
            ParamValue::Integer(value) => write!(f, "{value}"),
            ParamValue::Choice(word) => f.write_str(word),
            ParamValue::Toggle(on) => f.write_str(if *on { "on" } else { "off" }),
        }
    }
}

/// Why a parameter assignment was refused. `Display` gives a one-line explanation that
/// names the input, the problem and what is allowed.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamError {
    Unknown {
        name: String,
        known: Vec<&'static str>,
    },
    Malformed {
        name: &'static str,
        raw: String,
        expected: String,
    },
    OutOfRange {
        name: &'static str,
        raw: String,
        expected: String,
    },
    /// `name=value` text without the `=`.
    MissingEquals { raw: String },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown { name, known } => write!(
                f,
                "unknown parameter '{name}'; known parameters: {}",
                known.join(", ")
            ),
            ParamError::Malformed {
                name,
                raw,
                expected,
            } => write!(f, "parameter '{name}' must be {expected}, got '{raw}'"),
            ParamError::OutOfRange {
                name,
                raw,
                expected,
            } => write!(f, "parameter '{name}' must be {expected}, got {raw}"),
            ParamError::MissingEquals { raw } => {
                write!(f, "expected name=value, got '{raw}'")
            }
        }
    }
}

impl std::error::Error for ParamError {}

impl ParamSpec {
    pub fn default_value(&self) -> ParamValue {
        match self.kind {
            ParamKind::Number { default, .. } => ParamValue::Number(default),
            ParamKind::Integer { default, .. } => ParamValue::Integer(default),
            ParamKind::Choice { default, .. } => ParamValue::Choice(default),
            ParamKind::Toggle { default } => ParamValue::Toggle(default),
        }
    }

    /// What values are allowed, in words: "a number from 0.01 to 1000".
    pub fn allowed(&self) -> String {
        match self.kind {
            ParamKind::Number { min, max, .. } => format!("a number from {min} to {max}"),
            ParamKind::Integer { min, max, .. } => format!("a whole number from {min} to {max}"),
            ParamKind::Choice { options, .. } => format!("one of {}", options.join(", ")),
            ParamKind::Toggle { .. } => "on or off".to_owned(),
        }
    }

    /// Parses text into a value of this parameter, checking its range.
    pub fn parse(&self, raw: &str) -> Result<ParamValue, ParamError> {
        let text = raw.trim();
        let malformed = || ParamError::Malformed {
            name: self.name,
            raw: raw.to_owned(),
            expected: self.allowed(),
        };
        let value = match self.kind {
            ParamKind::Number { .. } => {
                let number: f64 = text.parse().map_err(|_| malformed())?;
                if !number.is_finite() {
                    return Err(malformed());
                }
                ParamValue::Number(number)
            }
            ParamKind::Integer { .. } => {
                ParamValue::Integer(text.parse::<i64>().map_err(|_| malformed())?)
            }
            ParamKind::Choice { options, .. } => {
                let word = options
                    .iter()
                    .find(|option| option.eq_ignore_ascii_case(text))
                    .ok_or_else(malformed)?;
                ParamValue::Choice(word)
            }
            ParamKind::Toggle { .. } => match text.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => ParamValue::Toggle(true),
                "off" | "false" | "no" | "0" => ParamValue::Toggle(false),
                _ => return Err(malformed()),
            },
        };
        self.check(value)
    }

    /// Checks that an already-typed value fits this parameter.
    pub fn check(&self, value: ParamValue) -> Result<ParamValue, ParamError> {
        let out_of_range = || ParamError::OutOfRange {
            name: self.name,
            raw: value.to_string(),
            expected: self.allowed(),
        };
        match (self.kind, value) {
            (ParamKind::Number { min, max, .. }, ParamValue::Number(number)) => {
                if number.is_finite() && number >= min && number <= max {
                    Ok(value)
                } else {
                    Err(out_of_range())
                }
            }
            (ParamKind::Integer { min, max, .. }, ParamValue::Integer(number)) => {
                if (min..=max).contains(&number) {
                    Ok(value)
                } else {
                    Err(out_of_range())
                }
            }
            (ParamKind::Choice { options, .. }, ParamValue::Choice(word)) => {
                if options.contains(&word) {
                    Ok(value)
                } else {
                    Err(out_of_range())
                }
            }
            (ParamKind::Toggle { .. }, ParamValue::Toggle(_)) => Ok(value),
            _ => Err(ParamError::Malformed {
                name: self.name,
                raw: value.to_string(),
                expected: self.allowed(),
            }),
        }
    }
}

/// A full, validated set of values for one lesson's schema (every parameter present).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamValues {
    schema: &'static [ParamSpec],
    values: Vec<ParamValue>,
}

impl ParamValues {
    /// Every parameter at its default.
    pub fn defaults(schema: &'static [ParamSpec]) -> Self {
        ParamValues {
            schema,
            values: schema.iter().map(ParamSpec::default_value).collect(),
        }
    }

    /// Defaults overridden by `name=value` assignments, first error wins.
    pub fn from_assignments<'a>(
        schema: &'static [ParamSpec],
        assignments: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ParamError> {
        let mut values = Self::defaults(schema);
        for assignment in assignments {
            let (name, raw) =
                assignment
                    .split_once('=')
                    .ok_or_else(|| ParamError::MissingEquals {
                        raw: assignment.to_owned(),
                    })?;
            values.set_text(name.trim(), raw)?;
        }
        Ok(values)
    }

    pub fn schema(&self) -> &'static [ParamSpec] {
        self.schema
    }

    /// Looks a parameter up by name.
    pub fn spec(&self, name: &str) -> Result<&'static ParamSpec, ParamError> {
        self.schema
            .iter()
            .find(|spec| spec.name == name)
            .ok_or_else(|| ParamError::Unknown {
                name: name.to_owned(),
                known: self.schema.iter().map(|spec| spec.name).collect(),
            })
    }

    /// Parses and sets one parameter from text.
    pub fn set_text(&mut self, name: &str, raw: &str) -> Result<ParamValue, ParamError> {
        let spec = self.spec(name)?;
        let value = spec.parse(raw)?;
        self.store(spec.name, value);
        Ok(value)
    }

    /// Sets one parameter from a typed value, checking its range.
    pub fn set(&mut self, name: &str, value: ParamValue) -> Result<ParamValue, ParamError> {
        let spec = self.spec(name)?;
        let value = spec.check(value)?;
        self.store(spec.name, value);
        Ok(value)
    }

    fn store(&mut self, name: &str, value: ParamValue) {
        let index = self.index(name);
        self.values[index] = value;
    }

    fn index(&self, name: &str) -> usize {
        self.schema
            .iter()
            .position(|spec| spec.name == name)
            .unwrap_or_else(|| panic!("lesson code asked for undeclared parameter '{name}'"))
    }

    pub fn get(&self, name: &str) -> ParamValue {
        self.values[self.index(name)]
    }

    /// The value of a `Number` parameter. Panics if the lesson's code and schema disagree
    /// (a programming error that the catalog tests catch).
    pub fn number(&self, name: &str) -> f64 {
        match self.get(name) {
            ParamValue::Number(value) => value,
            other => panic!("parameter '{name}' is not a number: {other:?}"),
        }
    }

    /// The value of an `Integer` parameter (see [`ParamValues::number`] on panics).
    pub fn integer(&self, name: &str) -> i64 {
        match self.get(name) {
            ParamValue::Integer(value) => value,
            other => panic!("parameter '{name}' is not an integer: {other:?}"),
        }
    }

    /// The value of a `Choice` parameter (see [`ParamValues::number`] on panics).
    pub fn choice(&self, name: &str) -> &'static str {
        match self.get(name) {
            ParamValue::Choice(word) => word,
            other => panic!("parameter '{name}' is not a choice: {other:?}"),
        }
    }

    /// The value of a `Toggle` parameter (see [`ParamValues::number`] on panics).
    pub fn toggle(&self, name: &str) -> bool {
        match self.get(name) {
            ParamValue::Toggle(on) => on,
            other => panic!("parameter '{name}' is not a toggle: {other:?}"),
        }
    }

    /// Each parameter with its value, in schema order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static ParamSpec, ParamValue)> + '_ {
        self.schema.iter().zip(self.values.iter().copied())
    }

    /// Only the parameters that differ from their defaults (what a share link carries).
    pub fn changed(&self) -> impl Iterator<Item = (&'static ParamSpec, ParamValue)> + '_ {
        self.iter()
            .filter(|(spec, value)| *value != spec.default_value())
    }
}

impl serde::Serialize for ParamValues {
    /// As a JSON object in schema order: `{"arrival_rate": 0.9, "servers": 1, ...}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (spec, value) in self.iter() {
            map.serialize_entry(spec.name, &value)?;
        }
        map.end()
    }
}

/// The seed of a run: with the same parameters it reproduces the run exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// Parses a seed written as a whole number.
    pub fn parse(raw: &str) -> Result<Seed, String> {
        raw.trim().parse::<u64>().map(Seed).map_err(|_| {
            format!(
                "seed must be a whole number from 0 to {}, got '{raw}'",
                u64::MAX
            )
        })
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[ParamSpec] = &[
        ParamSpec {
            name: "rate",
            label: "Rate",
            unit: "req/s",
            help: "How fast requests come.",
            kind: ParamKind::Number {
                min: 0.5,
                max: 10.0,
                step: 0.5,
                default: 1.0,
            },
            liveness: Liveness::Live,
        },
        ParamSpec {
            name: "servers",
            label: "Servers",
            unit: "",
            help: "How many.",
            kind: ParamKind::Integer {
                min: 1,
                max: 8,
                default: 2,
            },
            liveness: Liveness::Restart,
        },
        ParamSpec {
            name: "mode",
            label: "Mode",
            unit: "",
            help: "Which.",
            kind: ParamKind::Choice {
                options: &["fast", "slow"],
                default: "fast",
            },
            liveness: Liveness::Live,
        },
        ParamSpec {
            name: "cache",
            label: "Cache",
            unit: "",
            help: "On or off.",
            kind: ParamKind::Toggle { default: false },
            liveness: Liveness::Live,
        },
    ];

    #[test]
    fn defaults_fill_every_parameter() {
        let values = ParamValues::defaults(SCHEMA);
        assert_eq!(values.number("rate"), 1.0);
        assert_eq!(values.integer("servers"), 2);
        assert_eq!(values.choice("mode"), "fast");
        assert!(!values.toggle("cache"));
        assert_eq!(values.changed().count(), 0);
    }

    #[test]
    fn assignments_override_defaults() {
        let values = ParamValues::from_assignments(
            SCHEMA,
            ["rate=2.5", "servers=8", "mode=SLOW", "cache=on"],
        )
        .unwrap();
        assert_eq!(values.number("rate"), 2.5);
        assert_eq!(values.integer("servers"), 8);
        assert_eq!(values.choice("mode"), "slow");
        assert!(values.toggle("cache"));
        assert_eq!(values.changed().count(), 4);
    }

    #[test]
    fn bad_input_is_explained_with_the_allowed_range() {
        let err = |assignment: &str| {
            ParamValues::from_assignments(SCHEMA, [assignment])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("servers=0"),
            "parameter 'servers' must be a whole number from 1 to 8, got 0"
        );
        assert_eq!(
            err("rate=fast"),
            "parameter 'rate' must be a number from 0.5 to 10, got 'fast'"
        );
        assert_eq!(
            err("rate=NaN"),
            "parameter 'rate' must be a number from 0.5 to 10, got 'NaN'"
        );
        assert_eq!(
            err("rate=inf"),
            "parameter 'rate' must be a number from 0.5 to 10, got 'inf'"
        );
        assert_eq!(
            err("servers=2.5"),
            "parameter 'servers' must be a whole number from 1 to 8, got '2.5'"
        );
        assert_eq!(
            err("mode=medium"),
            "parameter 'mode' must be one of fast, slow, got 'medium'"
        );
        assert_eq!(
            err("colour=red"),
            "unknown parameter 'colour'; known parameters: rate, servers, mode, cache"
        );
        assert_eq!(err("rate"), "expected name=value, got 'rate'");
    }

    #[test]
    fn typed_values_are_range_checked_too() {
        let mut values = ParamValues::defaults(SCHEMA);
        assert!(values.set("rate", ParamValue::Number(11.0)).is_err());
        assert!(values.set("rate", ParamValue::Integer(3)).is_err());
        assert!(values.set("mode", ParamValue::Choice("other")).is_err());
        assert_eq!(
            values.set("rate", ParamValue::Number(3.0)),
            Ok(ParamValue::Number(3.0))
        );
    }

    #[test]
    fn seeds_parse_or_explain() {
        assert_eq!(Seed::parse(" 42 "), Ok(Seed(42)));
        assert!(Seed::parse("-1").unwrap_err().contains("whole number"));
        assert!(Seed::parse("abc").is_err());
    }
}
