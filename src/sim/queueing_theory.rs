//! Closed-form queueing results used to validate the engine and to draw theory curves.
//!
//! Sources: A. K. Erlang (1917) for the M/M/c waiting probability (Erlang C); J. D. C.
//! Little, "A proof for the queuing formula L = λW", Operations Research 9(3), 1961;
//! the Pollaczek–Khinchine formula for M/G/1 (Kleinrock, *Queueing Systems* vol. 1, 1975,
//! §5.6). Reference values are listed in the project's DESIGN.md and checked in tests.

/// Steady-state results for an M/M/c queue, or `None` where no steady state exists.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MmcResult {
    /// Offered load a = λ/μ (Erlangs).
    pub offered_load: f64,
    /// Utilisation ρ = a/c.
    pub utilisation: f64,
    /// Probability that an arriving customer waits, C(c, a).
    pub wait_probability: f64,
    /// Mean wait in queue Wq = C / (cμ − λ).
    pub wait_mean: f64,
    /// Mean time in system W = Wq + 1/μ.
    pub sojourn_mean: f64,
    /// Mean number in system L = λW (Little's law).
    pub number_in_system: f64,
}

/// Erlang C for `servers` servers, arrival rate `lambda`, service rate `mu` per server.
/// Returns `None` unless λ, μ > 0, c ≥ 1 and ρ < 1.
///
/// The sum `Σ_{k<c} a^k/k!` is accumulated term by term (t_k = t_{k-1}·a/k) so large `c`
/// neither overflows nor loses precision to factorials.
pub fn erlang_c(servers: u32, lambda: f64, mu: f64) -> Option<MmcResult> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if servers == 0 || !positive(lambda) || !positive(mu) {
        return None;
    }
    let c = servers as f64;
    let a = lambda / mu;
    let rho = a / c;
    if rho >= 1.0 {
        return None;
    }
    let mut term = 1.0; // a^0 / 0!
    let mut below_c = 0.0;
    for k in 0..servers {
        below_c += term;
        term *= a / (k as f64 + 1.0);
    }
    // `term` is now a^c / c!.
    let top = term * c / (c - a);
    let wait_probability = top / (below_c + top);
    let wait_mean = wait_probability / (c * mu - lambda);
    let sojourn_mean = wait_mean + 1.0 / mu;
    Some(MmcResult {
        offered_load: a,
        utilisation: rho,
        wait_probability,
        wait_mean,
        sojourn_mean,
        number_in_system: lambda * sojourn_mean,
    })
}

/// Mean wait in queue for M/G/1 by Pollaczek–Khinchine: Wq = λ E[S²] / (2 (1 − ρ)),
/// with E[S²] = (1 + cv²) / μ², `cv` the service time's coefficient of variation
/// (cv = 1 exponential, cv = 0 deterministic). `None` unless ρ < 1.
pub fn pollaczek_khinchine_wait(lambda: f64, mu: f64, service_cv: f64) -> Option<f64> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !(positive(lambda) && positive(mu) && service_cv.is_finite() && service_cv >= 0.0) {
        return None;
    }
    let rho = lambda / mu;
    if rho >= 1.0 {
        return None;
    }
    let second_moment = (1.0 + service_cv * service_cv) / (mu * mu);
    Some(lambda * second_moment / (2.0 * (1.0 - rho)))
}

/// Approximate mean wait for M/G/c (Allen–Cunneen): the M/M/c wait scaled by
/// (1 + cv²)/2. Exact for c = 1 (it is then Pollaczek–Khinchine) and for exponential
/// service; a good guide elsewhere. Used for theory curves, not for validation.
pub fn mgc_wait_approx(servers: u32, lambda: f64, mu: f64, service_cv: f64) -> Option<f64> {
    let mmc = erlang_c(servers, lambda, mu)?;
    Some(mmc.wait_mean * (1.0 + service_cv * service_cv) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn matches_the_reference_values_in_design_md() {
        let mm1 = erlang_c(1, 0.9, 1.0).unwrap();
        assert!(close(mm1.wait_mean, 9.0, 1e-9), "{mm1:?}");
        let mm2 = erlang_c(2, 1.8, 1.0).unwrap();
        assert!(close(mm2.wait_mean, 4.263158, 1e-6), "{mm2:?}");
        let mm8 = erlang_c(8, 7.2, 1.0).unwrap();
        assert!(close(mm8.wait_mean, 0.876916, 1e-6), "{mm8:?}");
        assert!(close(mm8.wait_probability, 0.701533, 1e-6), "{mm8:?}");
    }

    #[test]
    fn m_d_1_waits_half_as_long_as_m_m_1() {
        let md1 = pollaczek_khinchine_wait(0.9, 1.0, 0.0).unwrap();
        assert!(close(md1, 4.5, 1e-12));
        let mm1 = pollaczek_khinchine_wait(0.9, 1.0, 1.0).unwrap();
        assert!(close(mm1, erlang_c(1, 0.9, 1.0).unwrap().wait_mean, 1e-12));
    }

    #[test]
    fn littles_law_holds_by_construction() {
        let r = erlang_c(3, 2.0, 1.0).unwrap();
        assert!(close(r.number_in_system, 2.0 * r.sojourn_mean, 1e-12));
    }

    #[test]
    fn no_steady_state_at_or_above_full_utilisation() {
        assert!(erlang_c(1, 1.0, 1.0).is_none());
        assert!(erlang_c(2, 2.5, 1.0).is_none());
        assert!(erlang_c(0, 0.5, 1.0).is_none());
        assert!(erlang_c(1, f64::NAN, 1.0).is_none());
        assert!(pollaczek_khinchine_wait(1.2, 1.0, 1.0).is_none());
    }

    #[test]
    fn many_servers_do_not_overflow() {
        let r = erlang_c(500, 490.0, 1.0).unwrap();
        assert!(r.wait_probability > 0.0 && r.wait_probability < 1.0);
        assert!(r.wait_mean.is_finite());
    }
}
