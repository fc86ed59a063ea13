//! The glossary page: every key term with its definition, an example and links to the
//! lessons that use it, each with an anchor (`#term-<id>`) that glossary links point to,
//! and a filter box.

use yew::prelude::*;

use crate::learning::{glossary, search};
use crate::lessons;
use crate::route::{LessonRoute, Route};

#[derive(Properties, PartialEq)]
pub struct GlossaryPageProps {
    pub on_navigate: Callback<Route>,
}

#[function_component(GlossaryPage)]
pub fn glossary_page(props: &GlossaryPageProps) -> Html {
    let query = use_state(String::new);
    let on_filter = {
        let query = query.clone();
        Callback::from(move |event: InputEvent| {
            let input: web_sys::HtmlInputElement = event.target_unchecked_into();
            query.set(input.value());
        })
    };
    // Jump to the anchor the address names once the list is in the page.
    use_effect_with((), |_| {
        if let Some(window) = web_sys::window() {
            if let Ok(hash) = window.location().hash() {
                let id = hash.trim_start_matches('#');
                if !id.is_empty() {
                    if let Some(element) = window.document().and_then(|d| d.get_element_by_id(id)) {
                        element.scroll_into_view();
                    }
                }
            }
        }
    });
    let wanted = search::query_words(&query);
    let home = props.on_navigate.reform(|event: MouseEvent| {
        event.prevent_default();
        Route::Home
    });
    let entries = glossary::all()
        .iter()
        .filter(|term| search::matches(&wanted, &[term.term.as_str(), term.definition.as_str()]))
        .map(|term| {
            let lesson_links = term.lessons.iter().filter_map(|id| {
                let spec = lessons::find(id)?;
                let route = Route::Lesson(LessonRoute::defaults(spec));
                let href = super::url::query_for(&route, &crate::route::Presentation::default());
                let onclick = props.on_navigate.reform(move |event: MouseEvent| {
                    event.prevent_default();
                    route.clone()
                });
                Some(html! { <li><a {href} {onclick}>{ spec.title }</a></li> })
            });
            html! {
                <div class="glossary-entry" id={format!("term-{}", term.id)} data-term={term.id.clone()}>
                    <dt>{ term.term.clone() }</dt>
                    <dd>
                        <p>{ term.definition.clone() }</p>
                        if let Some(example) = &term.example {
                            <p class="glossary-example"><strong>{ "Example: " }</strong>{ example.clone() }</p>
                        }
                        if !term.lessons.is_empty() {
                            <div class="glossary-lessons">
                                <span>{ "Try it in: " }</span>
                                <ul>{ for lesson_links }</ul>
                            </div>
                        }
                    </dd>
                </div>
            }
        })
        .collect::<Vec<_>>();
    let count = entries.len();
    html! {
        <main id="app-root" class="glossary-page">
            <a href="?" onclick={home}>{ "← All lessons" }</a>
            <h1>{ "Glossary" }</h1>
            <div class="lesson-search" role="search">
                <label for="glossary-filter">{ "Filter terms" }</label>
                <input id="glossary-filter" type="search" value={(*query).clone()} oninput={on_filter} autocomplete="off" />
                <p class="search-count" aria-live="polite">{
                    if query.trim().is_empty() { String::new() } else { format!("{count} of {} terms match.", glossary::all().len()) }
                }</p>
            </div>
            <dl class="glossary">{ for entries }</dl>
        </main>
    }
}
