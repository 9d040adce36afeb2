//! The redirect URL a client says it used: well-formed, no credentials in it, and, when
//! the provider lists its redirect URLs, exactly one of them (no prefix or host tricks).

use crate::{OAuth2Error, Provider};

/// Accepts `redirect` for `p` or says why not.
pub fn check_redirect_url(p: &Provider, redirect: &str) -> Result<(), OAuth2Error> {
    let bad = |why: &str| Err(OAuth2Error::RedirectUrl(why.to_string()));
    if redirect.is_empty() {
        return bad("missing");
    }
    let Ok(u) = url::Url::parse(redirect) else {
        return bad("not an absolute url");
    };
    if !matches!(u.scheme(), "http" | "https") {
        return bad("scheme must be http or https");
    }
    // `https://legit@attacker` names the host `attacker`: never accept userinfo.
    if !u.username().is_empty() || u.password().is_some() {
        return bad("credentials in the url");
    }
    if u.fragment().is_some() {
        return bad("fragment in the url");
    }
    if !p.redirect_urls.is_empty() && !p.redirect_urls.iter().any(|r| r == redirect) {
        return bad("not one of the provider's redirectURLs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::collection_oauth2::OAuth2Provider;

    fn provider(allowed: &[&str]) -> Provider {
        let mut cfg = OAuth2Provider {
            name: "github".into(),
            client_id: "c".into(),
            client_secret: Some("s".into()),
            ..Default::default()
        };
        if !allowed.is_empty() {
            cfg.extra
                .insert("redirectURLs".into(), serde_json::json!(allowed));
        }
        Provider::resolve(&cfg).unwrap()
    }

    #[test]
    fn redirect_tricks_are_refused() {
        let p = provider(&["https://app.example/docs"]);
        assert!(check_redirect_url(&p, "https://app.example/docs").is_ok());
        for bad in [
            "https://app.example/docss",
            "https://app.example/docs/",
            "https://app.example/docs?x=1",
            "https://app.example.attacker.io/docs",
            "https://app.example@attacker.io/docs",
            "http://app.example/docs",
            "https://APP.example/docs#frag",
            "javascript:alert(1)",
            "/docs",
            "",
        ] {
            assert!(check_redirect_url(&p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_list_only_well_formed_urls_pass() {
        let p = provider(&[]);
        assert!(check_redirect_url(&p, "http://127.0.0.1:8090/api/oauth2-redirect").is_ok());
        assert!(check_redirect_url(&p, "https://legit.example@attacker.io/cb").is_err());
        assert!(check_redirect_url(&p, "data:text/html,x").is_err());
    }
}
