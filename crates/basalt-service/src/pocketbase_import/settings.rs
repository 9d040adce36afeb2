//! PocketBase's settings (`_params` row `settings`), decrypted when PocketBase saved them
//! with its `--encryptionEnv` key (AES-256-GCM: base64 of a 12-byte nonce followed by the
//! sealed JSON), reduced to the keys Basalt's settings document has.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde_json::{Map, Value};

use super::{ImportError, Skipped};

/// Secrets PocketBase keeps in its document that Basalt's defaults leave out (they are
/// never answered), but which it stores and uses.
const SECRETS: [&[&str]; 3] = [
    &["smtp", "password"],
    &["s3", "secret"],
    &["backups", "s3", "secret"],
];

/// The settings document `raw` holds: JSON, or PocketBase's encrypted form opened with `key`.
pub(super) fn decode(raw: &Value, key: Option<&str>) -> Result<Value, ImportError> {
    let text = match raw {
        Value::String(s) => s.trim(),
        Value::Object(_) => return Ok(raw.clone()),
        _ => {
            return Err(ImportError::new(
                "the settings param is neither JSON nor encrypted text",
            ));
        }
    };
    if text.starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|e| ImportError::new(format!("the settings param is not valid JSON: {e}")));
    }
    let Some(key) = key else {
        return Err(ImportError::new(
            "the settings are encrypted: pass --encryption-env with the name of the variable \
             holding PocketBase's --encryptionEnv key",
        ));
    };
    let plain = decrypt(text, key)?;
    serde_json::from_slice(&plain)
        .map_err(|e| ImportError::new(format!("the decrypted settings are not valid JSON: {e}")))
}

fn decrypt(text: &str, key: &str) -> Result<Vec<u8>, ImportError> {
    if key.len() != 32 {
        return Err(ImportError::new(
            "the encryption key must be 32 bytes long (AES-256), as PocketBase requires",
        ));
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ImportError::new("the encrypted settings are not base64"))?;
    if sealed.len() < 12 + 16 {
        return Err(ImportError::new("the encrypted settings are too short"));
    }
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes())
        .map_err(|_| ImportError::new("the encryption key must be 32 bytes long"))?;
    let (nonce, body) = sealed.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), body)
        .map_err(|_| ImportError::new("the settings could not be decrypted: wrong encryption key"))
}

/// The part of `source` Basalt's settings document has (`defaults` gives its keys), and
/// every other key as skipped.
pub(super) fn keep_known(source: &Value, defaults: &Value, skipped: &mut Vec<Skipped>) -> Value {
    let mut out = Map::new();
    let (Some(src), Some(def)) = (source.as_object(), defaults.as_object()) else {
        return Value::Object(out);
    };
    for (k, v) in src {
        match def.get(k) {
            Some(d) => {
                out.insert(k.clone(), keep_section(&[k.as_str()], v, d, skipped));
            }
            None => skipped.push(Skipped::new(
                format!("settings.{k}"),
                "Basalt has no such setting",
            )),
        }
    }
    Value::Object(out)
}

fn keep_section(path: &[&str], v: &Value, def: &Value, skipped: &mut Vec<Skipped>) -> Value {
    let (Some(src), Some(def)) = (v.as_object(), def.as_object()) else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, v) in src {
        let mut sub = path.to_vec();
        sub.push(k);
        if let Some(d) = def.get(k) {
            out.insert(k.clone(), keep_section(&sub, v, d, skipped));
        } else if SECRETS.contains(&sub.as_slice()) {
            out.insert(k.clone(), v.clone());
        } else if !basalt_schema::record::is_blank(v) {
            skipped.push(Skipped::new(
                format!("settings.{}", sub.join(".")),
                "Basalt has no such setting",
            ));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encrypted_settings_open_with_the_key_and_not_without() {
        let key = "0123456789abcdef0123456789abcdef";
        let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).expect("key");
        let nonce = [7u8; 12];
        let mut sealed = nonce.to_vec();
        sealed.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    br#"{"meta":{"appName":"X"}}"#.as_ref(),
                )
                .expect("seal"),
        );
        let text = Value::String(base64::engine::general_purpose::STANDARD.encode(&sealed));
        assert_eq!(
            decode(&text, Some(key)).expect("opens"),
            json!({"meta": {"appName": "X"}})
        );
        assert!(decode(&text, None).is_err());
        assert!(decode(&text, Some("0123456789abcdef0123456789abcdeX")).is_err());
        assert_eq!(
            decode(&Value::String("{\"a\":1}".into()), None).expect("plain"),
            json!({"a": 1})
        );
    }

    #[test]
    fn unknown_settings_are_reported_and_secrets_kept() {
        let defaults = json!({"meta": {"appName": ""}, "smtp": {"host": ""}});
        let mut skipped = Vec::new();
        let kept = keep_known(
            &json!({"meta": {"appName": "A", "newThing": 5}, "smtp": {"host": "h", "password": "p"},
                    "other": {"x": 1}}),
            &defaults,
            &mut skipped,
        );
        assert_eq!(
            kept,
            json!({"meta": {"appName": "A"}, "smtp": {"host": "h", "password": "p"}})
        );
        let names: Vec<&str> = skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(names, ["settings.meta.newThing", "settings.other"]);
    }
}
