//! TLS termination: certificates loaded from PEM files and chosen by SNI, ALPN offering
//! HTTP/2 and HTTP/1.1, rustls with the ring provider.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::acme::{ACME_TLS_ALPN, AcmeIssuer, AlpnCerts, CertSlot};
use crate::config::AcmeChallenge;
use crate::config::CertificateConfig;
use crate::error::EdgeError;

#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored under `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// ACME certificates by exact name, swapped in place on renewal.
    acme: HashMap<String, CertSlot>,
    /// Served to clients without SNI when no file certificate is the default.
    acme_default: Option<CertSlot>,
    /// TLS-ALPN-01 validation certificates, served only to `acme-tls/1` handshakes.
    acme_alpn: Option<AlpnCerts>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return self
                .default
                .clone()
                .or_else(|| self.acme_default.as_ref().and_then(|s| s.load_full()));
        };
        let name = name.to_ascii_lowercase();
        if let Some(alpn) = &self.acme_alpn
            && hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
        {
            return alpn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
        }
        if let Some(k) = self.acme.get(&name).and_then(|s| s.load_full()) {
            return Some(k);
        }
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some(dot) = name.find('.')
            && let Some(k) = self.wildcard.get(&name[dot..])
        {
            return Some(k.clone());
        }
        self.default
            .clone()
            .or_else(|| self.acme_default.as_ref().and_then(|s| s.load_full()))
    }
}

/// Builds the server config for one listener's file certificates and its ACME issuer's.
pub fn server_config_with_acme(
    certs: &[CertificateConfig],
    acme: Option<&AcmeIssuer>,
) -> Result<Arc<ServerConfig>, EdgeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default: None,
        acme: HashMap::new(),
        acme_default: acme.map(|i| i.slot.clone()),
        acme_alpn: acme
            .filter(|i| i.settings.challenge == AcmeChallenge::TlsAlpn01)
            .map(|i| i.alpn_certs.clone()),
    };
    let offers_acme_alpn = resolver.acme_alpn.is_some();
    if let Some(i) = acme {
        for name in i.domains() {
            resolver.acme.insert(name.clone(), i.slot.clone());
        }
    }
    for c in certs {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
            .map_err(|e| EdgeError::Tls(format!("{}: {e}", c.cert.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| EdgeError::Tls(format!("{}: {e}", c.cert.display())))?;
        if chain.is_empty() {
            return Err(EdgeError::Tls(format!(
                "{}: no certificate in the file",
                c.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&c.key)
            .map_err(|e| EdgeError::Tls(format!("{}: {e}", c.key.display())))?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| EdgeError::Tls(format!("{}: {e}", c.key.display())))?;
        let certified = Arc::new(CertifiedKey::new(chain, signing));
        certified
            .keys_match()
            .map_err(|e| EdgeError::Tls(format!("{}: {e}", c.cert.display())))?;
        if c.server_names.is_empty() {
            resolver.default = Some(certified.clone());
        }
        for name in &c.server_names {
            let name = name.to_ascii_lowercase();
            if name == "*" {
                resolver.default = Some(certified.clone());
            } else if let Some(suffix) = name.strip_prefix('*') {
                resolver
                    .wildcard
                    .insert(suffix.to_string(), certified.clone());
            } else {
                resolver.exact.insert(name, certified.clone());
            }
        }
    }
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EdgeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if offers_acme_alpn {
        cfg.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(cfg))
}
