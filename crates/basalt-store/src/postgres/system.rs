//! PostgreSQL's system tables and default collections: created in one transaction on a
//! fresh database (under the schema advisory lock, so nodes starting together create them
//! once), recognised by their version on one set up before.

use basalt_schema::{Collection, Schema};
use tokio_postgres::Transaction;

use super::{SCHEMA_LOCK, pg_err};
use crate::StoreError;
use crate::sql::pg::SUPPORT_SQL;

/// The system version this build creates and understands.
const VERSION: i64 = 1;

/// The system tables, in their current shape (SQLite reached it through migrations 1-5).
/// `_changes.seq` is a `bigserial`; a collection document is kept as the text it was
/// saved as.
const SYSTEM_SQL: &str = r#"
CREATE TABLE _collections (
  id text COLLATE "C" PRIMARY KEY NOT NULL,
  name text COLLATE "C" NOT NULL,
  type text NOT NULL,
  doc text NOT NULL,
  created text NOT NULL DEFAULT '',
  updated text NOT NULL DEFAULT '',
  "_rowid" bigint GENERATED ALWAYS AS IDENTITY UNIQUE NOT NULL);
CREATE UNIQUE INDEX _collections_name ON _collections (lower(name));
CREATE TABLE _params (key text COLLATE "C" PRIMARY KEY NOT NULL, value jsonb);
CREATE TABLE _changes (
  seq bigserial PRIMARY KEY,
  collection_id text NOT NULL,
  record_id text NOT NULL,
  action text NOT NULL,
  record jsonb,
  created text NOT NULL);
"#;

/// Brings the system tables up to this build's version and returns the schema snapshot.
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> Result<Schema, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS _migrations (version bigint PRIMARY KEY, applied text NOT NULL)",
    )
    .await
    .map_err(pg_err)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM _migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    if current > VERSION {
        return Err(StoreError::Internal(format!(
            "the database was set up by a newer Basalt (system version {current}; this one \
             knows {VERSION})"
        )));
    }
    if current < VERSION {
        tx.batch_execute(SYSTEM_SQL).await.map_err(pg_err)?;
        let mut schema = Schema::new(vec![]);
        for doc in crate::system::DEFAULT_COLLECTIONS {
            let c = crate::system::default_collection(doc, &schema)?;
            for stmt in crate::pg_schema::create_table(&c)? {
                tx.batch_execute(&stmt).await.map_err(pg_err)?;
            }
            save_collection(&tx, &c).await?;
            let mut all: Vec<Collection> =
                schema.collections().iter().map(|c| (**c).clone()).collect();
            all.push(c);
            schema = Schema::new(all);
        }
        tx.execute(
            "INSERT INTO _migrations (version, applied) VALUES ($1, $2)",
            &[&VERSION, &basalt_schema::value::now_string()],
        )
        .await
        .map_err(pg_err)?;
    }
    // On every start, not only at creation: a database set up by an older Basalt gets the
    // functions added since (each statement is idempotent).
    tx.batch_execute(SUPPORT_SQL).await.map_err(pg_err)?;
    let schema = load_schema(&tx).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(schema)
}

pub(super) async fn save_collection(
    client: &Transaction<'_>,
    c: &Collection,
) -> Result<(), StoreError> {
    let doc = serde_json::to_string(c).map_err(|e| StoreError::Internal(e.to_string()))?;
    let kind = crate::system::kind_name(c);
    client
        .execute(
            "INSERT INTO _collections (id, name, type, doc, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             name = EXCLUDED.name, type = EXCLUDED.type, doc = EXCLUDED.doc, \
             updated = EXCLUDED.updated",
            &[&c.id, &c.name, &kind, &doc, &c.created, &c.updated],
        )
        .await
        .map_err(pg_err)?;
    Ok(())
}

/// Every collection document, in creation order.
pub(super) async fn load_schema(client: &Transaction<'_>) -> Result<Schema, StoreError> {
    let rows = client
        .query("SELECT doc FROM _collections ORDER BY \"_rowid\"", &[])
        .await
        .map_err(pg_err)?;
    let collections = rows
        .iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| StoreError::Internal(format!("corrupt collection document: {e}")))
        })
        .collect::<Result<Vec<Collection>, _>>()?;
    Ok(Schema::new(collections))
}
