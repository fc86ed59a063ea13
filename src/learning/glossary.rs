//! The glossary: key terms with a definition in the project's own words, an example and
//! the lessons that use them (`content/glossary.json`), and the links content text uses to
//! point at them: `[[idempotency]]` shows the term's own name, `[[idempotency|idempotent
//! consumers]]` shows other words. Unknown ids are a content error caught by tests; at
//! run time they render as plain text.

use std::sync::OnceLock;

use serde::Deserialize;

/// One glossary entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// Stable id used in links and anchors (`idempotency`).
    pub id: String,
    /// The term as shown (`Idempotency`).
    pub term: String,
    pub definition: String,
    #[serde(default)]
    pub example: Option<String>,
    /// Lessons where the term matters (ids from the catalog).
    #[serde(default)]
    pub lessons: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlossaryFile {
    terms: Vec<Term>,
}

const FILE: &str = include_str!("../../content/glossary.json");

/// Parses the glossary file, naming the problem on error.
pub fn parse(text: &str) -> Result<Vec<Term>, String> {
    let file: GlossaryFile =
        serde_json::from_str(text).map_err(|error| format!("content/glossary.json: {error}"))?;
    Ok(file.terms)
}

/// Every term, sorted by its shown name (checked by tests, so never empty in a build).
pub fn all() -> &'static [Term] {
    static ALL: OnceLock<Vec<Term>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut terms = parse(FILE).unwrap_or_default();
        terms.sort_by_key(|term| term.term.to_lowercase());
        terms
    })
}

/// The term with this id.
pub fn find(id: &str) -> Option<&'static Term> {
    all().iter().find(|term| term.id == id)
}

/// A piece of content text: plain words or a link to a term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link { term: &'a str, shown: &'a str },
}

/// Splits `text` at its `[[term]]` / `[[term|shown]]` links. An unclosed `[[` is text.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("[[") {
        let Some(close) = rest[open + 2..].find("]]") else {
            break;
        };
        if open > 0 {
            out.push(Segment::Text(&rest[..open]));
        }
        let inner = &rest[open + 2..open + 2 + close];
        let (term, shown) = match inner.split_once('|') {
            Some((term, shown)) => (term.trim(), shown),
            None => (inner.trim(), inner),
        };
        out.push(Segment::Link { term, shown });
        rest = &rest[open + 2 + close + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

/// `text` as a reader sees it: links replaced by their shown words.
pub fn plain(text: &str) -> String {
    segments(text)
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(words) => words,
            Segment::Link { shown, .. } => shown,
        })
        .collect()
}

/// The term ids `text` links to.
pub fn links(text: &str) -> Vec<&str> {
    segments(text)
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Link { term, .. } => Some(term),
            Segment::Text(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_split_with_and_without_shown_words() {
        assert_eq!(
            segments("Make consumers [[idempotency|idempotent]]; see [[rpo]]."),
            [
                Segment::Text("Make consumers "),
                Segment::Link {
                    term: "idempotency",
                    shown: "idempotent"
                },
                Segment::Text("; see "),
                Segment::Link {
                    term: "rpo",
                    shown: "rpo"
                },
                Segment::Text("."),
            ]
        );
        assert_eq!(plain("a [[x|b]] c [[d]]"), "a b c d");
        assert_eq!(links("a [[x|b]] c [[d]]"), ["x", "d"]);
    }

    #[test]
    fn an_unclosed_link_is_plain_text() {
        assert_eq!(segments("a [[b c"), [Segment::Text("a [[b c")]);
        assert_eq!(segments(""), []);
    }
}
