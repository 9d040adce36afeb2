//! Random strings from the tiny regex subset PocketBase uses in `autogeneratePattern`:
//! a sequence of literal characters and `[...]` classes with ranges, each with an
//! optional `{n}` repetition (e.g. `[a-z0-9]{15}`, `[a-zA-Z0-9]{50}`).

use rand::Rng;

/// Generates a string for `pattern`; `None` when the pattern is outside the subset.
pub fn generate(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut rng = rand::rng();
    let mut out = String::new();
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
        for _ in 0..count {
            out.push(alphabet[rng.random_range(0..alphabet.len())]);
        }
    }
    Some(out)
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
}
