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

/// Mounts the app at an address and gives Yew a moment to render.
async fn mount_at(query: &str) -> web_sys::Element {
    let window = web_sys::window().unwrap();
    window
        .history()
        .unwrap()
        .replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(query))
        .unwrap();
    let document = window.document().unwrap();
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    yew::Renderer::<patterns_playground::view::App>::with_root(host.clone()).render();
    yew::platform::time::sleep(std::time::Duration::from_millis(50)).await;
    host
}

#[wasm_bindgen_test]
async fn a_lesson_link_mounts_the_lesson_page_paused_with_its_parameters() {
    let host = mount_at("?lesson=queue-load-leveling&seed=8&p.workers_min=3").await;
    let title = host
        .query_selector(".lesson-page h1")
        .unwrap()
        .expect("lesson page");
    assert_eq!(title.text_content().unwrap(), "Queue-based load leveling");
    let clock = host.query_selector(".clock").unwrap().unwrap();
    assert_eq!(clock.text_content().unwrap(), "t = 0.0 s", "starts paused");
    let workers: web_sys::HtmlInputElement = wasm_bindgen::JsCast::dyn_into(
        host.query_selector("#param-workers_min-input")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(workers.value(), "3");
    // Three workers are running from the start, the other slots are off.
    let healthy = host
        .query_selector_all("[data-node^='worker-'][data-state='healthy']")
        .unwrap()
        .length();
    assert_eq!(healthy, 3);

    // Pressing Play advances simulated time on animation frames.
    let play: web_sys::HtmlElement =
        wasm_bindgen::JsCast::dyn_into(host.query_selector(".play").unwrap().unwrap()).unwrap();
    play.click();
    yew::platform::time::sleep(std::time::Duration::from_millis(600)).await;
    let advanced = clock.text_content().unwrap();
    assert_ne!(advanced, "t = 0.0 s", "time moves while playing");
    host.remove();
}

#[wasm_bindgen_test]
fn a_panic_banner_offers_a_reload() {
    patterns_playground::view::panic_banner::show_banner("test <panic> & co");
    let document = web_sys::window().unwrap().document().unwrap();
    let banner = document
        .get_element_by_id("error-banner")
        .expect("banner shown");
    assert_eq!(banner.get_attribute("role").as_deref(), Some("alert"));
    let text = banner.text_content().unwrap();
    assert!(text.contains("Something went wrong"));
    assert!(
        text.contains("test <panic> & co"),
        "message shown escaped, as text: {text}"
    );
    assert!(
        banner.query_selector("button").unwrap().is_some(),
        "a reload button"
    );
    banner.remove();
}
