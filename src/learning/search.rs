//! Finding lessons by what a learner types: a pattern's name, an AWS service, or a
//! problem in their own words ("my database is too slow", "traffic spikes"). Pure text
//! matching over each lesson's title, summary, id and the content file's `search_terms`.

/// Words that say nothing about which lesson is meant.
const FILLER: &[&str] = &[
    "a", "an", "and", "are", "at", "be", "by", "do", "does", "for", "from", "get", "gets", "how",
    "i", "in", "is", "it", "its", "keep", "keeps", "me", "my", "of", "on", "or", "our", "so",
    "the", "to", "too", "very", "we", "what", "when", "with", "why", "you", "your",
];

/// Lowercase words of `text`, split at anything that is not a letter or digit, with a
/// plural or verb "s" dropped ("spikes" → "spike"), so both sides compare the same way.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let word = word.to_lowercase();
            match word.strip_suffix('s') {
                Some(stem) if stem.len() >= 3 && !stem.ends_with(['s', 'u', 'i']) => {
                    stem.to_owned()
                }
                _ => word,
            }
        })
}

/// The meaningful words of a query (filler dropped).
pub fn query_words(query: &str) -> Vec<String> {
    words(query)
        .filter(|word| !FILLER.contains(&word.as_str()))
        .collect()
}

/// True when every meaningful word of `query` starts some word of `haystack` (so "cach"
/// finds "caching" while typing). An empty query matches everything.
pub fn matches(query: &[String], haystack: &[&str]) -> bool {
    let candidates: Vec<String> = haystack.iter().flat_map(|text| words(text)).collect();
    query.iter().all(|wanted| {
        candidates
            .iter()
            .any(|word| word.starts_with(wanted.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELING: &[&str] = &[
        "Queue-based load leveling",
        "A queue absorbs a spike.",
        "Amazon SQS",
        "traffic spikes overwhelm my workers",
    ];

    #[test]
    fn problems_in_own_words_find_the_lesson() {
        assert!(matches(&query_words("Traffic spikes!"), LEVELING));
        assert!(matches(&query_words("my workers are overwhelm"), LEVELING));
        assert!(
            !matches(&query_words("workers crash"), LEVELING),
            "every word must match"
        );
        assert!(matches(&query_words("sqs"), LEVELING));
        assert!(
            matches(&query_words("lev"), LEVELING),
            "prefix while typing"
        );
        assert!(!matches(&query_words("circuit breaker"), LEVELING));
    }

    #[test]
    fn filler_alone_or_nothing_matches_everything() {
        assert!(query_words("  my the  ").is_empty());
        assert!(matches(&query_words(""), LEVELING));
    }

    #[test]
    fn stems_compare_alike() {
        assert_eq!(
            query_words("Retries, bulkheads & SLAs"),
            ["retrie", "bulkhead", "sla"]
        );
        assert_eq!(
            query_words("status class Redis"),
            ["status", "class", "redis"]
        );
    }
}
