//! The learning layer, independent of the view: lesson narrative and quiz content (data
//! files under `content/`), grading (including predictions graded against a simulation
//! run) and stored progress, parsed and validated at the edge.

pub mod content;
pub mod drill;
pub mod glossary;
pub mod progress;
pub mod quiz;
pub mod search;
