//! System tables and their numbered migrations, the bootstrap of the default
//! collections (`_superusers`, `users`), settings params, and loading the schema snapshot.

use basalt_schema::{Collection, Schema};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::StoreError;

const SUPERUSERS: &str = include_str!("bootstrap/superusers_collection.json");
const USERS: &str = include_str!("bootstrap/users_collection.json");
const OTPS: &str = include_str!("bootstrap/otps_collection.json");
const MFAS: &str = include_str!("bootstrap/mfas_collection.json");
const AUTH_ORIGINS: &str = include_str!("bootstrap/auth_origins_collection.json");
const EXTERNAL_AUTHS: &str = include_str!("bootstrap/external_auths_collection.json");

/// Every default collection, in the order a fresh database gets them (PostgreSQL creates
/// them at once; SQLite's numbered migrations added them one by one).
pub(crate) const DEFAULT_COLLECTIONS: &[&str] =
    &[SUPERUSERS, USERS, OTPS, MFAS, AUTH_ORIGINS, EXTERNAL_AUTHS];

/// A default collection's document, validated against the collections made before it.
pub(crate) fn default_collection(doc: &str, schema: &Schema) -> Result<Collection, StoreError> {
    let c: Collection =
        serde_json::from_str(doc).map_err(|e| StoreError::Internal(e.to_string()))?;
    let now = basalt_schema::value::now_string();
    basalt_schema::collection_validate::validate(c, None, schema, &now)
        .map_err(|e| StoreError::Internal(format!("bootstrap collection: {e}")))
}

/// The `type` column of a collection's `_collections` row.
pub(crate) fn kind_name(c: &Collection) -> String {
    serde_json::to_value(c.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Numbered system migrations; each runs once, in order, in its own transaction. Some
/// also run a step in Rust after their SQL (see [`after_sql`]).
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE _collections (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE COLLATE NOCASE, type TEXT NOT NULL, doc JSON NOT NULL, created TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL DEFAULT '');
     CREATE TABLE _params (key TEXT PRIMARY KEY NOT NULL, value JSON);
     CREATE TABLE _changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, collection_id TEXT NOT NULL, record_id TEXT NOT NULL, action TEXT NOT NULL, record JSON, created TEXT NOT NULL);",
    ),
    // Auth: the `_otps`, `_mfas` and `_authOrigins` system collections, and token secrets for every auth
    // collection created before collections had them.
    (2, ""),
    // OAuth2: the `_externalAuths` system collection linking provider accounts to records.
    (3, ""),
    // The change log keeps no secrets: those already in it are removed.
    (4, ""),
    // Files: the default `users` collection gets PocketBase's `avatar` file field.
    (5, ""),
];

/// The Rust part of a migration, inside its transaction.
fn after_sql(conn: &Connection, version: i64) -> Result<(), StoreError> {
    match version {
        1 => bootstrap(conn, &[SUPERUSERS, USERS]),
        2 => {
            add_token_secrets(conn)?;
            bootstrap(conn, &[OTPS, MFAS, AUTH_ORIGINS])
        }
        3 => bootstrap(conn, &[EXTERNAL_AUTHS]),
        4 => crate::change_log::scrub_secrets(conn),
        5 => add_users_avatar(conn),
        _ => Ok(()),
    }
}

/// Re-validates stored auth collections so each token kind gets its collection secret.
fn add_token_secrets(conn: &Connection) -> Result<(), StoreError> {
    let schema = load_schema(conn)?;
    for c in schema.collections().iter().filter(|c| c.is_auth()) {
        let mut updated = (**c).clone();
        if let Some(a) = updated.auth.as_mut() {
            for t in a.tokens_mut() {
                if t.secret.is_none() {
                    t.secret = Some(basalt_schema::id::random_id(50));
                }
            }
        }
        save_collection(conn, &updated)?;
    }
    Ok(())
}

/// The id of the default `users` collection (PocketBase's).
const USERS_ID: &str = "_pb_users_auth_";

/// Gives the default `users` collection PocketBase's `avatar` field (as in
/// `bootstrap/users_collection.json`), unless it is gone or already has a field of that
/// name, which is then left as the user made it.
fn add_users_avatar(conn: &Connection) -> Result<(), StoreError> {
    let schema = load_schema(conn)?;
    let Some(users) = schema.by_id(USERS_ID) else {
        return Ok(());
    };
    if users
        .fields
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("avatar"))
    {
        return Ok(());
    }
    let bootstrap: Collection =
        serde_json::from_str(USERS).map_err(|e| StoreError::Internal(e.to_string()))?;
    let Some(avatar) = bootstrap.fields.into_iter().find(|f| f.name == "avatar") else {
        return Err(StoreError::Internal(
            "the users bootstrap document has no avatar field".into(),
        ));
    };
    let old = (**users).clone();
    let mut new = old.clone();
    let at = new
        .fields
        .iter()
        .position(|f| f.name == "name")
        .map_or(new.fields.len(), |i| i + 1);
    new.fields.insert(at, avatar);
    new.updated = basalt_schema::value::now_string();
    crate::collections::migrate_table(conn, &old, &new)?;
    save_collection(conn, &new)
}

fn err(e: rusqlite::Error) -> StoreError {
    crate::health::db_err(e)
}

/// Brings the system tables up to date and returns the schema snapshot.
pub(crate) fn migrate(conn: &Connection) -> Result<Schema, StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        .map_err(err)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM _migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let res = conn
            .execute_batch(sql)
            .and_then(|()| {
                conn.execute(
                    "INSERT INTO _migrations (version, applied) VALUES (?, ?)",
                    params![version, basalt_schema::value::now_string()],
                )
            })
            .map_err(err)
            .and_then(|_| after_sql(conn, *version));
        match res {
            Ok(()) => conn.execute_batch("COMMIT").map_err(err)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    let schema = load_schema(conn)?;
    // Not a numbered migration: it is retried at each start until old case-duplicates of
    // an email are resolved (see `auth_identity`).
    crate::auth_identity::ensure_email_indexes(conn, &schema)?;
    Ok(schema)
}

/// Creates the default collections (inside a migration's transaction).
fn bootstrap(conn: &Connection, docs: &[&str]) -> Result<(), StoreError> {
    let mut schema = load_schema(conn)?;
    for doc in docs {
        let c = default_collection(doc, &schema)?;
        crate::collections::create_table(conn, &c)?;
        save_collection(conn, &c)?;
        let mut all: Vec<Collection> = schema.collections().iter().map(|c| (**c).clone()).collect();
        all.push(c);
        schema = Schema::new(all);
    }
    Ok(())
}

pub(crate) fn save_collection(conn: &Connection, c: &Collection) -> Result<(), StoreError> {
    let doc = serde_json::to_string(c).map_err(|e| StoreError::Internal(e.to_string()))?;
    let kind = kind_name(c);
    conn.execute(
        "INSERT INTO _collections (id, name, type, doc, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET name = ?2, type = ?3, doc = ?4, updated = ?6",
        params![c.id, c.name, kind, doc, c.created, c.updated],
    )
    .map_err(err)?;
    Ok(())
}

/// Reads every collection document, in creation order.
pub(crate) fn load_schema(conn: &Connection) -> Result<Schema, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT doc FROM _collections ORDER BY rowid")
        .map_err(err)?;
    let docs = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let collections = docs
        .iter()
        .map(|d| {
            serde_json::from_str(d)
                .map_err(|e| StoreError::Internal(format!("corrupt collection document: {e}")))
        })
        .collect::<Result<Vec<Collection>, _>>()?;
    Ok(Schema::new(collections))
}

pub(crate) fn get_param(conn: &Connection, key: &str) -> Result<Option<Value>, StoreError> {
    let raw: Option<String> = conn
        .query_row("SELECT value FROM _params WHERE key = ?", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(err)?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// The value stored under `key`, storing `value` first when there is none.
pub(crate) fn param_or_insert(
    conn: &Connection,
    key: &str,
    value: &Value,
) -> Result<Value, StoreError> {
    conn.execute(
        "INSERT INTO _params (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
        params![key, value.to_string()],
    )
    .map_err(err)?;
    Ok(get_param(conn, key)?.unwrap_or(Value::Null))
}

pub(crate) fn set_param(conn: &Connection, key: &str, value: &Value) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO _params (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        params![key, value.to_string()],
    )
    .map_err(err)?;
    Ok(())
}
