//! Issue 15, against the real binary: a client-written expression (a list filter or sort, a
//! batch sub-request's query, a realtime subscription's filter over SSE and WebSocket)
//! must not tell a reader anything that the rules, hidden fields or `emailVisibility` hide
//! from that reader.
//!
//! Each oracle is a pair of expressions, one TRUE and one FALSE about hidden data. A
//! control (a superuser, or the expression as an admin-written rule) must tell them apart,
//! which proves the pair is well-formed and would leak if nothing restricted it; then every
//! restricted reader must get the same answer for both (same status, same rows in the same
//! order), so a refusal passes only when both halves are refused alike.

use std::collections::BTreeMap;
use std::time::Duration;

use basalt_testkit::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const WAIT: Duration = Duration::from_secs(10);

/// Who runs a query. Dave is an ordinary user who authored nothing and sees only himself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reader {
    Anon,
    Dave,
    Alice,
    Bob,
    Member1,
    Superuser,
}

use Reader::{Alice, Anon, Bob, Dave, Member1, Superuser};

/// What proves that a pair tells TRUE from FALSE when nothing restricts it.
#[derive(Clone, Copy, Debug)]
enum Control {
    /// A superuser's list (or subscription) tells them apart.
    Superuser,
    /// The pair as the list rule of the `probe` collection, read by this reader: admin
    /// rules keep full access, so the TRUE rule shows the probe record and the FALSE one
    /// does not. For `@request.auth.*` paths a superuser's record does not have.
    Rule(Reader),
}

/// One oracle: `param` (`filter` or `sort`) set to `yes` or to `no`, with `also` (another
/// query parameter, e.g. a filter beside a sort) unchanged.
struct Pair {
    what: &'static str,
    collection: &'static str,
    param: &'static str,
    yes: &'static str,
    no: &'static str,
    also: Option<(&'static str, &'static str)>,
    readers: &'static [Reader],
    control: Control,
}

const fn filter(
    what: &'static str,
    collection: &'static str,
    yes: &'static str,
    no: &'static str,
    readers: &'static [Reader],
) -> Pair {
    Pair {
        what,
        collection,
        param: "filter",
        yes,
        no,
        also: None,
        readers,
        control: Control::Superuser,
    }
}

const fn sort(
    what: &'static str,
    collection: &'static str,
    yes: &'static str,
    no: &'static str,
    also: Option<(&'static str, &'static str)>,
    readers: &'static [Reader],
) -> Pair {
    Pair {
        what,
        collection,
        param: "sort",
        yes,
        no,
        also,
        readers,
        control: Control::Superuser,
    }
}

const AD: &[Reader] = &[Anon, Dave];
const ADA: &[Reader] = &[Anon, Dave, Alice];
const ADB: &[Reader] = &[Anon, Dave, Bob];

/// The filter oracles. See `world` for the data they are TRUE or FALSE about.
const FILTERS: &[Pair] = &[
    // @collection: a null rule, a rule hiding the row, hidden rows and hidden fields.
    filter(
        "@collection, null rule",
        "posts",
        "@collection.vault.code ?= 's3cr3t'",
        "@collection.vault.code ?= 'nope'",
        AD,
    ),
    filter(
        "@collection, hiding rule",
        "posts",
        "@collection.hiding.code ?= 'h1dd3n'",
        "@collection.hiding.code ?= 'nope'",
        AD,
    ),
    filter(
        "@collection._superusers email",
        "posts",
        "@collection._superusers.email ?~ 'root%'",
        "@collection._superusers.email ?~ 'zzz%'",
        AD,
    ),
    filter(
        "@collection._superusers password",
        "posts",
        "@collection._superusers.password ?~ '$argon2id$%'",
        "@collection._superusers.password ?~ 'zzz%'",
        AD,
    ),
    filter(
        "@collection users, hidden rows",
        "posts",
        "@collection.users.email ?~ 'alice%'",
        "@collection.users.email ?~ 'zzz%'",
        AD,
    ),
    filter(
        "@collection users, alias",
        "posts",
        "@collection.users:u.name ?= 'Alice'",
        "@collection.users:u.name ?= 'Zed'",
        AD,
    ),
    filter(
        "@collection users, hidden json",
        "posts",
        "@collection.users.profile.ssn ?= '111'",
        "@collection.users.profile.ssn ?= '999'",
        AD,
    ),
    // Relation traversal into a collection whose rule hides the row.
    filter(
        "relation ~",
        "posts",
        "author.email ~ 'alice%'",
        "author.email ~ 'zzz%'",
        ADB,
    ),
    filter(
        "relation =",
        "posts",
        "author.email = 'alice@example.com'",
        "author.email = 'zzz@example.com'",
        ADB,
    ),
    filter(
        "relation, visible field",
        "posts",
        "author.name = 'Alice'",
        "author.name = 'Zed'",
        ADB,
    ),
    filter(
        "relation :lower",
        "posts",
        "author.email:lower ~ 'alice%'",
        "author.email:lower ~ 'zzz%'",
        ADB,
    ),
    filter(
        "relation :length",
        "posts",
        "author.roles:length = 2",
        "author.roles:length = 3",
        ADB,
    ),
    filter(
        "relation, multi select ~",
        "posts",
        "author.roles ~ 'b'",
        "author.roles ~ 'z'",
        ADB,
    ),
    filter(
        "relation :each",
        "posts",
        "author.roles:each != 'c'",
        "author.roles:each != 'a'",
        AD,
    ),
    filter(
        "relation :each, any",
        "posts",
        "author.roles:each ?= 'b'",
        "author.roles:each ?= 'z'",
        AD,
    ),
    filter(
        "relation, hidden json path",
        "posts",
        "author.profile.ssn = '111'",
        "author.profile.ssn = '999'",
        ADB,
    ),
    filter(
        "relation, password",
        "posts",
        "author.password ~ '$argon2id$%'",
        "author.password ~ 'zzz%'",
        ADB,
    ),
    filter(
        "relation, tokenKey",
        "posts",
        "author.tokenKey != ''",
        "author.tokenKey = ''",
        ADB,
    ),
    filter(
        "relation, null rule",
        "posts",
        "vault.code = 's3cr3t'",
        "vault.code = 'nope'",
        AD,
    ),
    filter(
        "relation, hiding rule",
        "posts",
        "hid.code = 'h1dd3n'",
        "hid.code = 'nope'",
        ADB,
    ),
    // Multi relations.
    filter(
        "multi relation ?~",
        "posts",
        "editors.email ?~ 'carol%'",
        "editors.email ?~ 'zzz%'",
        AD,
    ),
    filter(
        "multi relation ?=",
        "posts",
        "editors.name ?= 'Carol'",
        "editors.name ?= 'Zed'",
        AD,
    ),
    filter(
        "multi relation :each",
        "posts",
        "editors.name:each ~ 'o'",
        "editors.name:each ~ 'q'",
        AD,
    ),
    filter(
        "multi relation, hidden json",
        "posts",
        "editors.profile.ssn ?= '333'",
        "editors.profile.ssn ?= '999'",
        AD,
    ),
    // Back-relations: through a hidden row, into a null rule, into hidden rows.
    filter(
        "relation then back-relation",
        "posts",
        "author.posts_via_editors.title ?~ 'private%'",
        "author.posts_via_editors.title ?~ 'zzz%'",
        ADA,
    ),
    filter(
        "relation then back-relation :length",
        "posts",
        "author.posts_via_editors:length = 1",
        "author.posts_via_editors:length = 5",
        ADA,
    ),
    filter(
        "multi relation then back-relation",
        "posts",
        "editors.posts_via_author.title ?~ 'private%'",
        "editors.posts_via_author.title ?~ 'zzz%'",
        AD,
    ),
    filter(
        "back-relation, null rule",
        "posts",
        "ledger_via_post.note ?= 'n0te'",
        "ledger_via_post.note ?= 'nope'",
        ADB,
    ),
    filter(
        "back-relation into hidden rows",
        "users",
        "posts_via_editors.title ?~ 'private%'",
        "posts_via_editors.title ?~ 'zzz%'",
        ADA,
    ),
    // The reader's own record: hidden fields stay hidden.
    filter(
        "own hidden json",
        "users",
        "profile.ssn = '444'",
        "profile.ssn = '999'",
        &[Dave],
    ),
    filter(
        "own password",
        "users",
        "password ~ '$argon2id$%'",
        "password ~ 'zzz%'",
        &[Dave],
    ),
    filter(
        "own tokenKey",
        "users",
        "tokenKey != ''",
        "tokenKey = ''",
        &[Dave],
    ),
    // emailVisibility: on the root collection (open rule) and through a relation.
    filter(
        "email, hidden by emailVisibility",
        "members",
        "email ~ 'member1%'",
        "email ~ 'zzz%'",
        AD,
    ),
    filter(
        "email =, hidden by emailVisibility",
        "members",
        "email = 'member1@example.com'",
        "email = 'zzz@example.com'",
        AD,
    ),
    filter(
        "email :lower, hidden by emailVisibility",
        "members",
        "email:lower ~ 'member1%'",
        "email:lower ~ 'zzz%'",
        AD,
    ),
    filter(
        "auth collection password",
        "members",
        "password ~ '$argon2id$%'",
        "password ~ 'zzz%'",
        AD,
    ),
    filter(
        "auth collection tokenKey",
        "members",
        "tokenKey != ''",
        "tokenKey = ''",
        AD,
    ),
    filter(
        "relation email, hidden by emailVisibility",
        "posts",
        "member.email ~ 'member1%'",
        "member.email ~ 'zzz%'",
        AD,
    ),
    // @request.auth.*: the caller's hidden fields and other users' records.
    filter(
        "@request.auth.password",
        "posts",
        "@request.auth.password ~ '$argon2id$%'",
        "@request.auth.password ~ 'zzz%'",
        &[Dave],
    ),
    filter(
        "@request.auth.tokenKey",
        "posts",
        "@request.auth.tokenKey != ''",
        "@request.auth.tokenKey = ''",
        &[Dave],
    ),
    Pair {
        control: Control::Rule(Dave),
        ..filter(
            "@request.auth hidden json",
            "posts",
            "@request.auth.profile.ssn = '444'",
            "@request.auth.profile.ssn = '999'",
            &[Dave],
        )
    },
    Pair {
        control: Control::Rule(Alice),
        ..filter(
            "@request.auth back-relation",
            "posts",
            "@request.auth.posts_via_editors.title ?~ 'private%'",
            "@request.auth.posts_via_editors.title ?~ 'zzz%'",
            &[Alice],
        )
    },
];

/// Sorts: ascending and descending by a hidden value must give one order (the rowid
/// tiebreak) or be refused alike. The readers see none of the sort keys.
const SORTS: &[Pair] = &[
    sort(
        "sort by relation email",
        "posts",
        "author.email",
        "-author.email",
        None,
        AD,
    ),
    sort(
        "sort by relation name",
        "posts",
        "author.name",
        "-author.name",
        None,
        AD,
    ),
    sort(
        "sort by relation hidden json",
        "posts",
        "author.profile.ssn",
        "-author.profile.ssn",
        None,
        AD,
    ),
    sort(
        "sort by relation password",
        "posts",
        "author.password",
        "-author.password",
        None,
        AD,
    ),
    sort(
        "sort by relation, null rule",
        "posts",
        "vault.code",
        "-vault.code",
        None,
        AD,
    ),
    sort(
        "sort by relation, hiding rule",
        "posts",
        "hid.code",
        "-hid.code",
        None,
        AD,
    ),
    sort(
        "sort by hidden email",
        "members",
        "email",
        "-email",
        Some(("filter", "emailVisibility = false")),
        AD,
    ),
    sort(
        "sort by relation hidden email",
        "posts",
        "member.email",
        "-member.email",
        Some(("filter", "member.emailVisibility = false")),
        AD,
    ),
];

struct World {
    s: TestServer,
    tokens: BTreeMap<Reader, String>,
    /// Record ids by title (posts, drafts) or name (users, members).
    ids: BTreeMap<String, String>,
}

impl World {
    fn token(&self, r: Reader) -> Option<&str> {
        self.tokens.get(&r).map(String::as_str)
    }

    fn id(&self, label: &str) -> String {
        self.ids.get(label).cloned().unwrap_or_default()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        who: Reader,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.s.call(method, path, self.token(who), body).await
    }

    async fn create(&self, collection: &str, body: Value) -> String {
        let (st, r) = self
            .call(
                "POST",
                &format!("/api/collections/{collection}/records"),
                Superuser,
                Some(body),
            )
            .await;
        assert_eq!(st, 200, "{collection}: {r}");
        r["id"].as_str().unwrap_or_default().to_string()
    }

    async fn collection(&self, doc: Value) -> String {
        let (st, c) = self
            .call("POST", "/api/collections", Superuser, Some(doc))
            .await;
        assert_eq!(st, 200, "{c}");
        c["id"].as_str().unwrap_or_default().to_string()
    }

    /// A list request's answer: status, and for a 200 the rows (labelled) and total.
    async fn list(&self, who: Reader, collection: &str, query: &[(&str, &str)]) -> Answer {
        let mut req = self
            .s
            .http
            .get(
                self.s
                    .url(&format!("/api/collections/{collection}/records")),
            )
            .query(&[("perPage", "100")])
            .query(query);
        if let Some(t) = self.token(who) {
            req = req.header("Authorization", t);
        }
        let res = req.send().await.expect("list request");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Answer {
                status,
                rows: vec![],
                total: Value::Null,
            };
        }
        Answer {
            status,
            rows: labels(&body["items"]),
            total: body["totalItems"].clone(),
        }
    }

    async fn set_probe_rule(&self, rule: &str) {
        let (st, c) = self
            .call(
                "PATCH",
                "/api/collections/probe",
                Superuser,
                Some(json!({"listRule": rule})),
            )
            .await;
        assert_eq!(st, 200, "probe rule {rule:?}: {c}");
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    rows: Vec<String>,
    total: Value,
}

fn labels(items: &Value) -> Vec<String> {
    items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    r["title"]
                        .as_str()
                        .or(r["name"].as_str())
                        .or(r["id"].as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The schema and data every oracle is about:
///
/// - `users` (rules `id = @request.auth.id`, so nobody sees another user), with a hidden
///   json `profile` and a multi select `roles`: alice (email hidden, ssn 111, roles a b),
///   bob (email visible, ssn 222, roles a), carol (hidden, 333, none), dave (hidden, 444, c).
/// - `members`, an auth collection anyone may list: member1 and member3 hide their email,
///   member2 shows it.
/// - `vault` (null rules) and `ledger` (null rules, `post` -> posts), `hiding` (rule
///   `owner = @request.auth.id`, owned by alice), `openc` (open).
/// - `posts` (rule `private = false || author = @request.auth.id`): "hello" (author alice,
///   editors bob and carol, vault, hid, op, member1; a ledger row points at it), "private
///   draft" (bob's, private, editor alice), "carol post" (member3), "bob public" (member2).
/// - `drafts` ("alice draft", "bob draft", by their authors) and `probe` (one record): their
///   list rules are set by the tests of admin rules and by the `Control::Rule` checks.
async fn world() -> World {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let mut w = World {
        s,
        tokens: BTreeMap::from([(Superuser, su)]),
        ids: BTreeMap::new(),
    };

    let (st, users) = w
        .call("GET", "/api/collections/users", Superuser, None)
        .await;
    assert_eq!(st, 200, "{users}");
    let mut fields = users["fields"].as_array().cloned().unwrap_or_default();
    fields.push(json!({"name": "profile", "type": "json", "hidden": true}));
    fields.push(
        json!({"name": "roles", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3}),
    );
    let (st, c) = w
        .call(
            "PATCH",
            "/api/collections/users",
            Superuser,
            Some(json!({"fields": fields,
            "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let users_id = users["id"].as_str().unwrap_or_default().to_string();

    let members = w
        .collection(
            json!({"name": "members", "type": "auth", "listRule": "", "viewRule": "",
            "fields": [{"name": "name", "type": "text"}]}),
        )
        .await;
    let vault = w
        .collection(json!({"name": "vault", "listRule": null, "viewRule": null,
            "fields": [{"name": "code", "type": "text"}]}))
        .await;
    let hiding = w
        .collection(json!({"name": "hiding", "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
            "fields": [{"name": "code", "type": "text"},
                       {"name": "owner", "type": "relation", "collectionId": users_id, "maxSelect": 1}]}))
        .await;
    let openc = w
        .collection(json!({"name": "openc", "listRule": "", "viewRule": "",
            "fields": [{"name": "code", "type": "text"}]}))
        .await;
    let rule = "private = false || author = @request.auth.id";
    let posts = w
        .collection(json!({"name": "posts", "listRule": rule, "viewRule": rule,
            "updateRule": "@request.auth.id != ''",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "private", "type": "bool"},
                {"name": "author", "type": "relation", "collectionId": users_id, "maxSelect": 1},
                {"name": "editors", "type": "relation", "collectionId": users_id, "maxSelect": 5},
                {"name": "vault", "type": "relation", "collectionId": vault, "maxSelect": 1},
                {"name": "hid", "type": "relation", "collectionId": hiding, "maxSelect": 1},
                {"name": "op", "type": "relation", "collectionId": openc, "maxSelect": 1},
                {"name": "member", "type": "relation", "collectionId": members, "maxSelect": 1}]}))
        .await;
    w.collection(json!({"name": "ledger", "listRule": null, "viewRule": null,
        "fields": [{"name": "note", "type": "text"},
                   {"name": "post", "type": "relation", "collectionId": posts, "maxSelect": 1}]}))
        .await;
    w.collection(json!({"name": "drafts", "listRule": null, "viewRule": null,
        "fields": [{"name": "title", "type": "text"},
                   {"name": "author", "type": "relation", "collectionId": users_id, "maxSelect": 1}]}))
        .await;
    w.collection(
        json!({"name": "probe", "listRule": null, "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;

    for (reader, name, ssn, visible, roles) in [
        (Alice, "Alice", "111", false, json!(["a", "b"])),
        (Bob, "Bob", "222", true, json!(["a"])),
        (Anon, "Carol", "333", false, json!([])),
        (Dave, "Dave", "444", false, json!(["c"])),
    ] {
        let email = format!("{}@example.com", name.to_lowercase());
        let id = w
            .create("users", json!({"email": email, "password": "User-pass-123", "passwordConfirm": "User-pass-123",
                "name": name, "emailVisibility": visible, "profile": {"ssn": ssn}, "roles": roles}))
            .await;
        w.ids.insert(name.into(), id);
        if reader != Anon {
            let t = w.s.token("users", &email, "User-pass-123").await;
            w.tokens.insert(reader, t);
        }
    }
    for (n, visible) in [(1, false), (2, true), (3, false)] {
        let email = format!("member{n}@example.com");
        let id = w
            .create("members", json!({"email": email, "password": "Member-pass-123",
                "passwordConfirm": "Member-pass-123", "name": format!("M{n}"), "emailVisibility": visible}))
            .await;
        w.ids.insert(format!("M{n}"), id);
    }
    let t =
        w.s.token("members", "member1@example.com", "Member-pass-123")
            .await;
    w.tokens.insert(Member1, t);

    let v = w.create("vault", json!({"code": "s3cr3t"})).await;
    let h = w
        .create("hiding", json!({"code": "h1dd3n", "owner": w.id("Alice")}))
        .await;
    let o = w.create("openc", json!({"code": "0p3n"})).await;
    w.ids.insert("vault".into(), v.clone());
    w.ids.insert("hid".into(), h.clone());
    w.ids.insert("op".into(), o.clone());
    let hello = w
        .create("posts", json!({"title": "hello", "author": w.id("Alice"), "editors": [w.id("Bob"), w.id("Carol")],
            "vault": v, "hid": h, "op": o, "member": w.id("M1")}))
        .await;
    w.ids.insert("hello".into(), hello.clone());
    for (title, body) in [
        (
            "private draft",
            json!({"private": true, "author": w.id("Bob"), "editors": [w.id("Alice")]}),
        ),
        (
            "carol post",
            json!({"author": w.id("Carol"), "member": w.id("M3")}),
        ),
        (
            "bob public",
            json!({"author": w.id("Bob"), "member": w.id("M2")}),
        ),
    ] {
        let mut body = body;
        body["title"] = json!(title);
        let id = w.create("posts", body).await;
        w.ids.insert(title.into(), id);
    }
    w.create("ledger", json!({"note": "n0te", "post": hello}))
        .await;
    for (title, author) in [("alice draft", "Alice"), ("bob draft", "Bob")] {
        let id = w
            .create("drafts", json!({"title": title, "author": w.id(author)}))
            .await;
        w.ids.insert(title.into(), id);
    }
    w.create("probe", json!({"title": "probe"})).await;
    w
}

/// Runs one pair's control and readers; appends what went wrong to `failures`.
async fn check(w: &World, p: &Pair, failures: &mut Vec<String>) {
    let query = |expr: &'static str| {
        let mut q = vec![(p.param, expr)];
        q.extend(p.also);
        q
    };
    match p.control {
        Control::Superuser => {
            let yes = w.list(Superuser, p.collection, &query(p.yes)).await;
            let no = w.list(Superuser, p.collection, &query(p.no)).await;
            if yes.status != 200 || no.status != 200 || yes == no {
                failures.push(format!(
                    "{}: the superuser control does not tell {:?} ({yes:?}) from {:?} ({no:?})",
                    p.what, p.yes, p.no
                ));
            }
        }
        Control::Rule(reader) => {
            let mut got = vec![];
            for rule in [p.yes, p.no] {
                w.set_probe_rule(rule).await;
                got.push(w.list(reader, "probe", &[]).await);
            }
            w.set_probe_rule("").await;
            if got[0].rows != ["probe"] || !got[1].rows.is_empty() || got[1].status != 200 {
                failures.push(format!(
                    "{}: as {reader:?}'s rule, {:?} -> {:?}, {:?} -> {:?} (want the probe, then nothing)",
                    p.what, p.yes, got[0], p.no, got[1]
                ));
            }
        }
    }
    for &r in p.readers {
        let yes = w.list(r, p.collection, &query(p.yes)).await;
        let no = w.list(r, p.collection, &query(p.no)).await;
        if yes.status >= 500 || no.status >= 500 {
            failures.push(format!(
                "{} as {r:?}: a server error: {yes:?} / {no:?}",
                p.what
            ));
        } else if yes != no {
            failures.push(format!(
                "{} as {r:?}: {}={:?} -> {yes:?} but {}={:?} -> {no:?}",
                p.what, p.param, p.yes, p.param, p.no
            ));
        }
    }
}

fn report(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} oracle(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn client_filters_cannot_read_what_rules_hide() {
    let w = world().await;
    let mut failures = vec![];
    for p in FILTERS {
        check(&w, p, &mut failures).await;
    }
    report(&failures);
}

#[tokio::test]
async fn sorts_cannot_order_by_what_rules_hide() {
    let w = world().await;
    let mut failures = vec![];
    for p in SORTS {
        check(&w, p, &mut failures).await;
    }
    report(&failures);
}

/// What readers may see keeps working, and admin rules keep reading hidden data.
#[tokio::test]
async fn what_a_reader_may_see_still_filters() {
    let w = world().await;
    let cases: &[(Reader, &str, &str, &[&str])] = &[
        (Anon, "posts", "op.code = '0p3n'", &["hello"]),
        (Anon, "posts", "editors:length = 2", &["hello"]),
        (Anon, "posts", "member.email ~ 'member2%'", &["bob public"]),
        (Anon, "posts", "member.name = 'M1'", &["hello"]),
        (Anon, "members", "email ~ 'member2%'", &["M2"]),
        (Alice, "posts", "author.name = 'Alice'", &["hello"]),
        (
            Bob,
            "posts",
            "author.name = 'Bob'",
            &["private draft", "bob public"],
        ),
        (
            Bob,
            "posts",
            "author.email ~ 'bob%'",
            &["private draft", "bob public"],
        ),
        (
            Alice,
            "users",
            "posts_via_author.title ?= 'hello'",
            &["Alice"],
        ),
        // The caller's own email counts even when emailVisibility hides it from others.
        (Alice, "posts", "author.email ~ 'alice%'", &["hello"]),
        (Member1, "members", "email ~ 'member1%'", &["M1"]),
        // (@collection and @request in a non-superuser's filter are refused with 403, as
        // PocketBase does: the oracle pairs check both halves are refused alike.)
        // Superusers are unrestricted.
        (
            Superuser,
            "posts",
            "author.profile.ssn = '111' && vault.code = 's3cr3t'",
            &["hello"],
        ),
        (
            Superuser,
            "posts",
            "@collection.vault.code ?= 's3cr3t' && title = 'hello'",
            &["hello"],
        ),
    ];
    let mut failures = vec![];
    for &(r, collection, f, want) in cases {
        let query: &[(&str, &str)] = if f.is_empty() { &[] } else { &[("filter", f)] };
        let got = w.list(r, collection, query).await;
        if got.status != 200 || got.rows != want {
            failures.push(format!(
                "{r:?} {collection} {f:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    report(&failures);
}

/// A rule written by the admin reads what it names, hidden data included, for any reader.
#[tokio::test]
async fn admin_rules_keep_full_access() {
    let w = world().await;
    let cases: &[(&str, &str, Reader, &[&str])] = &[
        ("drafts", "author.email ~ 'alice%'", Anon, &["alice draft"]),
        (
            "drafts",
            "author.profile.ssn = '111'",
            Anon,
            &["alice draft"],
        ),
        (
            "drafts",
            "author.password ~ '$argon2id$%' && author.name = 'Alice'",
            Dave,
            &["alice draft"],
        ),
        (
            "drafts",
            "author.posts_via_editors.title ?~ 'private%'",
            Anon,
            &["alice draft"],
        ),
        (
            "drafts",
            "@collection.vault.code ?= 's3cr3t' && author.name = 'Bob'",
            Anon,
            &["bob draft"],
        ),
        (
            "probe",
            "@collection.users.profile.ssn ?= '111'",
            Anon,
            &["probe"],
        ),
        (
            "probe",
            "@collection._superusers.email ?~ 'root%'",
            Anon,
            &["probe"],
        ),
        (
            "probe",
            "@request.auth.password ~ '$argon2id$%'",
            Dave,
            &["probe"],
        ),
        (
            "probe",
            "@request.auth.profile.ssn = '444'",
            Dave,
            &["probe"],
        ),
        (
            "probe",
            "@request.auth.posts_via_editors.title ?~ 'private%'",
            Alice,
            &["probe"],
        ),
    ];
    let mut failures = vec![];
    for &(collection, rule, r, want) in cases {
        let (st, c) = w
            .call(
                "PATCH",
                &format!("/api/collections/{collection}"),
                Superuser,
                Some(json!({"listRule": rule})),
            )
            .await;
        assert_eq!(st, 200, "{rule}: {c}");
        let got = w.list(r, collection, &[]).await;
        if got.status != 200 || got.rows != want {
            failures.push(format!(
                "{collection} rule {rule:?} as {r:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    report(&failures);
}

/// `/api/batch` runs writes only: a sub-request's query string must not act as a filter
/// (PocketBase ignores it too), and a list sub-request is refused whatever its filter.
#[tokio::test]
async fn batch_sub_request_queries_are_no_oracle() {
    let w = world().await;
    let (st, set) = w
        .call(
            "PATCH",
            "/api/settings",
            Superuser,
            Some(json!({"batch": {"enabled": true, "maxRequests": 5}})),
        )
        .await;
    assert_eq!(st, 200, "{set}");
    let hello = w.id("hello");
    let strip = |mut v: Value| {
        if let Some(items) = v.as_array_mut() {
            for i in items {
                if let Some(b) = i["body"].as_object_mut() {
                    b.remove("updated");
                }
            }
        }
        v
    };
    let mut failures = vec![];
    for p in FILTERS.iter().filter(|p| p.collection == "posts") {
        for &r in [Anon, Dave].iter().filter(|r| p.readers.contains(r)) {
            let mut got = vec![];
            for expr in [p.yes, p.no] {
                let q = format!("filter={}&sort=author.email&expand=author", urlencode(expr));
                let reqs = json!({"requests": [
                    {"method": "PATCH", "url": format!("/api/collections/posts/records/{hello}?{q}"), "body": {}},
                    {"method": "GET", "url": format!("/api/collections/posts/records?{q}")}
                ]});
                let (st, body) = w.call("POST", "/api/batch", r, Some(reqs)).await;
                got.push((st, strip(body)));
            }
            if got[0] != got[1] || got[0].0 >= 500 {
                failures.push(format!(
                    "batch {} as {r:?}: {:?} vs {:?}",
                    p.what, got[0], got[1]
                ));
            }
        }
    }
    report(&failures);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A subscription topic as the JS SDK builds it for `subscribe(topic, cb, {filter})`.
fn topic(collection: &str, filter: &str) -> String {
    let options = json!({"query": {"filter": filter}}).to_string();
    format!("{collection}/*?options={}", urlencode(&options))
}

/// Written last, in a collection no oracle reads: once its event arrived, every earlier
/// event for that client has (events reach a client in commit order).
const MARKER: &str = "code = 'marker'";

#[derive(Clone, Copy, Debug)]
enum Transport {
    Sse,
    WebSocket,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One realtime client, bound to a reader, over either transport.
enum Client {
    Sse {
        res: reqwest::Response,
        buf: String,
        id: String,
        topics: Vec<String>,
    },
    Ws {
        ws: Box<Ws>,
        next_id: u64,
    },
}

impl Client {
    async fn open(w: &World, t: Transport, who: Reader) -> Client {
        match t {
            Transport::Sse => {
                let res = reqwest::Client::new()
                    .get(w.s.url("/api/realtime"))
                    .send()
                    .await
                    .expect("sse");
                assert_eq!(res.status(), 200);
                let mut c = Client::Sse {
                    res,
                    buf: String::new(),
                    id: String::new(),
                    topics: vec![],
                };
                let (name, data) = c.next_event().await.expect("PB_CONNECT");
                assert_eq!(name, "PB_CONNECT");
                let v: Value = serde_json::from_str(&data).expect("connect json");
                if let Client::Sse { id, .. } = &mut c {
                    *id = v["clientId"].as_str().unwrap_or_default().to_string();
                }
                c
            }
            Transport::WebSocket => {
                let url = w.s.url("/api/realtime/ws").replace("http://", "ws://");
                let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
                let mut c = Client::Ws {
                    ws: Box::new(ws),
                    next_id: 1,
                };
                let (name, _) = c.next_event().await.expect("connected");
                assert_eq!(name, "connected");
                if let Some(token) = w.token(who) {
                    let answer = c.command(json!({"type": "auth", "token": token})).await;
                    assert_eq!(answer["type"], "ack", "{answer}");
                }
                c
            }
        }
    }

    /// Adds one subscription; `Err` carries the refusal (status or error message).
    async fn subscribe(&mut self, w: &World, who: Reader, topic: &str) -> Result<(), String> {
        match self {
            Client::Sse { id, topics, .. } => {
                let mut next = topics.clone();
                next.push(topic.to_string());
                let (st, body) = w
                    .call(
                        "POST",
                        "/api/realtime",
                        who,
                        Some(json!({"clientId": id, "subscriptions": next})),
                    )
                    .await;
                if st == 204 {
                    *topics = next;
                    return Ok(());
                }
                // The refused set replaced nothing or everything: put the accepted set back.
                let (again, _) = w
                    .call(
                        "POST",
                        "/api/realtime",
                        who,
                        Some(json!({"clientId": id, "subscriptions": topics})),
                    )
                    .await;
                assert_eq!(again, 204);
                Err(format!("{st} {body}"))
            }
            Client::Ws { .. } => {
                let answer = self
                    .command(json!({"type": "subscribe", "topics": [topic]}))
                    .await;
                if answer["type"] == "ack" {
                    Ok(())
                } else {
                    Err(answer.to_string())
                }
            }
        }
    }

    async fn command(&mut self, mut msg: Value) -> Value {
        let Client::Ws { ws, next_id } = self else {
            return Value::Null;
        };
        *next_id += 1;
        let id = *next_id;
        msg["id"] = json!(id);
        ws.send(Message::text(msg.to_string()))
            .await
            .expect("ws send");
        loop {
            let m = next_ws(ws).await.expect("an answer");
            if m["id"] == json!(id) {
                return m;
            }
        }
    }

    /// The next event as (name or topic, data).
    async fn next_event(&mut self) -> Option<(String, String)> {
        match self {
            Client::Sse { res, buf, .. } => loop {
                if let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    if frame.starts_with(':') {
                        continue;
                    }
                    let (mut name, mut data) = (String::new(), String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data = v.to_string();
                        }
                    }
                    return Some((name, data));
                }
                match tokio::time::timeout(WAIT, res.chunk()).await {
                    Ok(Ok(Some(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => return None,
                }
            },
            Client::Ws { ws, .. } => {
                let m = next_ws(ws).await?;
                match m["type"].as_str() {
                    Some("event") => Some((
                        m["topic"].as_str().unwrap_or_default().to_string(),
                        m.to_string(),
                    )),
                    Some(other) => Some((other.to_string(), m.to_string())),
                    None => None,
                }
            }
        }
    }

    /// Every event topic received before the marker's.
    async fn events_until_marker(&mut self, marker: &str) -> Vec<String> {
        let mut out = vec![];
        while let Some((name, _)) = self.next_event().await {
            if name == marker {
                return out;
            }
            out.push(name);
        }
        panic!("the marker event never came; got {out:?}");
    }
}

async fn next_ws(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.ok()??.ok()?;
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).ok();
        }
    }
}

/// What one reader's client received for one topic: refused, or a number of events.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused,
    Events(usize),
}

/// The filter oracles as subscriptions: a reader's TRUE and FALSE subscriptions must get
/// the same events (both or neither, or both refused); a superuser gets only the TRUE one.
async fn realtime_oracles(t: Transport) {
    let w = world().await;
    let pairs: Vec<&Pair> = FILTERS
        .iter()
        .filter(|p| p.collection != "drafts")
        .collect();
    let mut readers: Vec<Reader> = pairs
        .iter()
        .flat_map(|p| p.readers.iter().copied())
        .collect();
    readers.push(Superuser);
    readers.sort();
    readers.dedup();
    let marker = topic("openc", MARKER);
    let mut clients = vec![];
    for &r in &readers {
        let mut c = Client::open(&w, t, r).await;
        let mut refused = vec![];
        for p in &pairs {
            let applies = p.readers.contains(&r)
                || (r == Superuser && matches!(p.control, Control::Superuser));
            if !applies {
                continue;
            }
            for expr in [p.yes, p.no] {
                let tp = topic(p.collection, expr);
                if c.subscribe(&w, r, &tp).await.is_err() {
                    refused.push(tp);
                }
            }
        }
        c.subscribe(&w, r, &marker)
            .await
            .expect("the marker subscription");
        clients.push((r, c, refused));
    }

    // The writes: each makes the TRUE filters of its collection true for the record.
    let su = Superuser;
    let (st, _) = w
        .call(
            "PATCH",
            &format!("/api/collections/members/records/{}", w.id("M1")),
            su,
            Some(json!({"name": "M1 again"})),
        )
        .await;
    assert_eq!(st, 200);
    let x = w
        .create(
            "posts",
            json!({"title": "rt", "author": w.id("Alice"), "editors": [w.id("Bob"), w.id("Carol")],
            "vault": w.id("vault"), "hid": w.id("hid"), "op": w.id("op"), "member": w.id("M1")}),
        )
        .await;
    // The back-relation from the ledger exists only from here on: the update sees it.
    w.create("ledger", json!({"note": "n0te", "post": x})).await;
    let (st, _) = w
        .call(
            "PATCH",
            &format!("/api/collections/posts/records/{x}"),
            su,
            Some(json!({"title": "rt2"})),
        )
        .await;
    assert_eq!(st, 200);
    for name in ["Alice", "Dave"] {
        let (st, _) = w
            .call(
                "PATCH",
                &format!("/api/collections/users/records/{}", w.id(name)),
                su,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(st, 200);
    }
    w.create("openc", json!({"code": "marker"})).await;

    let mut failures = vec![];
    for (r, mut c, refused) in clients {
        let events = c.events_until_marker(&marker).await;
        let outcome = |expr: &str, collection: &str| {
            let tp = topic(collection, expr);
            if refused.contains(&tp) {
                Outcome::Refused
            } else {
                Outcome::Events(events.iter().filter(|e| **e == tp).count())
            }
        };
        for p in &pairs {
            let yes = outcome(p.yes, p.collection);
            let no = outcome(p.no, p.collection);
            if r == Superuser {
                if matches!(p.control, Control::Superuser)
                    && (yes == Outcome::Refused
                        || yes == Outcome::Events(0)
                        || no != Outcome::Events(0))
                {
                    failures.push(format!(
                        "{t:?} {}: the superuser control got {yes:?} for {:?} and {no:?} for {:?}",
                        p.what, p.yes, p.no
                    ));
                }
            } else if p.readers.contains(&r) && yes != no {
                failures.push(format!(
                    "{t:?} {} as {r:?}: {:?} -> {yes:?} but {:?} -> {no:?}",
                    p.what, p.yes, p.no
                ));
            }
        }
    }
    report(&failures);
}

#[tokio::test]
async fn sse_subscription_filters_are_no_oracle() {
    realtime_oracles(Transport::Sse).await;
}

#[tokio::test]
async fn websocket_subscription_filters_are_no_oracle() {
    realtime_oracles(Transport::WebSocket).await;
}
