//! How a lesson figure reads on the page: dollars with cents, whole counts without
//! decimals, everything else to two decimals with its unit.

use crate::sim::snapshot::Figure;

pub fn format_figure(figure: &Figure) -> String {
    if figure.unit == "$" {
        format!("${:.2}", figure.value)
    } else if figure.value.fract() == 0.0 && figure.unit.is_empty() {
        format!("{}", figure.value)
    } else if figure.unit.is_empty() {
        format!("{:.2}", figure.value)
    } else {
        format!("{:.2} {}", figure.value, figure.unit)
    }
}
