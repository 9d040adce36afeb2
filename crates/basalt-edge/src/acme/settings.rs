//! An `acme` listener section validated into what the issuer runs with: durations parsed,
//! names checked, the store directory created and the CA root readable.

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName};

use crate::config::{AcmeChallenge, AcmeConfig};
use crate::error::EdgeError;

#[derive(Debug)]
pub struct AcmeSettings {
    pub directory: String,
    pub contact: Vec<String>,
    /// Lowercased; the first names the files in the store.
    pub domains: Vec<String>,
    pub store: PathBuf,
    pub renew_before: Duration,
    pub poll_interval: Duration,
    pub ca_root: Option<PathBuf>,
    pub challenge: AcmeChallenge,
}

impl AcmeSettings {
    pub fn validate(listen: &str, c: &AcmeConfig) -> Result<Self, EdgeError> {
        let bad = |m: String| EdgeError::Config(format!("listener {listen:?}: acme: {m}"));
        if !c.directory.starts_with("https://") {
            return Err(bad(format!(
                "directory {:?} must be an https:// URL",
                c.directory
            )));
        }
        if c.domains.is_empty() {
            return Err(bad("domains must name at least one DNS name".into()));
        }
        let mut domains = Vec::new();
        for d in &c.domains {
            let d = d.to_ascii_lowercase();
            if d.contains('*') {
                return Err(bad(format!(
                    "{d:?}: wildcard names need dns-01, which the edge does not answer"
                )));
            }
            if d.parse::<std::net::IpAddr>().is_ok() || DnsName::try_from(d.as_str()).is_err() {
                return Err(bad(format!("{d:?} is not a DNS name")));
            }
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        for m in &c.contact {
            if !m.starts_with("mailto:") {
                return Err(bad(format!("contact {m:?} must start with mailto:")));
            }
        }
        let renew_before = parse_duration(&c.renew_before)
            .ok_or_else(|| bad(format!("renew_before {:?} is not like 30d", c.renew_before)))?;
        let poll_interval = parse_duration(&c.poll_interval)
            .filter(|d| *d >= Duration::from_millis(100))
            .ok_or_else(|| {
                bad(format!(
                    "poll_interval {:?} must be a duration of at least 100ms, like 60s",
                    c.poll_interval
                ))
            })?;
        if c.store.as_os_str().is_empty() {
            return Err(bad("store must be a directory path".into()));
        }
        create_private_dir(&c.store)
            .map_err(|e| bad(format!("store {}: {e}", c.store.display())))?;
        if let Some(root) = &c.ca_root {
            let first = CertificateDer::pem_file_iter(root)
                .map_err(|e| bad(format!("ca_root {}: {e}", root.display())))?
                .next();
            if !matches!(first, Some(Ok(_))) {
                return Err(bad(format!(
                    "ca_root {}: no PEM certificate in the file",
                    root.display()
                )));
            }
        }
        Ok(Self {
            directory: c.directory.clone(),
            contact: c.contact.clone(),
            domains,
            store: c.store.clone(),
            renew_before,
            poll_interval,
            ca_root: c.ca_root.clone(),
            challenge: c.challenge,
        })
    }

    /// The name the store's files and the issuance metrics go by.
    pub fn primary(&self) -> &str {
        &self.domains[0]
    }
}

fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

/// `30d`, `12h`, `15m`, `90s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(store: &std::path::Path) -> AcmeConfig {
        AcmeConfig {
            directory: "https://127.0.0.1:14000/dir".into(),
            contact: vec!["mailto:ops@example.com".into()],
            domains: vec!["Example.COM".into(), "www.example.com".into()],
            store: store.to_path_buf(),
            renew_before: "30d".into(),
            challenge: Default::default(),
            ca_root: None,
            poll_interval: "60s".into(),
        }
    }

    #[test]
    fn durations_parse_with_units_and_refuse_the_rest() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "30", "d", "3x", "-1d", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_section_creates_its_private_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("certs");
        let s = AcmeSettings::validate("x", &cfg(&store)).unwrap();
        assert_eq!(s.domains, ["example.com", "www.example.com"]);
        assert_eq!(s.primary(), "example.com");
        assert!(store.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&store).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn invalid_sections_are_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        type Edit = Box<dyn Fn(&mut AcmeConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.directory = "http://ca/dir".into()),
                "https://",
            ),
            (Box::new(|c| c.domains.clear()), "at least one"),
            (
                Box::new(|c| c.domains = vec!["*.example.com".into()]),
                "wildcard",
            ),
            (
                Box::new(|c| c.domains = vec!["127.0.0.1".into()]),
                "not a DNS name",
            ),
            (
                Box::new(|c| c.domains = vec!["bad name".into()]),
                "not a DNS name",
            ),
            (
                Box::new(|c| c.contact = vec!["ops@example.com".into()]),
                "mailto:",
            ),
            (Box::new(|c| c.renew_before = "soon".into()), "renew_before"),
            (
                Box::new(|c| c.poll_interval = "10ms".into()),
                "poll_interval",
            ),
            (
                Box::new(|c| c.ca_root = Some("/nonexistent/root.pem".into())),
                "ca_root",
            ),
        ];
        for (edit, expect) in cases {
            let mut c = cfg(dir.path());
            edit(&mut c);
            let e = AcmeSettings::validate("127.0.0.1:1", &c)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{e} should mention {expect}");
            assert!(e.contains("127.0.0.1:1"), "{e}");
        }
    }
}
