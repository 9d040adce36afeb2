//! What keeps auth identities apart: a record id belongs to one auth collection only, and
//! an email to one record of its collection, compared without case (`Alice@Example.com`
//! is `alice@example.com`; the stored spelling is kept).
//!
//! Rules compare `@request.auth.id` with relation values without naming a collection, so
//! a record of one auth collection sharing the id of another's would pass the other's
//! owner rules: ids are refused when any auth collection has them (as PocketBase does).
//! Emails are checked in the writer's transaction (so nothing races the check) and backed
//! by a unique `email COLLATE NOCASE` index per auth table, which also serves sign-in
//! look-ups. SQLite's NOCASE folds ASCII letters only.

use basalt_schema::error::FieldError;
use basalt_schema::{Collection, Schema, ValidationErrors};
use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;
use crate::records::err;
use crate::sql::Dialect;

fn q(ident: &str) -> String {
    Dialect::Sqlite.quote(ident)
}

/// The name of `c`'s case-insensitive email index; by collection id, so a rename keeps it.
fn email_index_name(c: &Collection) -> String {
    format!("_email_nocase_{}", c.id)
}

/// Creates `c`'s case-insensitive email index unless it exists. Existing rows that differ
/// only in case (stored before Basalt compared emails without case) make it fail: that is
/// logged and the collection goes on without the index, its new emails still checked by
/// [`check_email_free`], so a start-up or a schema change never fails over old data.
pub(crate) fn ensure_email_index(conn: &Connection, c: &Collection) -> Result<(), StoreError> {
    if !c.is_auth() || c.field("email").is_none() {
        return Ok(());
    }
    let sql = format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (\"email\" COLLATE NOCASE) WHERE \"email\" != ''",
        q(&email_index_name(c)),
        q(&c.name)
    );
    match conn.execute_batch(&sql) {
        Ok(()) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            let duplicates: i64 = conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM {} WHERE \"email\" != '' GROUP BY \"email\" COLLATE NOCASE HAVING COUNT(*) > 1)",
                        q(&c.name)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            tracing::warn!(
                collection = %c.name,
                duplicates,
                "emails differing only in case exist; the case-insensitive email index is \
                 not created until they are resolved (new duplicates are still refused)"
            );
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

/// [`ensure_email_index`] for every auth collection (run at each start: once duplicates
/// are resolved, the next start creates the index).
pub(crate) fn ensure_email_indexes(conn: &Connection, schema: &Schema) -> Result<(), StoreError> {
    for c in schema.collections().iter().filter(|c| c.is_auth()) {
        ensure_email_index(conn, c)?;
    }
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Refuses `email` when another record of `c` (not `own_id`) has it in any case.
pub(crate) fn check_email_free(
    conn: &Connection,
    c: &Collection,
    email: &str,
    own_id: &str,
) -> Result<(), StoreError> {
    if email.is_empty() {
        return Ok(());
    }
    let taken = conn
        .prepare_cached(&format!(
            "SELECT 1 FROM {} WHERE \"email\" = ?1 COLLATE NOCASE AND \"email\" != '' AND \"id\" != ?2 LIMIT 1",
            q(&c.name)
        ))
        .and_then(|mut s| s.query_row([email, own_id], |_| Ok(())).optional())
        .map_err(err)?;
    match taken {
        Some(()) => Err(email_taken()),
        None => Ok(()),
    }
}

/// Refuses a new auth record's `id` when a record of any other auth collection has it.
pub(crate) fn check_auth_id_free(
    conn: &Connection,
    schema: &Schema,
    c: &Collection,
    id: &str,
) -> Result<(), StoreError> {
    for other in schema
        .collections()
        .iter()
        .filter(|o| o.is_auth() && o.id != c.id)
    {
        let taken = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM {} WHERE \"id\" = ?",
                q(&other.name)
            ))
            .and_then(|mut s| s.query_row([id], |_| Ok(())).optional())
            .map_err(err)?;
        if taken.is_some() {
            return Err(auth_id_taken());
        }
    }
    Ok(())
}

/// A new auth record's id that another auth collection has.
pub(crate) fn auth_id_taken() -> StoreError {
    StoreError::Validation(ValidationErrors::single(
        "id",
        FieldError::new(
            "validation_invalid_auth_id",
            "Invalid or duplicated auth record id.",
        ),
    ))
}

/// An email another record of the collection has, in any case.
pub(crate) fn email_taken() -> StoreError {
    StoreError::Validation(ValidationErrors::single(
        "email",
        crate::records::not_unique(),
    ))
}
