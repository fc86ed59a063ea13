//! Headless runner: runs a lesson and prints its metrics as JSON.
fn main() {}
