//! How a lesson figure reads on the page: dollars with cents, whole counts without
//! decimals, long durations in minutes or hours (with the seconds kept in a title for
//! the exact value), everything else to two decimals with its unit.

use crate::sim::snapshot::Figure;

pub fn format_figure(figure: &Figure) -> String {
    if figure.unit == "$" {
        format!("${:.2}", figure.value)
    } else if figure.unit == "s" && figure.value >= 120.0 {
        format_long_duration(figure.value)
    } else if figure.value.fract() == 0.0 && figure.unit.is_empty() {
        format!("{}", figure.value)
    } else if figure.unit.is_empty() {
        format!("{:.2}", figure.value)
    } else {
        format!("{:.2} {}", figure.value, figure.unit)
    }
}

/// 120 s and more: "2 min 3 s", "2 h 02 min"; whole seconds are enough at that scale.
fn format_long_duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours} h {minutes:02} min")
    } else if secs == 0 {
        format!("{minutes} min")
    } else {
        format!("{minutes} min {secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(value: f64) -> String {
        format_figure(&Figure {
            key: "t",
            label: "t",
            value,
            unit: "s",
        })
    }

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(seconds(32.83), "32.83 s");
        assert_eq!(seconds(180.0), "3 min");
        assert_eq!(seconds(183.33), "3 min 3 s");
        assert_eq!(seconds(7320.0), "2 h 02 min");
    }
}
