//! Lesson models and the catalog that lists them: each lesson is data (parameter schema,
//! injections, default duration) plus a constructor for its model.
//!
//! Architecture invariant: nothing under `lessons/` imports a web crate; the view reaches
//! a lesson only through [`LessonSpec`] and [`run::LessonRun`].

pub mod bulkhead;
pub mod caching;
pub mod cdn;
pub mod circuit_breaker;
pub mod core;
pub mod coupling;
pub mod cqrs;
pub mod disaster_recovery;
pub mod event_routing;
pub mod failover;
pub mod journal;
pub mod load_balancing;
pub mod load_leveling;
pub mod master_worker;
pub mod microservices;
pub mod multi_region;
pub mod params;
pub mod peer_to_peer;
pub mod pub_sub;
pub mod queueing_basics;
pub mod rate_limiting;
pub mod replication;
pub mod retries;
pub mod run;
pub mod saga;
pub mod scaling;
pub mod serverless;
pub mod sessions;
pub mod sharding;
pub mod sweep;

use crate::sim::time::SimDuration;

use params::{ParamSpec, ParamValues, Seed};
use run::LessonRun;

/// The catalog's groups, in the order DESIGN.md lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LessonGroup {
    Foundations,
    Messaging,
    TrafficAndCompute,
    Data,
    Resilience,
}

impl LessonGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            LessonGroup::Foundations => "foundations",
            LessonGroup::Messaging => "messaging",
            LessonGroup::TrafficAndCompute => "traffic-and-compute",
            LessonGroup::Data => "data",
            LessonGroup::Resilience => "resilience",
        }
    }
}

/// A failure or event the learner can inject into a running lesson.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectionSpec {
    /// Machine id used in commands and URLs (`lose-server`).
    pub id: &'static str,
    /// Button label.
    pub label: &'static str,
    /// One sentence on what it does.
    pub help: &'static str,
}

/// Everything the app and the runner need to know about one lesson.
pub struct LessonSpec {
    /// Stable id used in URLs and on the command line.
    pub id: &'static str,
    pub title: &'static str,
    pub group: LessonGroup,
    /// One-line summary for lists.
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    pub injections: &'static [InjectionSpec],
    /// How long a run lasts unless told otherwise.
    pub default_duration: SimDuration,
    /// Builds a fresh run at time zero.
    pub build: fn(&ParamValues, Seed) -> Box<dyn LessonRun>,
    /// A choice parameter whose values the lesson compares side by side on one seed
    /// (e.g. `coupling`: queue vs direct), if it is a comparison lesson.
    pub compare: Option<&'static str>,
    /// A choice parameter whose every value the page can run to the end on one seed and
    /// tabulate (summary and lesson figures per value), e.g. `strategy` for the retry or
    /// disaster-recovery lessons.
    pub sweep: Option<&'static str>,
    /// Key of a [`crate::sim::topology::NodeKind::Guard`] node whose state (healthy =
    /// closed, open, half-open) the page draws as a circuit breaker's state machine.
    pub breaker_node: Option<&'static str>,
}

impl LessonSpec {
    /// Parameters at their defaults.
    pub fn default_params(&self) -> ParamValues {
        ParamValues::defaults(self.params)
    }

    /// A fresh run.
    pub fn start(&self, params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
        (self.build)(params, seed)
    }

    pub fn injection(&self, id: &str) -> Option<&'static InjectionSpec> {
        self.injections.iter().find(|injection| injection.id == id)
    }
}

/// Every lesson, in the suggested order.
pub fn catalog() -> &'static [LessonSpec] {
    static CATALOG: [LessonSpec; 25] = [
        queueing_basics::SPEC,
        load_leveling::SPEC,
        coupling::SPEC,
        pub_sub::SPEC,
        event_routing::SPEC,
        saga::SPEC,
        cqrs::SPEC,
        load_balancing::SPEC,
        sessions::SPEC,
        scaling::SPEC,
        serverless::SPEC,
        microservices::SPEC,
        peer_to_peer::SPEC,
        master_worker::SPEC,
        caching::SPEC,
        cdn::SPEC,
        replication::SPEC,
        sharding::SPEC,
        multi_region::SPEC,
        failover::SPEC,
        circuit_breaker::SPEC,
        retries::SPEC,
        bulkhead::SPEC,
        rate_limiting::SPEC,
        disaster_recovery::SPEC,
    ];
    &CATALOG
}

/// Looks a lesson up by id.
pub fn find(id: &str) -> Option<&'static LessonSpec> {
    catalog().iter().find(|lesson| lesson.id == id)
}
