//! One ACME exchange (RFC 8555): load or create the account, place an order, answer its
//! HTTP-01 challenges, finalize and download the chain.

use std::time::Duration;

use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::AcmeIssuer;
use super::store;
use crate::config::AcmeChallenge;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("acme: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("store: {0}")]
    Store(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

/// The account file: credentials are only reused with the directory they were made for.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// A new chain and key, both PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

fn builder(issuer: &AcmeIssuer) -> Result<AccountBuilder, OrderError> {
    Ok(match &issuer.settings.ca_root {
        Some(root) => Account::builder_with_root(root)?,
        None => Account::builder()?,
    })
}

async fn new_account(issuer: &AcmeIssuer) -> Result<Account, OrderError> {
    let s = &issuer.settings;
    let contact: Vec<&str> = s.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(issuer)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            s.directory.clone(),
            None,
        )
        .await?;
    let stored = serde_json::to_vec(&StoredAccount {
        directory: s.directory.clone(),
        credentials,
    })
    .map_err(|e| OrderError::Refused(format!("account: {e}")))?;
    store::write_atomic(&store::account_file(&s.store), &stored, true)?;
    tracing::info!(directory = %s.directory, "acme account created");
    Ok(account)
}

async fn stored_account(issuer: &AcmeIssuer) -> Option<Account> {
    let s = &issuer.settings;
    let bytes = std::fs::read(store::account_file(&s.store)).ok()?;
    let stored: StoredAccount = serde_json::from_slice(&bytes).ok()?;
    if stored.directory != s.directory {
        return None;
    }
    builder(issuer)
        .ok()?
        .from_credentials(stored.credentials)
        .await
        .ok()
}

/// Runs one order to the end. The caller holds the lease.
pub async fn issue(issuer: &AcmeIssuer) -> Result<Issued, OrderError> {
    let s = &issuer.settings;
    let identifiers: Vec<Identifier> = s.domains.iter().cloned().map(Identifier::Dns).collect();
    let new_order = NewOrder::new(&identifiers);
    issuer.metrics.acme_order(s.primary());
    let mut order = match stored_account(issuer).await {
        Some(account) => match account.new_order(&new_order).await {
            Ok(o) => o,
            // The CA may have forgotten the account (a test CA restarted, an account
            // deactivated): one new account, then give up to the backoff.
            Err(e) => {
                tracing::warn!(error = %e, "acme order refused for the stored account; creating a new account");
                new_account(issuer).await?.new_order(&new_order).await?
            }
        },
        None => new_account(issuer).await?.new_order(&new_order).await?,
    };
    let mut answers = ChallengeAnswers(issuer, Vec::new(), Vec::new());
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(OrderError::Refused(format!("authorization is {other:?}")));
            }
        }
        match s.challenge {
            AcmeChallenge::Http01 => {
                let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                    OrderError::Refused("the CA offers no http-01 challenge".into())
                })?;
                let token = challenge.token.clone();
                issuer.put_challenge(&token, challenge.key_authorization().as_str());
                answers.1.push(token);
                challenge.set_ready().await?;
            }
            AcmeChallenge::TlsAlpn01 => {
                let mut challenge = authz.challenge(ChallengeType::TlsAlpn01).ok_or_else(|| {
                    OrderError::Refused("the CA offers no tls-alpn-01 challenge".into())
                })?;
                let name = challenge.identifier().to_string();
                issuer
                    .put_alpn_challenge(&name, challenge.key_authorization().digest().as_ref())
                    .map_err(OrderError::Refused)?;
                answers.2.push(name);
                challenge.set_ready().await?;
            }
        }
    }
    let patience = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&patience).await?;
    if status != OrderStatus::Ready {
        return Err(OrderError::Refused(format!(
            "order is {status:?} after its challenges"
        )));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&patience).await?;
    Ok(Issued { chain_pem, key_pem })
}

/// Withdraws the challenge answers (HTTP-01 tokens, TLS-ALPN-01 names) when the order is
/// over, whatever its outcome.
struct ChallengeAnswers<'a>(&'a AcmeIssuer, Vec<String>, Vec<String>);

impl Drop for ChallengeAnswers<'_> {
    fn drop(&mut self) {
        for t in &self.1 {
            self.0.remove_challenge(t);
        }
        for n in &self.2 {
            self.0.remove_alpn_challenge(n);
        }
    }
}
