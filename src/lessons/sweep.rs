//! Runs one lesson once per option of a choice parameter, on one seed and otherwise
//! equal parameters, to the same time: the table behind "compare every strategy" (the
//! retry strategies, the disaster-recovery strategies). Same arrivals in every row, so
//! the differences are the option alone.

use crate::sim::metrics::RunSummary;
use crate::sim::snapshot::Figure;
use crate::sim::time::SimTime;

use super::params::{ParamKind, ParamValue, ParamValues, Seed};
use super::LessonSpec;

/// One option's results.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    pub option: &'static str,
    pub summary: RunSummary,
    pub figures: Vec<Figure>,
}

/// Runs `spec` with `parameter` set to each of its options in turn, to `until`.
/// Returns `None` if `parameter` is not a choice of this lesson.
pub fn sweep(
    spec: &LessonSpec,
    params: &ParamValues,
    parameter: &str,
    seed: Seed,
    until: SimTime,
) -> Option<Vec<SweepRow>> {
    let ParamKind::Choice { options, .. } = params.spec(parameter).ok()?.kind else {
        return None;
    };
    let rows = options
        .iter()
        .map(|&option| {
            let mut params = params.clone();
            params
                .set(parameter, ParamValue::Choice(option))
                .expect("an option of the choice itself");
            let mut run = spec.start(&params, seed);
            run.run_until(until);
            SweepRow {
                option,
                summary: run.summary(),
                figures: run.extra_figures(),
            }
        })
        .collect();
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lessons::load_leveling;

    #[test]
    fn one_row_per_option_each_matching_a_single_run() {
        let spec = &load_leveling::SPEC;
        let params = spec.default_params();
        let until = SimTime::from_secs_f64(300.0);
        let rows = sweep(spec, &params, "coupling", Seed(4), until).unwrap();
        let options: Vec<_> = rows.iter().map(|row| row.option).collect();
        assert_eq!(options.len(), 2);
        for row in &rows {
            let mut single = params.clone();
            single
                .set("coupling", ParamValue::Choice(row.option))
                .unwrap();
            let mut run = spec.start(&single, Seed(4));
            run.run_until(until);
            assert_eq!(row.summary, run.summary());
        }
        assert_ne!(rows[0].summary, rows[1].summary);
        assert!(sweep(spec, &params, "base_rate", Seed(4), until).is_none());
    }
}
