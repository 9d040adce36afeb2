//! The OpenAPI 3.1 document of the HTTP API, built from one schema snapshot for one
//! audience: the system routes, each auth collection's flows and each collection's record
//! routes with its field schemas (`fields`). Routes and wire shapes are this crate's;
//! which collections and actions a reader may reach is read off the rules as they stand.

use basalt_schema::{Collection, Schema};
use serde_json::{Map, Value, json};

use super::fields::{
    input_schema, multipart_schema, record_ref, record_schema, record_schema_name,
};

/// Who a document is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Superusers: every route, and the rules' text.
    Superuser,
    /// Anyone else, shown every collection and action (`openapi = "all"`).
    Everything,
    /// Anyone else, shown the collections and actions whose rule is not superusers-only
    /// (`openapi = "reachable"`).
    Reachable,
}

impl Audience {
    fn superuser(self) -> bool {
        self == Audience::Superuser
    }

    /// Whether an action whose rule is `rule` is listed.
    fn lists(self, rule: &Option<String>) -> bool {
        self != Audience::Reachable || rule.is_some()
    }
}

/// A collection's actions with their rules, in route order.
fn actions(c: &Collection) -> [(&'static str, &Option<String>); 5] {
    [
        ("list", &c.list_rule),
        ("view", &c.view_rule),
        ("create", &c.create_rule),
        ("update", &c.update_rule),
        ("delete", &c.delete_rule),
    ]
}

/// Whether `audience` is shown collection `c` at all.
fn documented(c: &Collection, audience: Audience) -> bool {
    audience != Audience::Reachable
        || actions(c).iter().any(|(_, r)| r.is_some())
        || c.auth.as_ref().is_some_and(|a| a.auth_rule.is_some())
}

/// A rule as a reader of the document learns it. The text is shown to superusers only:
/// a rule may name hidden fields and other collections, and PocketBase shows collection
/// documents (rules included) to superusers only, so others learn who may act, not how
/// it is decided.
fn rule_summary(rule: &Option<String>, audience: Audience) -> String {
    match rule.as_deref() {
        None => "superusers only".into(),
        Some("") => "open to anyone".into(),
        Some(text) if audience.superuser() => format!("rule `{text}`"),
        Some(_) => "restricted by the collection's rule".into(),
    }
}

pub fn build(schema: &Schema, audience: Audience) -> Value {
    let shown: Vec<&Collection> = schema
        .collections()
        .iter()
        .map(|c| &**c)
        .filter(|c| documented(c, audience))
        .collect();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    system_paths(&mut paths, audience);
    let target_ref = |id: &str| {
        shown
            .iter()
            .find(|c| c.id == id)
            .map(|c| record_ref(&c.name))
    };
    for c in &shown {
        schemas.insert(
            record_schema_name(&c.name),
            record_schema(c, audience.superuser(), &target_ref),
        );
        if !c.is_view() {
            schemas.insert(
                format!("{}Create", c.name),
                input_schema(c, false, audience.superuser()),
            );
            schemas.insert(
                format!("{}Update", c.name),
                input_schema(c, true, audience.superuser()),
            );
            if basalt_service::files::has_file_fields(c) {
                schemas.insert(
                    format!("{}CreateForm", c.name),
                    multipart_schema(c, false, audience.superuser()),
                );
                schemas.insert(
                    format!("{}UpdateForm", c.name),
                    multipart_schema(c, true, audience.superuser()),
                );
            }
        }
        record_paths(&mut paths, c, audience);
        if c.is_auth() {
            auth_paths(&mut paths, c, audience);
        }
    }
    for (name, s) in common_schemas() {
        schemas.insert(name.into(), s);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Basalt API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The PocketBase-compatible HTTP API of this Basalt server, generated from its collections as they stand. Errors use PocketBase's shape (`Error`). A request carries a record's auth token in `Authorization` (the raw JWT, as PocketBase's SDK sends it, or `Bearer <JWT>`); an invalid or expired token makes the request anonymous.",
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"authToken": []}, {"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "securitySchemes": {
                "authToken": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "A record's auth token (JWT) as the header's whole value, as PocketBase's SDK sends it."},
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    })
}

fn common_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Error",
            json!({
                "type": "object",
                "required": ["status", "message", "data"],
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "data": {"type": "object", "description": "Per-field failures: `{field: {code, message}}` (nested for batch sub-requests)."},
                },
            }),
        ),
        (
            "FieldError",
            json!({"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}),
        ),
        (
            "AuthAnswer",
            json!({
                "type": "object",
                "required": ["token", "record"],
                "properties": {"token": {"type": "string"}, "record": {"type": "object"}, "meta": {"type": "object"}},
            }),
        ),
        (
            "Collection",
            json!({"type": "object", "description": "A collection document (PocketBase's shape).", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string", "enum": ["base", "auth", "view"]}}}),
        ),
    ]
}

fn error_responses() -> Value {
    let mut out = Map::new();
    for (name, what) in [
        (
            "BadRequest",
            "Invalid input; `data` names the failing fields.",
        ),
        ("Unauthorized", "The request needs an auth token."),
        ("Forbidden", "The caller may not do this."),
        (
            "NotFound",
            "No such resource, or not visible to the caller.",
        ),
        ("PayloadTooLarge", "The body exceeds the configured limit."),
        ("TooManyRequests", "Rate limited; retry later."),
        (
            "Unavailable",
            "The server, or a storage it needs, cannot serve the request now (for health: the reason in `data`).",
        ),
    ] {
        out.insert(
            name.into(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

/// The responses of an operation: `ok` (status, description, schema or none) plus the
/// listed error statuses.
fn responses(ok: (u16, &str, Option<Value>), errors: &[u16]) -> Value {
    let mut out = Map::new();
    let (status, what, schema) = ok;
    out.insert(
        status.to_string(),
        match schema {
            Some(s) => json!({"description": what, "content": {"application/json": {"schema": s}}}),
            None => json!({"description": what}),
        },
    );
    for e in errors {
        let name = match e {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            413 => "PayloadTooLarge",
            429 => "TooManyRequests",
            _ => "Unavailable",
        };
        out.insert(
            e.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    Value::Object(out)
}

/// A conditional read's parameters: `params` and `If-None-Match`.
fn conditional_params(mut params: Vec<Value>) -> Vec<Value> {
    params.push(json!({
        "name": "If-None-Match",
        "in": "header",
        "required": false,
        "description": "Tags of answers the client holds (or `*`): a 304 when this answer's tag is among them.",
        "schema": {"type": "string"},
    }));
    params
}

/// A conditional read's answers: the 200 with its `ETag` and `Cache-Control`, and the 304.
fn conditional(mut responses: Value) -> Value {
    let headers = json!({
        "ETag": {"description": "A strong tag of this answer.", "schema": {"type": "string"}},
        "Cache-Control": {
            "description": "`private, no-cache` unless the settings' `recordCaching` gives the collection another policy.",
            "schema": {"type": "string"},
        },
    });
    responses["200"]["headers"] = headers.clone();
    responses["304"] = json!({
        "description": "Not modified: `If-None-Match` names this answer's tag.",
        "headers": headers,
    });
    responses
}

fn json_body(schema: Value, required: bool) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": schema}}})
}

/// A record write's body: JSON, and for a collection with file fields also
/// `multipart/form-data` (`{name}{kind}Form`), where the files are sent.
fn record_body(c: &Collection, kind: &str, required: bool) -> Value {
    let name = &c.name;
    let mut b = json_body(
        json!({"$ref": format!("#/components/schemas/{name}{kind}")}),
        required,
    );
    if basalt_service::files::has_file_fields(c) {
        b["content"]["multipart/form-data"] =
            json!({"schema": {"$ref": format!("#/components/schemas/{name}{kind}Form")}});
    }
    b
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": description})
}

/// PocketBase's list parameters; `with_expand` adds `expand` (records only).
fn list_params(with_expand: bool) -> Vec<Value> {
    let mut p = vec![
        query(
            "page",
            json!({"type": "integer", "minimum": 1}),
            "1-based page number (default 1).",
        ),
        query(
            "perPage",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            "Items per page (default 30, at most 1000).",
        ),
        query(
            "sort",
            json!({"type": "string"}),
            "Sort keys, `-` for descending: `-created,title`.",
        ),
        query(
            "filter",
            json!({"type": "string"}),
            "A filter in PocketBase's language: `title ~ 'abc' && n > 1`.",
        ),
        query(
            "skipTotal",
            json!({"type": "boolean"}),
            "Skips counting: `totalItems` and `totalPages` are -1.",
        ),
    ];
    p.extend(view_params(with_expand));
    p
}

fn view_params(with_expand: bool) -> Vec<Value> {
    let mut p = vec![query(
        "fields",
        json!({"type": "string"}),
        "Comma-separated fields to return (`*`, `expand.author.name`, `:excerpt(200)`).",
    )];
    if with_expand {
        p.push(query(
            "expand",
            json!({"type": "string"}),
            "Relations to expand: `author,comments_via_post.user`.",
        ));
    }
    p
}

fn page_of(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["page", "perPage", "totalItems", "totalPages", "items"],
        "properties": {
            "page": {"type": "integer"}, "perPage": {"type": "integer"},
            "totalItems": {"type": "integer"}, "totalPages": {"type": "integer"},
            "items": {"type": "array", "items": items},
        },
    })
}

fn op(tag: &str, summary: String, description: String, extra: Value) -> Value {
    let mut o = json!({"tags": [tag], "summary": summary, "description": description});
    if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
        o.extend(extra);
    }
    o
}

fn record_paths(paths: &mut Map<String, Value>, c: &Collection, audience: Audience) {
    let name = &c.name;
    let record = json!({"$ref": record_ref(name)});
    let tag = name.as_str();
    let mut list_path = Map::new();
    let mut one_path = Map::new();
    let id = path_param("id", "The record's id.");
    let with_id: Vec<Value> = [id.clone()].into_iter().chain(view_params(true)).collect();
    for (action, rule) in actions(c) {
        if !audience.lists(rule) || (c.is_view() && !matches!(action, "list" | "view")) {
            continue;
        }
        let who = rule_summary(rule, audience);
        let desc = format!("Who may: {who}.");
        let (method, target, o) = match action {
            "list" => (
                "get",
                &mut list_path,
                op(
                    tag,
                    format!("List {name} records"),
                    desc,
                    json!({
                        "operationId": format!("list_{name}"),
                        "parameters": conditional_params(list_params(true)),
                        "responses": conditional(responses((200, "A page of records.", Some(page_of(record.clone()))), &[400, 403])),
                    }),
                ),
            ),
            "view" => (
                "get",
                &mut one_path,
                op(
                    tag,
                    format!("View a {name} record"),
                    desc,
                    json!({
                        "operationId": format!("view_{name}"),
                        "parameters": conditional_params(with_id.clone()),
                        "responses": conditional(responses((200, "The record.", Some(record.clone())), &[400, 403, 404])),
                    }),
                ),
            ),
            "create" => (
                "post",
                &mut list_path,
                op(
                    tag,
                    format!("Create a {name} record"),
                    desc,
                    json!({
                        "operationId": format!("create_{name}"),
                        "parameters": view_params(true),
                        "requestBody": record_body(c, "Create", true),
                        "responses": responses((200, "The created record.", Some(record.clone())), &[400, 403, 404, 413]),
                    }),
                ),
            ),
            "update" => (
                "patch",
                &mut one_path,
                op(
                    tag,
                    format!("Update a {name} record"),
                    desc,
                    json!({
                        "operationId": format!("update_{name}"),
                        "parameters": with_id.clone(),
                        "requestBody": record_body(c, "Update", false),
                        "responses": responses((200, "The updated record.", Some(record.clone())), &[400, 403, 404, 413]),
                    }),
                ),
            ),
            _ => (
                "delete",
                &mut one_path,
                op(
                    tag,
                    format!("Delete a {name} record"),
                    desc,
                    json!({
                        "operationId": format!("delete_{name}"),
                        "parameters": [id.clone()],
                        "responses": responses((204, "Deleted.", None), &[400, 403, 404]),
                    }),
                ),
            ),
        };
        target.insert(method.into(), o);
    }
    if !list_path.is_empty() {
        paths.insert(
            format!("/api/collections/{name}/records"),
            Value::Object(list_path),
        );
    }
    if !one_path.is_empty() {
        paths.insert(
            format!("/api/collections/{name}/records/{{id}}"),
            Value::Object(one_path),
        );
    }
}

fn auth_paths(paths: &mut Map<String, Value>, c: &Collection, audience: Audience) {
    let Some(auth) = &c.auth else { return };
    if !audience.lists(&auth.auth_rule) {
        return;
    }
    let name = &c.name;
    let tag = name.as_str();
    let answer = json!({
        "allOf": [{"$ref": "#/components/schemas/AuthAnswer"}],
        "properties": {"record": {"$ref": record_ref(name)}},
    });
    let who = format!(
        "Who may sign in: {}.",
        rule_summary(&auth.auth_rule, audience)
    );
    let string = json!({"type": "string"});
    let body = |props: Value, required: &[&str]| {
        json_body(
            json!({"type": "object", "required": required, "properties": props}),
            true,
        )
    };
    let mut add = |route: &str, summary: &str, description: String, extra: Value| {
        let mut o = op(tag, format!("{summary} ({name})"), description, extra);
        o["operationId"] = json!(format!("{}_{name}", route.replace('-', "_")));
        paths.insert(
            format!("/api/collections/{name}/{route}"),
            json!({"post": o}),
        );
    };
    if auth.password_auth.enabled {
        add(
            "auth-with-password",
            "Sign in with a password",
            format!(
                "{who} Identity fields: {}. With MFA on, a first factor answers 401 with `mfaId` in `data`.",
                auth.password_auth.identity_fields.join(", ")
            ),
            json!({
                "requestBody": body(json!({"identity": string, "password": string, "identityField": string}), &["identity", "password"]),
                "responses": responses((200, "Signed in.", Some(answer.clone())), &[400, 401, 403, 429]),
            }),
        );
    }
    add(
        "auth-refresh",
        "Refresh the caller's token",
        "Needs the caller's own valid token.".into(),
        json!({
            "security": [{"authToken": []}, {"bearerAuth": []}],
            "responses": responses((200, "A fresh token and the record.", Some(answer.clone())), &[400, 401, 403, 404]),
        }),
    );
    if auth.otp.enabled {
        add(
            "request-otp",
            "Send a one-time password",
            who.clone(),
            json!({
                "requestBody": body(json!({"email": string}), &["email"]),
                "responses": responses((200, "The OTP's id (also when no record has this email).", Some(json!({"type": "object", "required": ["otpId"], "properties": {"otpId": string}}))), &[400, 429]),
            }),
        );
        add(
            "auth-with-otp",
            "Sign in with a one-time password",
            who.clone(),
            json!({
                "requestBody": body(json!({"otpId": string, "password": string}), &["otpId", "password"]),
                "responses": responses((200, "Signed in.", Some(answer.clone())), &[400, 401, 403, 429]),
            }),
        );
    }
    add(
        "auth-with-oauth2",
        "Sign in with an OAuth2 provider",
        who.clone(),
        json!({
            "requestBody": body(json!({"provider": string, "code": string, "codeVerifier": string, "redirectURL": string, "createData": {"type": "object"}}), &["provider", "code", "redirectURL"]),
            "responses": responses((200, "Signed in.", Some(answer.clone())), &[400, 401, 403, 429]),
        }),
    );
    let no_content = |summary: &str, props: Value, required: &[&str], errors: &[u16]| {
        (
            summary.to_string(),
            json!({
                "requestBody": body(props, required),
                "responses": responses((204, "Done (also when no record matches, for requests).", None), errors),
            }),
        )
    };
    for (route, (summary, extra)) in [
        (
            "request-verification",
            no_content(
                "Send a verification email",
                json!({"email": string}),
                &["email"],
                &[400, 429],
            ),
        ),
        (
            "confirm-verification",
            no_content(
                "Confirm an email with its token",
                json!({"token": string}),
                &["token"],
                &[400, 429],
            ),
        ),
        (
            "request-password-reset",
            no_content(
                "Send a password reset email",
                json!({"email": string}),
                &["email"],
                &[400, 429],
            ),
        ),
        (
            "confirm-password-reset",
            no_content(
                "Set a new password with a reset token",
                json!({"token": string, "password": string, "passwordConfirm": string}),
                &["token", "password", "passwordConfirm"],
                &[400, 429],
            ),
        ),
        (
            "request-email-change",
            no_content(
                "Send an email change confirmation (signed-in callers)",
                json!({"newEmail": string}),
                &["newEmail"],
                &[400, 401, 403, 429],
            ),
        ),
        (
            "confirm-email-change",
            no_content(
                "Change the email with its token",
                json!({"token": string, "password": string}),
                &["token", "password"],
                &[400, 429],
            ),
        ),
    ] {
        add(route, &summary, String::new(), extra);
    }
    let methods = op(
        tag,
        format!("Sign-in methods ({name})"),
        String::new(),
        json!({
            "operationId": format!("auth_methods_{name}"),
            "responses": responses((200, "The enabled sign-in methods.", Some(json!({"type": "object"}))), &[400, 404]),
        }),
    );
    paths.insert(
        format!("/api/collections/{name}/auth-methods"),
        json!({"get": methods}),
    );
    if audience.superuser() {
        let o = op(
            tag,
            format!("Impersonate a record ({name})"),
            "Superusers only: a non-refreshable token of the record.".into(),
            json!({
                "operationId": format!("impersonate_{name}"),
                "parameters": [path_param("id", "The record's id.")],
                "requestBody": json_body(json!({"type": "object", "properties": {"duration": {"type": "integer", "minimum": 0}}}), false),
                "responses": responses((200, "A token of the record.", Some(answer)), &[400, 401, 403, 404]),
            }),
        );
        paths.insert(
            format!("/api/collections/{name}/impersonate/{{id}}"),
            json!({"post": o}),
        );
    }
}

fn system_paths(paths: &mut Map<String, Value>, audience: Audience) {
    let string = json!({"type": "string"});
    paths.insert("/api/health".into(), json!({"get": op("system", "Health".into(), "200 while the store is sound, 503 with a reason otherwise.".into(), json!({
        "operationId": "health",
        "responses": responses((200, "Healthy.", Some(json!({"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "integer"}, "message": string, "data": {"type": "object"}}}))), &[503]),
    }))}));
    paths.insert("/api/openapi.json".into(), json!({"get": op("system", "This document".into(), "Generated from the collections as they stand, for the reader: superusers see every route and rule; others what the `openapi` setting lets them see.".into(), json!({
        "operationId": "openapi",
        "responses": responses((200, "An OpenAPI 3.1 document.", Some(json!({"type": "object", "required": ["openapi", "paths"]}))), &[401, 403]),
    }))}));
    paths.insert("/api/realtime".into(), json!({
        "get": op("realtime", "Open a realtime stream".into(), "Server-Sent Events: a `PB_CONNECT` event with the client id, then the subscribed record changes, each checked against the reader's rules.".into(), json!({
            "operationId": "realtime_connect",
            "responses": {"200": {"description": "An event stream.", "content": {"text/event-stream": {"schema": string}}}},
        })),
        "post": op("realtime", "Set a realtime client's subscriptions".into(), "Topics: `COLLECTION/*`, `COLLECTION/ID`, with `?options=` (query and headers) as PocketBase.".into(), json!({
            "operationId": "realtime_subscribe",
            "requestBody": json_body(json!({"type": "object", "required": ["clientId"], "properties": {"clientId": string, "subscriptions": {"type": "array", "items": string}}}), true),
            "responses": responses((204, "Subscriptions set.", None), &[400, 403, 404]),
        })),
    }));
    paths.insert("/api/batch".into(), json!({"post": op("system", "Run record writes in one transaction".into(), "Each sub-request is checked by its collection's rules; any failure rolls all back.".into(), json!({
        "operationId": "batch",
        "requestBody": json_body(json!({"type": "object", "required": ["requests"], "properties": {"requests": {"type": "array", "items": {"type": "object", "required": ["method", "url"], "properties": {"method": string, "url": string, "headers": {"type": "object"}, "body": {"type": "object"}}}}}}), true),
        "responses": responses((200, "Each sub-request's answer.", Some(json!({"type": "array", "items": {"type": "object", "properties": {"status": {"type": "integer"}, "body": {}}}}))), &[400, 403, 413]),
    }))}));
    files_paths(paths);
    paths.insert("/api/files/token".into(), json!({"post": op("system", "Issue a protected-file token".into(), "For a signed-in caller.".into(), json!({
        "operationId": "file_token",
        "responses": responses((200, "A short-lived file token.", Some(json!({"type": "object", "required": ["token"], "properties": {"token": string}}))), &[400, 401]),
    }))}));
    if audience == Audience::Reachable {
        return;
    }
    let collection = json!({"$ref": "#/components/schemas/Collection"});
    let name = path_param("collection", "The collection's id or name.");
    let su = "Superusers only.".to_string();
    let errors: &[u16] = &[400, 401, 403, 404];
    paths.insert("/api/collections".into(), json!({
        "get": op("collections", "List collections".into(), su.clone(), json!({"operationId": "list_collections", "parameters": list_params(false), "responses": responses((200, "A page of collections.", Some(page_of(collection.clone()))), errors)})),
        "post": op("collections", "Create a collection".into(), su.clone(), json!({"operationId": "create_collection", "requestBody": json_body(collection.clone(), true), "responses": responses((200, "The collection.", Some(collection.clone())), errors)})),
    }));
    paths.insert("/api/collections/{collection}".into(), json!({
        "get": op("collections", "View a collection".into(), su.clone(), json!({"operationId": "view_collection", "parameters": [name.clone()], "responses": responses((200, "The collection.", Some(collection.clone())), errors)})),
        "patch": op("collections", "Update a collection".into(), su.clone(), json!({"operationId": "update_collection", "parameters": [name.clone()], "requestBody": json_body(json!({"type": "object"}), true), "responses": responses((200, "The collection.", Some(collection.clone())), errors)})),
        "delete": op("collections", "Delete a collection".into(), su.clone(), json!({"operationId": "delete_collection", "parameters": [name.clone()], "responses": responses((204, "Deleted.", None), errors)})),
    }));
    paths.insert("/api/collections/{collection}/truncate".into(), json!({
        "delete": op("collections", "Delete every record of a collection".into(), su.clone(), json!({"operationId": "truncate_collection", "parameters": [name], "responses": responses((204, "Truncated.", None), errors)})),
    }));
    paths.insert("/api/collections/import".into(), json!({
        "put": op("collections", "Import collections".into(), su.clone(), json!({"operationId": "import_collections", "requestBody": json_body(json!({"type": "object", "required": ["collections"], "properties": {"collections": {"type": "array", "items": collection}, "deleteMissing": {"type": "boolean"}}}), true), "responses": responses((204, "Imported.", None), errors)})),
    }));
    paths.insert("/api/settings".into(), json!({
        "get": op("settings", "View the settings".into(), su.clone(), json!({"operationId": "view_settings", "responses": responses((200, "The settings (secrets masked).", Some(json!({"type": "object"}))), &[401, 403])})),
        "patch": op("settings", "Update the settings".into(), su.clone(), json!({"operationId": "update_settings", "requestBody": json_body(json!({"type": "object"}), true), "responses": responses((200, "The settings.", Some(json!({"type": "object"}))), &[400, 401, 403])})),
    }));
    backups_paths(paths);
    let job = json!({"type": "object", "required": ["id", "expression"], "properties": {
        "id": {"type": "string"}, "expression": {"type": "string"}}});
    paths.insert("/api/crons".into(), json!({
        "get": op("crons", "List the cron jobs".into(), format!("{su} The maintenance jobs, and `__pbAutoBackup__` while `backups.cron` is set."), json!({"operationId": "list_crons",
            "responses": responses((200, "Every cron job.", Some(json!({"type": "array", "items": job}))), &[401, 403])})),
    }));
    paths.insert("/api/crons/{id}".into(), json!({
        "post": op("crons", "Run a cron job".into(), format!("{su} Starts the job in the background; a job already running is not started twice."), json!({"operationId": "run_cron",
            "parameters": [path_param("id", "The job's id.")],
            "responses": responses((204, "Started.", None), &[401, 403, 404])})),
    }));
    let log = json!({"type": "object", "required": ["id", "created", "level", "message", "data"], "properties": {
        "id": {"type": "string"}, "created": {"type": "string"}, "level": {"type": "integer"},
        "message": {"type": "string"}, "data": {"type": "object"}}});
    paths.insert("/api/logs".into(), json!({
        "get": op("logs", "List request logs".into(), format!("{su} Entries of `auxiliary.db`; `filter` and `sort` over `id`, `created`, `level`, `message` and `data.*`."), json!({"operationId": "list_logs",
            "parameters": list_params(false),
            "responses": responses((200, "A page of log entries.", Some(page_of(log.clone()))), &[400, 401, 403])})),
    }));
    paths.insert("/api/logs/stats".into(), json!({
        "get": op("logs", "Hourly log counts".into(), format!("{su} Entries per hour of `created`, oldest first."), json!({"operationId": "log_stats",
            "parameters": [query("filter", json!({"type": "string"}), "A filter over the log entries.")],
            "responses": responses((200, "Counts per hour.", Some(json!({"type": "array", "items": {"type": "object", "required": ["date", "total"], "properties": {"date": {"type": "string"}, "total": {"type": "integer"}}}}))), &[400, 401, 403])})),
    }));
    paths.insert("/api/logs/{id}".into(), json!({
        "get": op("logs", "View a log entry".into(), su.clone(), json!({"operationId": "view_log",
            "parameters": [path_param("id", "The entry's id.")],
            "responses": responses((200, "The entry.", Some(log)), &[401, 403, 404])})),
    }));
    paths.insert("/api/settings/test/s3".into(), json!({
        "post": op("settings", "Test the S3 settings".into(), format!("{su} Writes and deletes a small object with the saved settings."), json!({"operationId": "test_s3", "requestBody": json_body(json!({"type": "object", "required": ["filesystem"], "properties": {"filesystem": {"type": "string", "enum": ["storage", "backups"]}}}), true), "responses": responses((204, "The bucket is reachable.", None), &[400, 401, 403])})),
    }));
}

/// A binary body of `mime` as a response's content.
fn binary(what: &str, mime: &str) -> Value {
    json!({"description": what, "content": {mime: {"schema": {"type": "string", "format": "binary"}}}})
}

/// `GET`/`HEAD /api/files/{collection}/{recordId}/{filename}`: open to anyone; the
/// record's view rule (and a file token for protected files) decides.
fn files_paths(paths: &mut Map<String, Value>) {
    let params = json!([
        path_param("collection", "The collection's id or name."),
        path_param("recordId", "The record's id."),
        path_param("filename", "A file name the record's file field holds."),
        query(
            "thumb",
            json!({"type": "string"}),
            "A thumb size the field lists: `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0` (the original for any other)."
        ),
        query(
            "token",
            json!({"type": "string"}),
            "A file token (`POST /api/files/token`), needed for protected files."
        ),
        query(
            "download",
            json!({"type": "string"}),
            "Any value but empty, `0`, `false` or `f` serves the file as an attachment."
        ),
    ]);
    let mut answers = responses((200, "", None), &[400, 404]);
    answers["200"] = binary("The file (or its thumb).", "*/*");
    answers["206"] = binary("The requested byte range (`Range: bytes=...`).", "*/*");
    answers["304"] =
        json!({"description": "Not modified (`If-None-Match` / `If-Modified-Since`)."});
    answers["416"] = json!({"description": "The range lies outside the file.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    answers["503"] = json!({"$ref": "#/components/responses/Unavailable"});
    let description = "Who may: whoever may view the record; a protected file also needs a `token`. Range requests, ETag and Last-Modified as PocketBase serves them; active content (SVG, HTML, XML, JS) is always an attachment.";
    let get = |id: &str, summary: &str| {
        op(
            "files",
            summary.into(),
            description.into(),
            json!({
                "operationId": id, "security": [{}], "parameters": params, "responses": answers,
            }),
        )
    };
    paths.insert(
        "/api/files/{collection}/{recordId}/{filename}".into(),
        json!({"get": get("file_download", "Download a record's file"), "head": get("file_head", "A record's file's headers")}),
    );
}

/// `/api/backups`: superusers only; the download is authorised by a superuser's file
/// token in the query instead of a header.
fn backups_paths(paths: &mut Map<String, Value>) {
    let su = "Superusers only. With `backups.s3` enabled the backups are the bucket's; 503 when it cannot be reached.";
    let errors: &[u16] = &[400, 401, 403, 503];
    let key = path_param("key", "The backup's key (its file name).");
    let info = json!({"type": "object", "required": ["key", "size", "modified"], "properties": {
        "key": {"type": "string"}, "size": {"type": "integer"}, "modified": {"type": "string"}}});
    let tag = "backups";
    paths.insert("/api/backups".into(), json!({
        "get": op(tag, "List backups".into(), su.into(), json!({"operationId": "list_backups",
            "responses": responses((200, "Every backup.", Some(json!({"type": "array", "items": info}))), errors)})),
        "post": op(tag, "Create a backup".into(), format!("{su} A zip of a consistent database snapshot and the record files; PocketBase's default name when `name` is empty."), json!({"operationId": "create_backup",
            "requestBody": json_body(json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^([a-z0-9_-]+\\.zip)?$", "maxLength": 150}}}), false),
            "responses": responses((204, "Made.", None), errors)})),
    }));
    paths.insert("/api/backups/upload".into(), json!({
        "post": op(tag, "Upload a backup".into(), format!("{su} A backup zip, checked before it is kept."), json!({"operationId": "upload_backup",
            "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}},
            "responses": responses((204, "Kept.", None), &[400, 401, 403, 413, 503])})),
    }));
    let mut download = responses((200, "", None), &[403, 404, 503]);
    download["200"] = binary("The backup zip, as an attachment.", "application/zip");
    paths.insert("/api/backups/{key}".into(), json!({
        "get": op(tag, "Download a backup".into(), "Needs a superuser's file token (`POST /api/files/token`) in `token`.".into(), json!({"operationId": "download_backup",
            "security": [{}],
            "parameters": [key.clone(), query("token", json!({"type": "string"}), "A superuser's file token.")],
            "responses": download})),
        "delete": op(tag, "Delete a backup".into(), su.into(), json!({"operationId": "delete_backup",
            "parameters": [key.clone()], "responses": responses((204, "Deleted.", None), errors)})),
    }));
    paths.insert("/api/backups/{key}/restore".into(), json!({
        "post": op(tag, "Restore a backup".into(), format!("{su} Staged whole, then the server restarts to complete it: the data is the old state or the backup's, never a mix."), json!({"operationId": "restore_backup",
            "parameters": [key], "responses": responses((204, "Staged; the server restarts.", None), errors)})),
    }));
}
