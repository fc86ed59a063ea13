//! Browser entry point: mounts the Yew app (built by Trunk).

fn main() {
    patterns_playground::view::start();
}
