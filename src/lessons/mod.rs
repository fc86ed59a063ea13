//! Lesson models and the registry that lists them.
