//! The glossary and the exam drill are valid data: every term the issue names exists,
//! ids are unique, lesson references are real; every `[[term]]` link anywhere in lesson
//! content, glossary or drill points at a real term; every drill question has exactly one
//! right option, an explanation per option and a link back to a lesson or term; the five
//! checkpoint questions of the seed 001 study guide are in the drill.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use patterns_playground::learning::content::{self, QuestionKind};
use patterns_playground::learning::{drill, glossary};
use patterns_playground::lessons;

#[test]
fn the_glossary_parses_with_unique_ids_and_the_key_terms() {
    let terms = glossary::parse(include_str!("../content/glossary.json")).unwrap();
    assert!(terms.len() >= 30, "{} terms", terms.len());
    let ids: BTreeSet<&str> = terms.iter().map(|term| term.id.as_str()).collect();
    assert_eq!(ids.len(), terms.len(), "duplicate glossary ids");
    for required in [
        "loose-coupling",
        "idempotency",
        "rpo",
        "rto",
        "statelessness",
        "immutable-infrastructure",
        "eventual-consistency",
        "circuit-breaker",
        "jitter",
    ] {
        assert!(ids.contains(required), "glossary lacks {required}");
    }
    for term in &terms {
        assert!(!term.definition.trim().is_empty(), "{}", term.id);
        for lesson in &term.lessons {
            assert!(
                lessons::find(lesson).is_some(),
                "{} names unknown lesson {lesson}",
                term.id
            );
        }
    }
    assert_eq!(glossary::all().len(), terms.len());
}

/// Every piece of text a learner reads in a lesson's content file.
fn lesson_texts(content: &content::LessonContent) -> Vec<&str> {
    let mut texts: Vec<&str> = Vec::new();
    for section in &content.sections {
        texts.extend(section.paragraphs.iter().map(String::as_str));
    }
    for step in &content.try_this {
        texts.push(&step.text);
        texts.push(&step.ask);
    }
    texts.extend(content.exam_tips.iter().map(String::as_str));
    for question in &content.questions {
        texts.push(&question.prompt);
        match &question.kind {
            QuestionKind::Single { options } | QuestionKind::Multiple { options } => {
                for option in options {
                    texts.push(&option.text);
                    texts.push(&option.why);
                }
            }
            QuestionKind::Numeric { why, .. } => texts.push(why),
            QuestionKind::Predict { options, why, .. } => {
                texts.push(why);
                texts.extend(options.iter().map(|option| option.text.as_str()));
            }
        }
    }
    texts
}

#[test]
fn every_glossary_link_points_at_a_real_term() {
    let mut texts: Vec<(String, &str)> = Vec::new();
    for content in content::all() {
        for text in lesson_texts(content) {
            texts.push((format!("content/lessons/{}.json", content.lesson), text));
        }
    }
    for question in drill::all() {
        texts.push(("content/drill.json".into(), &question.prompt));
        for option in &question.options {
            texts.push(("content/drill.json".into(), &option.text));
            texts.push(("content/drill.json".into(), &option.why));
        }
    }
    let mut linked = 0;
    for (file, text) in &texts {
        for term in glossary::links(text) {
            linked += 1;
            assert!(
                glossary::find(term).is_some(),
                "{file}: unknown glossary term [[{term}]] in {text:?}"
            );
        }
    }
    assert!(linked >= 10, "only {linked} glossary links in the content");
}

#[test]
fn drill_questions_are_single_choice_explained_and_linked() {
    let questions = drill::parse(include_str!("../content/drill.json")).unwrap();
    assert!(questions.len() >= 15);
    let ids: BTreeSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids.len(), questions.len(), "duplicate drill ids");
    for question in &questions {
        assert!(question.options.len() >= 3, "{}", question.id);
        assert_eq!(
            question.options.iter().filter(|o| o.correct).count(),
            1,
            "{}: exactly one right option",
            question.id
        );
        assert!(
            question.options.iter().all(|o| !o.why.trim().is_empty()),
            "{}",
            question.id
        );
        if let Some(lesson) = &question.lesson {
            assert!(
                lessons::find(lesson).is_some(),
                "{}: unknown lesson {lesson}",
                question.id
            );
        }
        if let Some(term) = &question.term {
            assert!(
                glossary::find(term).is_some(),
                "{}: unknown term {term}",
                question.id
            );
        }
        assert!(
            question.lesson.is_some() || question.term.is_some(),
            "{}: link it back to a lesson or a glossary term",
            question.id
        );
    }
    // The five checkpoint questions of the seed 001 study guide, in the project's words.
    for checkpoint in [
        "sqs-or-sns-fan-out",
        "stateless-scaling",
        "pilot-light-or-warm",
        "alb-failed-instance",
        "orchestrate-lambdas",
    ] {
        assert!(
            ids.contains(checkpoint),
            "drill lacks checkpoint {checkpoint}"
        );
    }
}
