//! `fields`: keeps only the selected keys of a response (`*`, nested `expand.author.name`),
//! with `:excerpt(max, withEllipsis)` turning HTML text into a short plain excerpt.

use basalt_schema::filter::FieldSelector;
use serde_json::{Map, Value};

/// A remaining path below the current level, with its excerpt option.
type Selector<'a> = (&'a [String], Option<(usize, bool)>);

pub(crate) fn project(v: &Value, selectors: &[FieldSelector]) -> Value {
    let paths: Vec<Selector> = selectors
        .iter()
        .map(|s| (s.path.as_slice(), s.excerpt))
        .collect();
    project_level(v, &paths)
}

fn project_level(v: &Value, paths: &[Selector]) -> Value {
    match v {
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| project_level(i, paths)).collect())
        }
        Value::Object(obj) => {
            let mut out = Map::new();
            for (key, value) in obj {
                let mut nested: Vec<Selector> = vec![];
                let mut keep_whole = None;
                for (path, excerpt) in paths {
                    let Some((first, rest)) = path.split_first() else {
                        continue;
                    };
                    if first != "*" && first != key {
                        continue;
                    }
                    if rest.is_empty() {
                        // `*` alone does not pull in `expand`; name it to keep it.
                        if first == "*" && key == "expand" {
                            continue;
                        }
                        keep_whole = Some(*excerpt);
                    } else {
                        nested.push((rest, *excerpt));
                    }
                }
                if let Some(excerpt) = keep_whole {
                    out.insert(
                        key.clone(),
                        match (excerpt, value) {
                            (Some((max, ellipsis)), Value::String(s)) => {
                                Value::String(excerpt_of(s, max, ellipsis))
                            }
                            _ => value.clone(),
                        },
                    );
                } else if !nested.is_empty() {
                    out.insert(key.clone(), project_level(value, &nested));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Plain text of `html` (tags dropped, whitespace collapsed) cut to `max` characters.
fn excerpt_of(html: &str, max: usize, ellipsis: bool) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(max).collect();
    cut = cut.trim_end().to_string();
    if ellipsis {
        cut.push_str("...");
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::filter::parse_fields;
    use serde_json::json;

    #[test]
    fn projection_keeps_selected_paths() {
        let v = json!({"id": "1", "title": "<p>Hello <b>world</b> again</p>", "n": 2,
            "expand": {"author": {"id": "a", "name": "x", "email": "e"}}});
        let got = project(
            &v,
            &parse_fields("id,title:excerpt(11,true),expand.author.name").expect("fields"),
        );
        assert_eq!(
            got,
            json!({"id": "1", "title": "Hello world...", "expand": {"author": {"name": "x"}}})
        );
        let got = project(&v, &parse_fields("*").expect("fields"));
        assert!(got.get("expand").is_none() && got.get("n").is_some());
    }
}
