//! The plumbing every lesson model shares: its request table, metrics and notable-event
//! log ([`ModelCore`]), and the one pending timer for the next Poisson arrival
//! ([`ArrivalTimer`]). A model holds a `ModelCore`, returns it from
//! [`super::run::LessonModel::core`], and gets the metrics, log and live-request
//! accessors for free.

use crate::sim::metrics::{MetricsConfig, RunMetrics};
use crate::sim::requests::RequestTable;
use crate::sim::scheduler::{Scheduler, TimerHandle};
use crate::sim::snapshot::EventLog;
use crate::sim::traffic::PoissonArrivals;

/// Requests in flight, what the run measured, and what happened worth telling.
pub struct ModelCore {
    pub requests: RequestTable,
    pub metrics: RunMetrics,
    pub log: EventLog,
}

impl ModelCore {
    /// An empty table and log with metrics declaring `gauges` (in chart order).
    pub fn new(gauges: Vec<&'static str>) -> Self {
        ModelCore {
            requests: RequestTable::new(),
            metrics: RunMetrics::new(MetricsConfig {
                gauges,
                ..MetricsConfig::default()
            }),
            log: EventLog::default(),
        }
    }

    /// The id of a gauge declared in [`ModelCore::new`].
    ///
    /// # Panics
    /// If `name` was not declared: a programming error in the model.
    pub fn gauge(&self, name: &str) -> crate::sim::metrics::GaugeId {
        self.metrics
            .gauge_id(name)
            .unwrap_or_else(|| panic!("gauge '{name}' was not declared"))
    }
}

/// The arrival process and the timer of its next arrival. Re-arming cancels the pending
/// timer first, so a rate change takes effect at once without a stray extra arrival.
pub struct ArrivalTimer<E> {
    pub arrivals: PoissonArrivals,
    pending: Option<TimerHandle>,
    event: E,
}

impl<E: Copy> ArrivalTimer<E> {
    /// `event` is what the scheduler delivers at each arrival.
    pub fn new(arrivals: PoissonArrivals, event: E) -> Self {
        ArrivalTimer {
            arrivals,
            pending: None,
            event,
        }
    }

    /// Schedules the next arrival after now, replacing any pending one. Call it at the
    /// start, after every arrival, and after changing the rate or shape.
    pub fn rearm(&mut self, scheduler: &mut Scheduler<E>) {
        if let Some(pending) = self.pending.take() {
            scheduler.cancel(pending);
        }
        let now = scheduler.now();
        if let Some(at) = self.arrivals.next_after(now) {
            self.pending = Some(scheduler.schedule_timer_in(at - now, self.event));
        }
    }

    /// Call when the arrival event is handled, before [`ArrivalTimer::rearm`].
    pub fn fired(&mut self) {
        self.pending = None;
    }
}
