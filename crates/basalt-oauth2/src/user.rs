//! Each provider's user, read into one [`AuthUser`]. The email is kept only when the
//! provider asserts it is verified: it is what accounts are linked by.

use serde_json::{Map, Value};

use crate::{OAuth2Error, Preset, Provider};

/// The external identity, as PocketBase's `meta` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthUser {
    /// The provider's stable id for the user (`sub`, or a numeric id as text).
    pub id: String,
    pub name: String,
    pub username: String,
    /// Empty unless the provider asserts the address is verified.
    pub email: String,
    pub avatar_url: String,
    pub raw_user: Value,
    pub access_token: String,
    pub refresh_token: String,
    /// `2006-01-02 15:04:05.000Z`, or empty when the provider gave no lifetime.
    pub expiry: String,
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Numeric ids (GitHub, GitLab) as their decimal text; strings as they are.
fn id_text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `true`, or the strings Apple and some OIDC providers send instead.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// Maps `raw` (the user-info document, or the id_token claims where the identity comes
/// from there) to an [`AuthUser`]. `id_claims` are the verified id_token claims, if any;
/// `github_emails` is GitHub's `/user/emails` list.
pub fn map_user(
    p: &Provider,
    raw: &Value,
    id_claims: Option<&Map<String, Value>>,
    github_emails: Option<&Value>,
) -> Result<AuthUser, OAuth2Error> {
    let mut u = AuthUser {
        raw_user: raw.clone(),
        ..Default::default()
    };
    match p.preset {
        Preset::Oidc | Preset::Google | Preset::Apple => {
            u.id = s(raw, "sub").to_string();
            u.name = s(raw, "name").to_string();
            u.username = s(raw, "preferred_username").to_string();
            u.avatar_url = s(raw, "picture").to_string();
            if truthy(raw.get("email_verified")) {
                u.email = s(raw, "email").to_string();
            }
        }
        Preset::Github => {
            u.id = id_text(raw, "id");
            u.name = s(raw, "name").to_string();
            u.username = s(raw, "login").to_string();
            u.avatar_url = s(raw, "avatar_url").to_string();
            u.email = github_emails
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| truthy(e.get("primary")) && truthy(e.get("verified")))
                .map(|e| s(e, "email").to_string())
                .unwrap_or_default();
        }
        Preset::Gitlab => {
            u.id = id_text(raw, "id");
            u.name = s(raw, "name").to_string();
            u.username = s(raw, "username").to_string();
            u.avatar_url = s(raw, "avatar_url").to_string();
            let confirmed = chrono::DateTime::parse_from_rfc3339(s(raw, "confirmed_at")).is_ok();
            if confirmed {
                u.email = s(raw, "email").to_string();
            }
        }
        Preset::Discord => {
            u.id = s(raw, "id").to_string();
            u.username = s(raw, "username").to_string();
            u.name = match s(raw, "global_name") {
                "" => match s(raw, "discriminator") {
                    "" | "0" => u.username.clone(),
                    d => format!("{}#{d}", u.username),
                },
                g => g.to_string(),
            };
            let avatar = s(raw, "avatar");
            if !avatar.is_empty() {
                u.avatar_url = format!("https://cdn.discordapp.com/avatars/{}/{avatar}.png", u.id);
            }
            if truthy(raw.get("verified")) {
                u.email = s(raw, "email").to_string();
            }
        }
        Preset::Microsoft => {
            u.id = s(raw, "id").to_string();
            u.name = s(raw, "displayName").to_string();
            // Graph's `mail` is whatever the tenant typed in, never verified: an email is
            // only taken from the id_token claims the operator chose to trust.
            u.email = microsoft_email(p.config.extra_str("idTokenEmailClaim"), id_claims);
        }
    }
    if u.id.is_empty() {
        return Err(OAuth2Error::UserInfo(
            "the provider returned no user id".into(),
        ));
    }
    Ok(u)
}

fn microsoft_email(mode: &str, claims: Option<&Map<String, Value>>) -> String {
    let Some(c) = claims else {
        return String::new();
    };
    let get = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let primary = || get("verified_primary_email");
    let edov = || {
        if truthy(c.get("xms_edov")) {
            get("email")
        } else {
            String::new()
        }
    };
    match mode {
        "verified_primary_email" => primary(),
        "email_and_xms_edov" => edov(),
        "any_verified" => {
            let p = primary();
            if p.is_empty() { edov() } else { p }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::collection_oauth2::OAuth2Provider;
    use serde_json::json;

    fn provider(name: &str, extra: Value) -> Provider {
        let mut cfg = OAuth2Provider {
            name: name.into(),
            client_id: "c".into(),
            client_secret: Some("s".into()),
            auth_url: "https://idp.example/a".into(),
            token_url: "https://idp.example/t".into(),
            ..Default::default()
        };
        if let Value::Object(m) = extra {
            cfg.extra = m;
        }
        Provider::resolve(&cfg).unwrap()
    }

    fn map(name: &str, raw: Value) -> AuthUser {
        map_user(&provider(name, json!({})), &raw, None, None).unwrap()
    }

    #[test]
    fn github_takes_the_primary_verified_email_only() {
        // Shapes of GET /user and GET /user/emails.
        let raw = json!({"login": "octocat", "id": 583231, "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
                         "name": "The Octocat", "email": "public@example.com"});
        let emails = json!([
            {"email": "old@example.com", "verified": true, "primary": false, "visibility": null},
            {"email": "octocat@example.com", "verified": true, "primary": true, "visibility": "public"}
        ]);
        let p = provider("github", json!({}));
        let u = map_user(&p, &raw, None, Some(&emails)).unwrap();
        assert_eq!(
            (
                u.id.as_str(),
                u.username.as_str(),
                u.name.as_str(),
                u.email.as_str()
            ),
            ("583231", "octocat", "The Octocat", "octocat@example.com")
        );
        let unverified =
            json!([{"email": "octocat@example.com", "verified": false, "primary": true}]);
        assert_eq!(
            map_user(&p, &raw, None, Some(&unverified)).unwrap().email,
            ""
        );
        assert_eq!(map_user(&p, &raw, None, None).unwrap().email, "");
    }

    #[test]
    fn google_needs_email_verified() {
        let raw = json!({"sub": "10769150350006150715113082367", "name": "Jane Doe", "given_name": "Jane",
                         "picture": "https://lh3.googleusercontent.com/a/x", "email": "jane@example.com",
                         "email_verified": true, "locale": "en"});
        let u = map("google", raw.clone());
        assert_eq!(
            (u.id.as_str(), u.email.as_str()),
            ("10769150350006150715113082367", "jane@example.com")
        );
        assert_eq!(u.avatar_url, "https://lh3.googleusercontent.com/a/x");
        let mut raw = raw;
        raw["email_verified"] = json!(false);
        assert_eq!(map("google", raw).email, "");
    }

    #[test]
    fn gitlab_needs_confirmed_at() {
        let raw = json!({"id": 1, "username": "john_smith", "name": "John Smith", "email": "john@example.com",
                         "avatar_url": "https://gitlab.example/uploads/a.png", "confirmed_at": "2012-05-23T09:05:22Z"});
        let u = map("gitlab", raw.clone());
        assert_eq!(
            (u.id.as_str(), u.username.as_str(), u.email.as_str()),
            ("1", "john_smith", "john@example.com")
        );
        let mut raw = raw;
        raw["confirmed_at"] = Value::Null;
        assert_eq!(map("gitlab", raw).email, "");
    }

    #[test]
    fn discord_names_avatars_and_verified() {
        let raw = json!({"id": "80351110224678912", "username": "nelly", "discriminator": "1337", "global_name": null,
                         "avatar": "8342729096ea3675442027381ff50dfe", "verified": true, "email": "nelly@discord.com"});
        let u = map("discord", raw.clone());
        assert_eq!(u.name, "nelly#1337");
        assert_eq!(u.email, "nelly@discord.com");
        assert_eq!(
            u.avatar_url,
            "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
        );
        let mut raw = raw;
        raw["verified"] = json!(false);
        raw["global_name"] = json!("Nelly");
        let u = map("discord", raw);
        assert_eq!((u.name.as_str(), u.email.as_str()), ("Nelly", ""));
    }

    #[test]
    fn microsoft_trusts_only_verified_id_token_claims() {
        let raw = json!({"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "displayName": "Megan Bowen",
                         "mail": "MeganB@contoso.example", "userPrincipalName": "MeganB@contoso.example"});
        assert_eq!(
            map("microsoft", raw.clone()).email,
            "",
            "graph mail is not verified"
        );
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"email": "megan@contoso.example", "xms_edov": true}))
                .unwrap();
        let p = provider(
            "microsoft",
            json!({"idTokenEmailClaim": "email_and_xms_edov"}),
        );
        let u = map_user(&p, &raw, Some(&claims), None).unwrap();
        assert_eq!(
            (u.name.as_str(), u.email.as_str()),
            ("Megan Bowen", "megan@contoso.example")
        );
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"email": "megan@contoso.example", "xms_edov": false}))
                .unwrap();
        assert_eq!(map_user(&p, &raw, Some(&claims), None).unwrap().email, "");
    }

    #[test]
    fn apple_and_oidc_accept_string_booleans() {
        // Apple's id_token claims carry email_verified as "true".
        let claims = json!({"iss": "https://appleid.apple.com", "sub": "001234.abcdef.1234",
                            "email": "x@privaterelay.appleid.com", "email_verified": "true", "is_private_email": "true"});
        let u = map("apple", claims);
        assert_eq!(
            (u.id.as_str(), u.email.as_str()),
            ("001234.abcdef.1234", "x@privaterelay.appleid.com")
        );
        let u = map(
            "oidc",
            json!({"sub": "s", "email": "e@x.io", "email_verified": "false", "preferred_username": "e"}),
        );
        assert_eq!((u.email.as_str(), u.username.as_str()), ("", "e"));
    }

    #[test]
    fn a_user_without_id_is_refused() {
        assert!(
            map_user(
                &provider("oidc", json!({})),
                &json!({"email": "a@b.c"}),
                None,
                None
            )
            .is_err()
        );
    }
}
