//! `basalt superuser upsert|create|update|delete EMAIL [PASSWORD]`.

use std::sync::Arc;

use anyhow::{Context, bail};
use basalt_schema::RequestInfo;
use basalt_store::{Access, WriteOp};
use clap::Subcommand;
use serde_json::{Map, Value};

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Creates the superuser, or sets the password of an existing one.
    Upsert { email: String, password: String },
    /// Creates a new superuser.
    Create { email: String, password: String },
    /// Sets an existing superuser's password.
    Update { email: String, password: String },
    /// Deletes a superuser.
    Delete { email: String },
}

pub async fn run(cfg: &Config, action: Action) -> anyhow::Result<()> {
    let store = crate::serve::open_store(cfg).await?;
    let res = apply(&store, action).await;
    store.close().await;
    res
}

async fn apply(store: &basalt_store::Store, action: Action) -> anyhow::Result<()> {
    let c = store
        .schema()
        .by_name("_superusers")
        .cloned()
        .context("the _superusers collection is missing")?;
    let (email, password) = match &action {
        Action::Upsert { email, password }
        | Action::Create { email, password }
        | Action::Update { email, password } => (email.clone(), Some(password.clone())),
        Action::Delete { email } => (email.clone(), None),
    };
    // Emails match without case; an existing superuser keeps its stored spelling.
    let existing = store.find_auth_record(&c, "email", &email).await?;
    let id = existing
        .as_ref()
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut input = Map::new();
    if let Some(pw) = &password {
        let field = c.field("password").context("no password field")?;
        if let Err(e) = basalt_schema::record::validate_password(field, pw) {
            bail!("password: {}", e.message);
        }
        let pw = pw.clone();
        let hash = tokio::task::spawn_blocking(move || basalt_auth::hash_password(&pw)).await??;
        input.insert("password".into(), Value::String(hash));
    }
    if id.is_none() {
        input.insert("email".into(), Value::String(email.clone()));
    }
    let op = match (action, id) {
        (Action::Create { .. }, Some(_)) => bail!("superuser {email} already exists"),
        (Action::Update { .. } | Action::Delete { .. }, None) => {
            bail!("superuser {email} not found")
        }
        (Action::Delete { .. }, Some(id)) => WriteOp::Delete {
            collection: c.clone(),
            id,
            access: Access::Unrestricted,
        },
        (_, Some(id)) => {
            // A new password signs out every session.
            input.insert(
                "tokenKey".into(),
                Value::String(basalt_schema::id::random_id(50)),
            );
            WriteOp::Update {
                uploads: Vec::new(),
                collection: c.clone(),
                id,
                input,
                access: Access::Unrestricted,
            }
        }
        (_, None) => WriteOp::Create {
            uploads: Vec::new(),
            collection: c.clone(),
            input,
            access: Access::Unrestricted,
        },
    };
    match store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
    {
        Ok(_) => {
            eprintln!("superuser {email} saved");
            Ok(())
        }
        Err(basalt_store::StoreError::Validation(e)) => bail!("invalid superuser: {e}"),
        Err(e) => Err(e.into()),
    }
}
