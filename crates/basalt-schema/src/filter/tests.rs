//! Table tests of the filter language (input -> canonical form or error) and property
//! tests: no input panics; printed trees re-parse to themselves; params stay literals.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const CASES: &[(&str, &str)] = &[
    ("a = 1", "a = 1"),
    ("a != 'x'", "a != \"x\""),
    ("a > 1 && b < 2", "(a > 1 && b < 2)"),
    ("a >= 1 || b <= 2 && c = 3", "(a >= 1 || (b <= 2 && c = 3))"),
    ("(a = 1 || b = 2) && c = 3", "((a = 1 || b = 2) && c = 3)"),
    ("title ~ 'abc'", "title ~ \"abc\""),
    ("title !~ \"abc\"", "title !~ \"abc\""),
    ("tags ?= 'x'", "tags ?= \"x\""),
    ("tags ?!= 'x'", "tags ?!= \"x\""),
    ("n ?> 1", "n ?> 1"),
    ("n ?>= 1", "n ?>= 1"),
    (
        "strftime('%Y', created, '+1 day') = '2024'",
        "strftime(\"%Y\", created, \"+1 day\") = \"2024\"",
    ),
    ("strftime('%Y') = '2024'", "strftime(\"%Y\") = \"2024\""),
    (
        "strftime('%Y', @now) = strftime('%Y',created)",
        "strftime(\"%Y\", @now) = strftime(\"%Y\", created)",
    ),
    (
        "geoDistance(loc.lon, loc.lat, -0.12, 51.5) < 25",
        "geoDistance(loc.lon, loc.lat, -0.12, 51.5) < 25",
    ),
    (
        "geoDistance(a, b, null, 1) > 0",
        "geoDistance(a, b, null, 1) > 0",
    ),
    ("n ?< 1", "n ?< 1"),
    ("n ?<= 1", "n ?<= 1"),
    ("t ?~ 'a'", "t ?~ \"a\""),
    ("t ?!~ 'a'", "t ?!~ \"a\""),
    ("a = true", "a = true"),
    ("a = false", "a = false"),
    ("a = null", "a = null"),
    ("a = -1.5", "a = -1.5"),
    ("a = .5", "a = 0.5"),
    ("'it\\'s' = a", "\"it's\" = a"),
    ("created > @now", "created > @now"),
    (
        "created >= @todayStart && created <= @todayEnd",
        "(created >= @todayStart && created <= @todayEnd)",
    ),
    ("created < @yearEnd", "created < @yearEnd"),
    ("author.name = 'x'", "author.name = \"x\""),
    (
        "comments_via_post.title ?= 'x'",
        "comments_via_post.title ?= \"x\"",
    ),
    ("data.a.b = 1", "data.a.b = 1"),
    ("tags.0 = 'a'", "tags.0 = \"a\""),
    ("@request.auth.id != ''", "@request.auth.id != \"\""),
    (
        "@request.body.title:isset = true",
        "@request.body.title:isset = true",
    ),
    (
        "@request.data.title:changed = false",
        "@request.body.title:changed = false",
    ),
    ("@request.query.x = 'y'", "@request.query.x = \"y\""),
    (
        "@request.headers.x_token = 'y'",
        "@request.headers.x_token = \"y\"",
    ),
    ("@request.method = 'GET'", "@request.method = \"GET\""),
    (
        "@request.context != 'oauth2'",
        "@request.context != \"oauth2\"",
    ),
    (
        "@collection.users.email = 'a'",
        "@collection.users.email = \"a\"",
    ),
    (
        "@collection.users:u.email = 'a'",
        "@collection.users:u.email = \"a\"",
    ),
    (
        "@collection.users:u.email:lower = 'a'",
        "@collection.users:u.email:lower = \"a\"",
    ),
    ("tags:length > 2", "tags:length > 2"),
    ("tags:each ~ 'a'", "tags:each ~ \"a\""),
    ("title:lower = 'a'", "title:lower = \"a\""),
    ("a = 1 // trailing comment", "a = 1"),
    ("a = 1 // one\n && b = 2", "(a = 1 && b = 2)"),
    ("\n a\t=\n1 ", "a = 1"),
    ("a=1&&b=2", "(a = 1 && b = 2)"),
    ("((a = 1))", "a = 1"),
];

const ERRORS: &[&str] = &[
    "",
    "   ",
    "a",
    "a =",
    "= 1",
    "a == 1",
    "a = 1 &&",
    "(a = 1",
    "a = 1)",
    "a = 'unterminated",
    "a ! 1",
    "a = 1 & b = 2",
    "title:isset = true",
    "title:unknown = 1",
    "@request = 1",
    "@request.auth = 1",
    "@collection.users = 1",
    "@unknown.x = 1",
    "a.b..c = 1",
    "a = {:missing}",
    "a = 1 b = 2",
    "a = $1",
    "a = 1; DROP TABLE x",
    // Functions: unknown names, arity, argument kinds, nesting (PocketBase's 400s).
    "foo(a) = 1",
    "strftime() = 1",
    "strftime(created, '%Y') = 1",
    "strftime('%Y', 1) = 1",
    "strftime('%Y', created, 1) = 1",
    "strftime('%Y', created = 1",
    "strftime('%Y',, created) = 1",
    "strftime('%Y', created,) = 1",
    "geoDistance(1, 2, 3) < 1",
    "geoDistance(1, 2, 3, 4, 5) < 1",
    "geoDistance(a, b, 'x', 0) < 1",
    "geoDistance(a, b, true, 0) < 1",
    "strftime('%Y', geoDistance(1, 1, 1, 1)) = 1",
    "geoDistance(strftime('%s'), 1, 1, 1) < 1",
    "(strftime('%Y')) = 1",
    "a, b = 1",
];

#[test]
fn valid_filters_parse_to_their_canonical_form() {
    for (input, want) in CASES {
        let got = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(
            got.to_string().trim_matches(|c| c == '(' || c == ')'),
            want.trim_matches(|c| c == '(' || c == ')'),
            "{input:?}"
        );
        assert_eq!(
            parse(&got.to_string()).ok(),
            Some(got),
            "{input:?} re-parses"
        );
    }
}

#[test]
fn oversized_filters_are_errors() {
    let ok = vec!["a = 1"; 200].join(" || ");
    assert!(parse(&ok).is_ok());
    let too_many = vec!["a = 1"; 201].join(" || ");
    assert!(parse(&too_many).is_err());
    let deep = format!("{}a = 1{}", "(".repeat(65), ")".repeat(65));
    assert!(parse(&deep).is_err());
}

#[test]
fn malformed_filters_are_errors() {
    for input in ERRORS {
        assert!(parse(input).is_err(), "{input:?} should fail");
    }
}

#[test]
fn placeholders_become_literals_never_syntax() {
    let params = json!({"v": "x' OR 1=1 --", "n": 5, "b": true, "z": null, "arr": [1, 2]});
    let params = params.as_object().cloned().unwrap_or_default();
    let e = parse_with_params(
        "a = {:v} && b = {:n} && c = {:b} && d = {:z} && e = {:arr}",
        &params,
    )
    .expect("parses");
    assert_eq!(
        e.to_string(),
        "((((a = \"x' OR 1=1 --\" && b = 5) && c = true) && d = null) && e = \"[1,2]\")"
    );
}

#[test]
fn sort_expand_and_fields_parse() {
    let s = parse_sort("-created,+title,author.name,@random").expect("sort");
    assert_eq!(s.len(), 4);
    assert!(s[0].descending && !s[1].descending);
    assert!(parse_sort("title; DROP TABLE x").is_err());
    assert!(parse_sort("(select 1)").is_err());
    assert_eq!(
        parse_expand("author,comments_via_post.author")
            .expect("expand")
            .len(),
        2
    );
    assert!(parse_expand("a.b.c.d.e.f.g").is_err());
    let f = parse_fields("id,title:excerpt(10,true),expand.author.*").expect("fields");
    assert_eq!(f[1].excerpt, Some((10, true)));
    assert_eq!(f[2].path, vec!["expand", "author", "*"]);
    assert!(parse_fields("title:excerpt(x)").is_err());
    assert!(parse_fields("ti tle").is_err());
    assert!(parse_sort(&vec!["a"; 65].join(",")).is_err());
    assert!(parse_expand(&vec!["a"; 65].join(",")).is_err());
    assert!(parse_fields(&vec!["a"; 65].join(",")).is_err());
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}(\\.[a-z][a-z0-9_]{0,6}){0,2}",
        "@request\\.auth\\.[a-z]{1,5}",
        "@request\\.body\\.[a-z]{1,5}(:isset|:changed)?",
        "@collection\\.[a-z]{1,5}\\.[a-z]{1,5}",
    ]
}

fn arb_operand() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_path(),
        "'[^'\\\\]{0,8}'",
        "-?[0-9]{1,4}",
        Just("null".to_string()),
        Just("true".to_string()),
        Just("@now".to_string()),
        arb_path().prop_map(|p| format!("strftime('%Y-%m', {p}, '+1 day')")),
        (arb_path(), -90i32..90)
            .prop_map(|(p, n)| format!("geoDistance({p}.lon, {p}.lat, {n}, 0.5)")),
    ]
}

fn arb_expr() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![
        "=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~",
        "?!~",
    ]);
    let leaf = (arb_operand(), op, arb_operand()).prop_map(|(a, o, b)| format!("{a} {o} {b}"));
    leaf.prop_recursive(4, 16, 2, |inner| {
        (inner.clone(), prop::bool::ANY, inner)
            .prop_map(|(a, and, b)| format!("({a} {} {b})", if and { "&&" } else { "||" }))
    })
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,64}") {
        let _ = parse(&s);
    }

    #[test]
    fn token_soup_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "&&", "||", "=", "?=", "!~", "'x'", "\"y", "1", "-", ".", "a.b", "@request.auth.id",
        "@collection.", ":each", ":isset", "{:p}", "//", "\n", "null", "@now", "\\",
        "strftime(", "geoDistance(", ",", "'%Y'",
    ]), 0..24)) {
        let _ = parse(&parts.join(" "));
        let _ = parse(&parts.join(""));
    }

    #[test]
    fn printed_trees_reparse_identically(src in arb_expr()) {
        if let Ok(e) = parse(&src) {
            prop_assert_eq!(parse(&e.to_string()).ok(), Some(e));
        }
    }

    #[test]
    fn any_param_value_stays_a_literal(v in "\\PC{0,32}") {
        let mut params = serde_json::Map::new();
        params.insert("v".into(), serde_json::Value::String(v.clone()));
        let e = parse_with_params("a = {:v}", &params);
        prop_assert_eq!(e.ok(), Some(Expr::Compare {
            left: Operand::Path(Path { root: PathRoot::Record, segments: vec!["a".into()], modifier: None }),
            op: CompareOp::Eq,
            right: Operand::Literal(Literal::String(v)),
        }));
    }
}
