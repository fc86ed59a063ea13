//! Content text with its glossary links: plain words stay text, `[[term]]` links become
//! buttons that open the term's definition in place (the lesson keeps running) with a
//! link to the full glossary.

use yew::prelude::*;

use crate::learning::glossary::{self, Segment};

#[derive(Properties, PartialEq)]
pub struct RichTextProps {
    pub text: AttrValue,
}

#[function_component(RichText)]
pub fn rich_text(props: &RichTextProps) -> Html {
    let parts = glossary::segments(&props.text)
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(words) => html! { { words.to_owned() } },
            Segment::Link { term, shown } => match glossary::find(term) {
                Some(found) => html! {
                    <TermLink id={found.id.clone()} shown={shown.to_owned()} />
                },
                None => html! { { shown.to_owned() } },
            },
        });
    html! { <>{ for parts }</> }
}

#[derive(Properties, PartialEq)]
pub struct TermLinkProps {
    pub id: AttrValue,
    pub shown: AttrValue,
}

/// One glossary link: the shown words as a toggle button, the definition beside it.
#[function_component(TermLink)]
pub fn term_link(props: &TermLinkProps) -> Html {
    let open = use_state(|| false);
    let Some(term) = glossary::find(&props.id) else {
        return html! { { props.shown.clone() } };
    };
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let definition_id = format!("def-{}-{}", term.id, props.shown.len());
    html! {
        <span class="term-link">
            <button type="button" class="term" aria-expanded={open.to_string()}
                aria-controls={definition_id.clone()} data-term={term.id.clone()} onclick={toggle}
                title={format!("{}: {}", term.term, term.definition)}>
                { props.shown.clone() }
            </button>
            if *open {
                <span class="term-definition" id={definition_id} role="note">
                    <strong>{ format!("{}: ", term.term) }</strong>{ term.definition.clone() }
                    { " " }<a href={format!("?page=glossary#term-{}", term.id)}>{ "Glossary" }</a>
                </span>
            }
        </span>
    }
}
