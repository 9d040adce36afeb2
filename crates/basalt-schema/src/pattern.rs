//! Random strings from the tiny regex subset PocketBase uses in `autogeneratePattern`:
//! a sequence of literal characters and `[...]` classes with ranges, each with an
//! optional `{n}` repetition (e.g. `[a-z0-9]{15}`, `[a-zA-Z0-9]{50}`); and matching of
//! field patterns with each compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rand::Rng;
use regex::Regex;

/// Distinct patterns kept compiled (of each kind).
const MAX_COMPILED: usize = 256;

/// What a pattern compiles to, kept per pattern text: patterns come from collection
/// definitions, so they are few, and compiling one costs far more than using it.
struct Compiled<T>(OnceLock<Mutex<HashMap<String, Option<Arc<T>>>>>);

impl<T> Compiled<T> {
    const fn new() -> Self {
        Self(OnceLock::new())
    }

    fn get(&self, pattern: &str, compile: impl FnOnce(&str) -> Option<T>) -> Option<Arc<T>> {
        let cache = self.0.get_or_init(Mutex::default);
        if let Some(hit) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
            return hit;
        }
        let compiled = compile(pattern).map(Arc::new);
        if let Ok(mut c) = cache.lock() {
            if c.len() >= MAX_COMPILED {
                c.clear();
            }
            c.insert(pattern.to_string(), compiled.clone());
        }
        compiled
    }
}

/// Whether `text` matches the field pattern `pattern` (an invalid pattern matches nothing).
/// Measured: compiling the `id` pattern was a third of a record update's instructions, and
/// matching through a cloned `Regex` (a fresh cache pool each time) most of the rest; the
/// shared `Arc<Regex>` reuses its match caches.
pub fn matches(pattern: &str, text: &str) -> bool {
    static REGEXES: Compiled<Regex> = Compiled::new();
    REGEXES
        .get(pattern, |p| Regex::new(p).ok())
        .is_some_and(|re| re.is_match(text))
}

/// A generator pattern parsed: each position's alphabet and how many times it repeats.
type Segments = Vec<(Vec<char>, usize)>;

/// Generates a string for `pattern`; `None` when the pattern is outside the subset.
pub fn generate(pattern: &str) -> Option<String> {
    static PARSED: Compiled<Segments> = Compiled::new();
    let segments = PARSED.get(pattern, parse)?;
    let mut rng = rand::rng();
    let mut out = String::with_capacity(segments.iter().map(|(_, n)| n).sum());
    for (alphabet, count) in segments.iter() {
        for _ in 0..*count {
            out.push(alphabet[rng.random_range(0..alphabet.len())]);
        }
    }
    Some(out)
}

fn parse(pattern: &str) -> Option<Segments> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let alphabet: Vec<char> = if chars[i] == '[' {
            let end = chars[i..].iter().position(|&c| c == ']')? + i;
            let class = &chars[i + 1..end];
            i = end + 1;
            let mut set = Vec::new();
            let mut j = 0;
            while j < class.len() {
                if j + 2 < class.len() && class[j + 1] == '-' {
                    let (a, b) = (class[j] as u32, class[j + 2] as u32);
                    if a > b {
                        return None;
                    }
                    set.extend((a..=b).filter_map(char::from_u32));
                    j += 3;
                } else {
                    set.push(class[j]);
                    j += 1;
                }
            }
            set
        } else if "\\^$.|?*+(){}".contains(chars[i]) {
            return None;
        } else {
            i += 1;
            vec![chars[i - 1]]
        };
        if alphabet.is_empty() {
            return None;
        }
        let mut count = 1usize;
        if chars.get(i) == Some(&'{') {
            let end = chars[i..].iter().position(|&c| c == '}')? + i;
            count = chars[i + 1..end].iter().collect::<String>().parse().ok()?;
            i = end + 1;
        }
        if count > 10_000 {
            return None;
        }
        segments.push((alphabet, count));
    }
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_strings_match_their_pattern() {
        for pattern in ["[a-z0-9]{15}", "[a-zA-Z0-9]{50}", "ab[x]{3}", "[_]"] {
            let re = regex::Regex::new(&format!("^{pattern}$")).expect("valid regex");
            for _ in 0..50 {
                let s = generate(pattern).expect("supported");
                assert!(re.is_match(&s), "{s} !~ {pattern}");
            }
        }
        assert_eq!(generate("a+"), None);
        assert_eq!(generate("[z-a]"), None);
    }

    #[test]
    fn cached_patterns_match_like_fresh_ones() {
        for _ in 0..3 {
            assert!(matches("^[a-z0-9]+$", "abc123"));
            assert!(!matches("^[a-z0-9]+$", "ABC"));
            // An invalid pattern matches nothing, every time.
            assert!(!matches("([a-z", "abc"));
        }
    }
}
