//! Which record an external identity signs in as, and the `_externalAuths` link between
//! them, written in one transaction.
//!
//! Account linking must not be hijackable: an existing account is found by email only when
//! the provider asserted the email is verified (`AuthUser::email` is empty otherwise); an
//! unverified account reached through OAuth2 loses its password, its sessions (new token
//! key) and every earlier link, because whoever registered it never proved the address; and
//! a new account may only take the provider-verified email.

use std::sync::Arc;

use basalt_oauth2::AuthUser;
use basalt_schema::filter::parse_with_params;
use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, FieldError, RequestInfo, RuleSlot, ValidationErrors};
use basalt_store::{Access, Author, ListQuery, Record, WriteOp};
use serde_json::{Map, Value, json};

use crate::error::{ServiceError, ServiceResult};
use crate::records::{Action, Target, access_for, load_unrestricted, prepare_auth_input, rule};
use crate::{Caller, Services};

const FAILED: &str = "Failed to authenticate.";

fn store_err(e: basalt_store::StoreError) -> ServiceError {
    ServiceError::from_store(e, FAILED)
}

fn s<'a>(r: &'a Record, key: &str) -> &'a str {
    r.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The `_externalAuths` collection (system migration 3).
fn external_auths(svc: &Services) -> ServiceResult<Arc<Collection>> {
    svc.store
        .schema()
        .find("_externalAuths")
        .cloned()
        .ok_or_else(ServiceError::internal)
}

async fn find(
    svc: &Services,
    c: &Arc<Collection>,
    filter: &str,
    params: Value,
    limit: u64,
) -> ServiceResult<Vec<Record>> {
    let params: Map<String, Value> = serde_json::from_value(params).unwrap_or_default();
    let filter = parse_with_params(filter, &params).map_err(|e| {
        tracing::error!(error = %e, "oauth2 link filter");
        ServiceError::internal()
    })?;
    let page = svc
        .store
        .list_records(ListQuery {
            collection: c.clone(),
            filter: Some(filter),
            access: Access::Unrestricted,
            sort: vec![],
            author: Author::Server,
            page: 1,
            per_page: limit,
            skip_total: true,
            request: Arc::new(RequestInfo::default()),
        })
        .await
        .map_err(store_err)?;
    Ok(page.items)
}

async fn record_by_id(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
) -> ServiceResult<Option<Record>> {
    load_unrestricted(svc, c, id, FAILED).await
}

async fn random_password_hash(svc: &Services) -> ServiceResult<String> {
    svc.passwords.hash(basalt_schema::id::random_id(40)).await
}

fn link_op(
    ea: &Arc<Collection>,
    c: &Collection,
    record_id: &str,
    provider: &str,
    user: &AuthUser,
) -> WriteOp {
    let input: Map<String, Value> = serde_json::from_value(json!({
        "collectionRef": c.id,
        "recordRef": record_id,
        "provider": provider,
        "providerId": user.id,
    }))
    .unwrap_or_default();
    WriteOp::Create {
        uploads: Vec::new(),
        collection: ea.clone(),
        input,
        access: Access::Unrestricted,
    }
}

/// Signs `user` in: returns the record and whether it was created.
pub(super) async fn sign_in(
    svc: &Services,
    c: &Arc<Collection>,
    provider: &str,
    user: &AuthUser,
    create_data: Map<String, Value>,
    signed_in: Option<&AuthInfo>,
) -> ServiceResult<(Record, bool)> {
    let ea = external_auths(svc)?;
    let link = find(
        svc,
        &ea,
        "collectionRef = {:c} && provider = {:p} && providerId = {:id}",
        json!({"c": c.id, "p": provider, "id": user.id}),
        1,
    )
    .await?
    .into_iter()
    .next();
    let mut existing = None;
    if let Some(l) = &link {
        existing = record_by_id(svc, c, s(l, "recordRef")).await?;
    }
    let signed_in_id = signed_in.and_then(|a| a.record.get("id").and_then(Value::as_str));
    if existing.is_none()
        && let Some(id) = signed_in_id
    {
        existing = record_by_id(svc, c, id).await?;
    }
    if existing.is_none() && !user.email.is_empty() {
        existing = svc
            .store
            .find_auth_record(c, "email", &user.email)
            .await
            .map_err(store_err)?;
    }
    let record = match existing {
        None => return create(svc, c, &ea, provider, user, create_data, link).await,
        Some(r) => r,
    };
    let id = s(&record, "id").to_string();
    let verified = record
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut ops = Vec::new();
    let mut update = Map::new();
    let mut relink = link.as_ref().is_none_or(|l| s(l, "recordRef") != id);
    if let Some(l) = link.as_ref().filter(|l| s(l, "recordRef") != id) {
        // The link names a deleted record: it makes way for the new one.
        ops.push(WriteOp::Delete {
            collection: ea.clone(),
            id: s(l, "id").to_string(),
            access: Access::Unrestricted,
        });
    }
    if !verified {
        if signed_in_id != Some(id.as_str()) {
            // Whoever registered this address never proved it: their password and
            // sessions must not survive the owner's sign-in.
            update.insert(
                "password".into(),
                Value::String(random_password_hash(svc).await?),
            );
            update.insert(
                "tokenKey".into(),
                Value::String(basalt_schema::id::random_id(50)),
            );
        }
        // At most one link on an unverified account: earlier ones may be an attacker's.
        for old in find(
            svc,
            &ea,
            "collectionRef = {:c} && recordRef = {:r}",
            json!({"c": c.id, "r": id}),
            1000,
        )
        .await?
        {
            ops.push(WriteOp::Delete {
                collection: ea.clone(),
                id: s(&old, "id").to_string(),
                access: Access::Unrestricted,
            });
        }
        relink = true;
    }
    let mut email = s(&record, "email").to_string();
    if email.is_empty() && !user.email.is_empty() {
        email = user.email.clone();
        update.insert("email".into(), Value::String(email.clone()));
    }
    if !verified
        && (email.is_empty() || (!user.email.is_empty() && email.eq_ignore_ascii_case(&user.email)))
    {
        update.insert("verified".into(), Value::Bool(true));
    }
    let updating = !update.is_empty();
    if updating {
        ops.insert(
            0,
            WriteOp::Update {
                uploads: Vec::new(),
                collection: c.clone(),
                id: id.clone(),
                input: update,
                access: Access::Unrestricted,
            },
        );
    }
    if relink {
        ops.push(link_op(&ea, c, &id, provider, user));
    }
    if ops.is_empty() {
        return Ok((record, false));
    }
    let out = svc
        .store
        .write(ops, Arc::new(oauth2_request(Map::new())))
        .await
        .map_err(store_err)?;
    let record = match out.into_iter().next().flatten() {
        Some(r) if updating => r,
        _ => record,
    };
    Ok((record, false))
}

fn oauth2_request(body: Map<String, Value>) -> RequestInfo {
    RequestInfo {
        body,
        method: "POST".into(),
        context: "oauth2".into(),
        ..Default::default()
    }
}

/// A new record for `user`, with `createData` applied under the collection's create rule.
async fn create(
    svc: &Services,
    c: &Arc<Collection>,
    ea: &Arc<Collection>,
    provider: &str,
    user: &AuthUser,
    mut payload: Map<String, Value>,
    stale_link: Option<Record>,
) -> ServiceResult<(Record, bool)> {
    if c.is_superusers() {
        return Err(ServiceError::bad_request(FAILED));
    }
    let access = access_for(&rule(svc, c, Action::Create), &Caller(None)).ok_or_else(|| {
        ServiceError::forbidden("OAuth2 sign-up is not allowed for this collection.")
    })?;
    let given = payload
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !given.is_empty() && !given.eq_ignore_ascii_case(&user.email) {
        return Err(ServiceError::validation(
            FAILED,
            &ValidationErrors::single(
                "email",
                FieldError::new(
                    "validation_oauth2_email_mismatch",
                    "Must be the email verified by the OAuth2 provider.",
                ),
            ),
        ));
    }
    payload.insert("email".into(), Value::String(user.email.clone()));
    let mapped = c
        .auth
        .as_ref()
        .map(|a| a.oauth2.mapped_fields.clone())
        .unwrap_or_default();
    for (field, value) in [
        (&mapped.id, &user.id),
        (&mapped.name, &user.name),
        (&mapped.username, &user.username),
        (&mapped.avatar_url, &user.avatar_url),
    ] {
        if field.is_empty() || value.is_empty() || payload.contains_key(field.as_str()) {
            continue;
        }
        if field == &mapped.avatar_url && is_file_field(c, field) {
            // A file field gets the image itself, downloaded below.
            continue;
        }
        if field == &mapped.username
            && svc
                .store
                .find_auth_record(c, field, value)
                .await
                .map_err(store_err)?
                .is_some()
        {
            // A taken username is left for the user to choose, not a failed sign-up.
            continue;
        }
        payload.insert(field.clone(), Value::String(value.clone()));
    }
    prepare_auth_input(svc, c, &mut payload, &Caller(None), Target::Create).await?;
    if !payload.contains_key("password") {
        payload.insert(
            "password".into(),
            Value::String(random_password_hash(svc).await?),
        );
    }
    // Verified exactly when the record's email is the provider-verified one.
    payload.insert("verified".into(), Value::Bool(!user.email.is_empty()));
    let id = match payload.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => basalt_schema::id::random_id(15),
    };
    payload.insert("id".into(), Value::String(id.clone()));
    let req = Arc::new(oauth2_request(payload.clone()));
    let stored = avatar(svc, c, &mapped.avatar_url, user, &id, &mut payload).await;
    let mut ops = Vec::new();
    if let Some(l) = stale_link {
        // The link pointed to a deleted record.
        ops.push(WriteOp::Delete {
            collection: ea.clone(),
            id: s(&l, "id").to_string(),
            access: Access::Unrestricted,
        });
    }
    let at = ops.len();
    ops.push(WriteOp::Create {
        uploads: stored.names.clone(),
        collection: c.clone(),
        input: payload,
        access,
    });
    ops.push(link_op(ea, c, &id, provider, user));
    let out = match crate::files::write(svc, ops, req).await {
        Ok(out) => out,
        Err(e) => {
            stored.discard(svc).await;
            // A batch error wraps the failing operation's own error.
            return Err(match e {
                basalt_store::StoreError::Batch { source, .. } => store_err(*source),
                other => store_err(other),
            });
        }
    };
    let record = out
        .into_iter()
        .nth(at)
        .flatten()
        .ok_or_else(ServiceError::internal)?;
    Ok((record, true))
}

/// Whether the collection's auth rule admits `record` (as for password sign-in).
pub(super) async fn auth_rule_admits(
    svc: &Services,
    c: &Arc<Collection>,
    record: &Record,
) -> ServiceResult<bool> {
    let rules = svc.store.schema().rules(&c.id).map(|r| r.auth.clone());
    match rules {
        Some(RuleSlot::Expr(e)) => Ok(svc
            .store
            .get_record(
                c,
                s(record, "id"),
                Access::Rule(e),
                Arc::new(RequestInfo::default()),
            )
            .await
            .map_err(store_err)?
            .is_some()),
        Some(RuleSlot::Locked) => Ok(false),
        _ => Ok(true),
    }
}

fn is_file_field(c: &Collection, name: &str) -> bool {
    c.field(name)
        .is_some_and(|f| matches!(f.kind, basalt_schema::FieldKind::File(_)))
}

/// PocketBase's `mappedFields.avatarURL` on a file field: the provider's avatar is
/// downloaded (bounded by the field's size limit and the OAuth2 client's timeout), then
/// checked and stored like an upload for the new record `id`. An avatar that cannot be
/// fetched or fails the field's checks is left out; the sign-up goes on without it.
async fn avatar(
    svc: &Services,
    c: &Collection,
    field: &str,
    user: &AuthUser,
    id: &str,
    payload: &mut Map<String, Value>,
) -> crate::files::Stored {
    let none = crate::files::Stored::default();
    let Some(basalt_schema::FieldKind::File(o)) = c.field(field).map(|f| &f.kind) else {
        return none;
    };
    if user.avatar_url.is_empty() || payload.contains_key(field) {
        return none;
    }
    let bytes = match svc
        .oauth2
        .download_avatar(&user.avatar_url, o.max_file_size())
        .await
    {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(error = %e, "oauth2 avatar not stored");
            return none;
        }
    };
    let chunks =
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes))]);
    let up = match crate::files::spool_unchecked(svc, field, "avatar", chunks, |e| match e {}).await
    {
        Ok(up) => up,
        Err(_) => return none,
    };
    match crate::files::store(svc, c, id, payload, vec![up], FAILED).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::info!(error = %e.message, "oauth2 avatar refused by its field");
            none
        }
    }
}
