//! Lesson content is valid data: every lesson has narrative and at least five questions
//! including a prediction; every answer key, assignment and injection refers to something
//! real; every prediction's simulated value falls into exactly one of its options; and
//! grading accepts right answers and refuses wrong ones.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use patterns_playground::learning::content::{self, QuestionKind};
use patterns_playground::learning::quiz::{grade, observe, Answer};
use patterns_playground::lessons::{self, params::ParamValues};

#[test]
fn every_content_file_parses() {
    for result in content::check_all() {
        result.unwrap();
    }
}

#[test]
fn every_lesson_has_narrative_and_at_least_five_questions_with_a_prediction() {
    for lesson in lessons::catalog() {
        let content = content::for_lesson(lesson.id)
            .unwrap_or_else(|| panic!("no content/lessons/{}.json", lesson.id));
        assert!(!content.sections.is_empty(), "{}", lesson.id);
        assert!(!content.try_this.is_empty(), "{}", lesson.id);
        assert!(!content.exam_tips.is_empty(), "{}", lesson.id);
        assert!(
            content.search_terms.len() >= 5,
            "{}: give the course map's search at least 5 search_terms (AWS services, other names, problems in plain words)",
            lesson.id
        );
        assert!(
            content.questions.len() >= 5,
            "{}: {} questions",
            lesson.id,
            content.questions.len()
        );
        assert!(
            content
                .questions
                .iter()
                .any(|q| matches!(q.kind, QuestionKind::Predict { .. })),
            "{} has no predict-then-observe question",
            lesson.id
        );
        let ids: BTreeSet<&str> = content.questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(
            ids.len(),
            content.questions.len(),
            "{}: duplicate question ids",
            lesson.id
        );
    }
}

#[test]
fn answer_keys_assignments_and_injections_refer_to_real_things() {
    assert_eq!(
        content::all().len(),
        content::check_all().len(),
        "every file parsed"
    );
    for content in content::all() {
        let spec = lessons::find(&content.lesson).expect("content for a real lesson");
        for step in &content.try_this {
            ParamValues::from_assignments(spec.params, step.set.iter().map(String::as_str))
                .unwrap_or_else(|e| panic!("{}: try-this '{}': {e}", content.lesson, step.text));
            if let Some(injection) = &step.inject {
                assert!(
                    spec.injection(injection).is_some(),
                    "{}: unknown injection {injection}",
                    content.lesson
                );
            }
        }
        for question in &content.questions {
            match &question.kind {
                QuestionKind::Single { options } => {
                    assert_eq!(
                        options.iter().filter(|o| o.correct).count(),
                        1,
                        "{}",
                        question.id
                    );
                    assert!(options.len() >= 2);
                }
                QuestionKind::Multiple { options } => {
                    assert!(options.iter().any(|o| o.correct), "{}", question.id);
                    assert!(options.iter().any(|o| !o.correct), "{}", question.id);
                }
                QuestionKind::Numeric {
                    tolerance, answer, ..
                } => {
                    assert!(*tolerance >= 0.0 && answer.is_finite(), "{}", question.id);
                }
                QuestionKind::Predict { .. } => {}
            }
            for option_text in match &question.kind {
                QuestionKind::Single { options } | QuestionKind::Multiple { options } => options
                    .iter()
                    .map(|o| (o.text.as_str(), o.why.as_str()))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            } {
                assert!(
                    !option_text.0.is_empty() && !option_text.1.is_empty(),
                    "{}: every option explains itself",
                    question.id
                );
            }
        }
    }
}

#[test]
fn predictions_are_graded_by_the_simulation_and_land_in_exactly_one_option() {
    let mut checked = 0;
    for content in content::all() {
        for question in &content.questions {
            let QuestionKind::Predict {
                scenario,
                metric,
                options,
                ..
            } = &question.kind
            else {
                continue;
            };
            let value = observe(&content.lesson, scenario, metric).unwrap();
            let holding: Vec<usize> = (0..options.len())
                .filter(|&i| options[i].contains(value))
                .collect();
            assert_eq!(
                holding.len(),
                1,
                "{}: {metric} = {value} is in options {holding:?}",
                question.id
            );
            let right = holding[0];
            let graded = grade(&content.lesson, question, &Answer::Options(vec![right])).unwrap();
            assert!(graded.correct, "{}", question.id);
            assert_eq!(
                graded.observed.unwrap().value,
                value,
                "the grade reports what was measured"
            );
            let wrong = (right + 1) % options.len();
            assert!(
                !grade(&content.lesson, question, &Answer::Options(vec![wrong]))
                    .unwrap()
                    .correct
            );
            checked += 1;
        }
    }
    assert!(
        checked >= lessons::catalog().len(),
        "one prediction per lesson at least"
    );
}

#[test]
fn choice_and_numeric_grading() {
    let content = content::for_lesson("queueing-basics").unwrap();
    let question = |id: &str| content.questions.iter().find(|q| q.id == id).unwrap();
    let lesson = "queueing-basics";
    assert!(
        grade(lesson, question("hockey-stick"), &Answer::Options(vec![1]))
            .unwrap()
            .correct
    );
    assert!(
        !grade(lesson, question("hockey-stick"), &Answer::Options(vec![0]))
            .unwrap()
            .correct
    );
    assert!(
        grade(lesson, question("littles-law"), &Answer::Number(50.0))
            .unwrap()
            .correct
    );
    assert!(
        !grade(lesson, question("littles-law"), &Answer::Number(5.0))
            .unwrap()
            .correct
    );
    assert!(
        !grade(lesson, question("littles-law"), &Answer::Number(f64::NAN))
            .unwrap()
            .correct
    );
    // Multiple choice: all the right ones and nothing else.
    assert!(
        grade(
            lesson,
            question("variability"),
            &Answer::Options(vec![1, 0])
        )
        .unwrap()
        .correct
    );
    assert!(
        !grade(lesson, question("variability"), &Answer::Options(vec![0]))
            .unwrap()
            .correct
    );
    assert!(
        !grade(
            lesson,
            question("variability"),
            &Answer::Options(vec![0, 1, 2])
        )
        .unwrap()
        .correct
    );
    // A number for a choice question is refused, not panicked on.
    assert!(grade(lesson, question("hockey-stick"), &Answer::Number(1.0)).is_err());
}

#[test]
fn the_build_index_matches_every_content_file() {
    // The site knows question ids and search terms from build.rs's index before it has
    // fetched a lesson's file; they must be exactly the file's.
    let files = content::all();
    assert_eq!(content::INDEX.len(), files.len());
    for lesson in files {
        let entry = content::index(&lesson.lesson).expect("indexed");
        let ids: Vec<&str> = lesson.questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(entry.questions, ids.as_slice(), "{}", lesson.lesson);
        assert_eq!(
            entry.search_terms,
            lesson.search_terms.as_slice(),
            "{}",
            lesson.lesson
        );
        assert_eq!(entry.version.len(), 16);
        assert_eq!(
            content::url(entry),
            format!("content/lessons/{}.json?v={}", lesson.lesson, entry.version)
        );
    }
    for lesson in lessons::catalog() {
        assert!(
            content::index(lesson.id).is_some(),
            "{} is not indexed",
            lesson.id
        );
    }
}

#[test]
fn kept_content_is_returned_and_never_replaced() {
    let first = content::for_lesson("queueing-basics").unwrap();
    let again = content::keep(first.clone());
    assert!(std::ptr::eq(first, again), "the kept copy is returned");
}
