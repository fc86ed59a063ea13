//! Browser tests (wasm-bindgen-test in headless Chromium): the app mounts into a real DOM,
//! and a seeded run in wasm reproduces the native run exactly.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::*;

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::queueing_basics;
use patterns_playground::lessons::run::LessonRun;
use patterns_playground::sim::time::SimTime;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn the_app_mounts_and_lists_queueing_basics() {
    let document = web_sys::window().unwrap().document().unwrap();
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    yew::Renderer::<patterns_playground::view::App>::with_root(host.clone()).render();
    // Yew renders from its scheduler, after the current task: give it a moment.
    yew::platform::time::sleep(std::time::Duration::from_millis(50)).await;
    let heading = host.query_selector("h1").unwrap().expect("a heading");
    assert_eq!(heading.text_content().unwrap(), "Patterns Playground");
    let lesson = host
        .query_selector("[data-lesson='queueing-basics']")
        .unwrap()
        .expect("queueing-basics is listed");
    assert!(lesson.text_content().unwrap().contains("queueing-basics"));
}

/// The same seeded run gives the same bits in the browser as natively (the native side
/// of this check is `determinism_golden` in tests/determinism.rs).
#[wasm_bindgen_test]
fn a_seeded_run_matches_the_native_golden_figures() {
    let params = ParamValues::from_assignments(
        queueing_basics::SPEC.params,
        [
            "arrival_rate=1.8",
            "servers=2",
            "service_distribution=lognormal",
            "service_cv=1.5",
        ],
    )
    .unwrap();
    let mut run = queueing_basics::simulation(&params, Seed(2024));
    run.run_until(SimTime::from_secs_f64(5000.0));
    let summary = LessonRun::summary(&run);
    let fingerprint = patterns_playground::lessons::run::fingerprint(&summary);
    assert_eq!(fingerprint, GOLDEN_FINGERPRINT);
}

const GOLDEN_FINGERPRINT: &str = include_str!("golden/queueing-basics-seed-2024.txt");
