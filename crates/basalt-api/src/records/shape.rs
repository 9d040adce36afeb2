//! A stored record as a client may see it (`basalt_service::records::Visibility`),
//! written straight into the response: from the decoded record ([`PublicRecord`]) or, on
//! the hot path and plain list pages, from the stored row ([`StoredRow`]).

use basalt_schema::Collection;
use basalt_service::Caller;
use basalt_service::records::Visibility;
use basalt_store::{Record, RowView};

/// `public_record` as a serialisable view: the shaped record is written straight into
/// the response without building its map (for the plain answer: no `expand`, no `fields`).
pub(crate) struct PublicRecord<'a> {
    collection: &'a Collection,
    record: &'a Record,
    visible: Visibility,
}

impl<'a> PublicRecord<'a> {
    pub(crate) fn new(collection: &'a Collection, record: &'a Record, auth: &Caller) -> Self {
        let visible = Visibility::of(collection, record, auth);
        Self {
            collection,
            record,
            visible,
        }
    }
}

impl serde::Serialize for PublicRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (c, r) = (self.collection, self.record);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("collectionId", &c.id)?;
        map.serialize_entry("collectionName", &c.name)?;
        // Decoded rows are in field order: then the values are read in one pass, without a
        // lookup per field.
        let in_field_order =
            r.len() == c.fields.len() && r.keys().zip(&c.fields).all(|(k, f)| *k == f.name);
        let mut in_order = r.values();
        for f in &c.fields {
            let value = if in_field_order {
                in_order.next()
            } else {
                r.get(&f.name)
            };
            if let Some(v) = value.filter(|_| self.visible.shows(c, f)) {
                map.serialize_entry(&f.name, v)?;
            }
        }
        map.end()
    }
}

/// [`PublicRecord`] written from the stored row itself (the get-by-id hot path and plain
/// list pages): the same fields, values and order, without the decoded map.
pub(crate) struct StoredRow<'a> {
    collection: &'a Collection,
    row: &'a RowView<'a>,
    visible: Visibility,
    only: Option<&'a [String]>,
}

impl<'a> StoredRow<'a> {
    pub(crate) fn new(collection: &'a Collection, row: &'a RowView<'a>, caller: &Caller) -> Self {
        Self {
            collection,
            row,
            visible: Visibility::of_row(collection, row, caller),
            only: None,
        }
    }

    /// Writes only the keys named in `names` (a `fields` list of plain top-level names),
    /// in the record's order, as `fields` keeps them; `None` writes every key.
    pub(crate) fn only(self, names: Option<&'a [String]>) -> Self {
        Self {
            only: names,
            ..self
        }
    }

    fn wanted(&self, key: &str) -> bool {
        self.only.is_none_or(|names| names.iter().any(|n| n == key))
    }
}

impl StoredRow<'_> {
    /// Appends the record as a JSON object to `out`: what serialising [`PublicRecord`]
    /// writes, with the keys (field names, which need no escaping as a rule) copied
    /// instead of run through the serialiser's escaping.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let c = self.collection;
        let mut sep = b'{';
        for (key, value) in [("collectionId", &c.id), ("collectionName", &c.name)] {
            if self.wanted(key) {
                write_key(out, sep, key)?;
                serde_json::to_writer(&mut *out, value)?;
                sep = b',';
            }
        }
        for (i, f) in c.fields.iter().enumerate() {
            if !self.visible.shows(c, f) || !self.wanted(&f.name) {
                continue;
            }
            if let Some(v) = self.row.json(i) {
                write_key(out, sep, &f.name)?;
                serde_json::to_writer(&mut *out, &v)?;
                sep = b',';
            }
        }
        if sep == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
        Ok(())
    }
}

/// `<sep>"key":`, escaping the key only when it has a character JSON escapes.
fn write_key(out: &mut Vec<u8>, sep: u8, key: &str) -> Result<(), serde_json::Error> {
    out.push(sep);
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    } else {
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use basalt_schema::collection_validate::validate;
    use basalt_schema::request::AuthInfo;
    use basalt_schema::{Collection, Schema};
    use basalt_service::records::{into_public_record, public_record};
    use serde_json::{Value, json};

    use super::*;

    fn users() -> Collection {
        let c: Collection = serde_json::from_value(json!({
            "id": "users0000000001", "name": "users", "type": "auth",
            "fields": [{"name": "name", "type": "text"}, {"name": "secret", "type": "text", "hidden": true}]
        }))
        .expect("doc");
        validate(c, None, &Schema::default(), "2024-01-01 00:00:00.000Z").expect("valid")
    }

    fn stored(c: &Collection, visible_email: bool) -> Record {
        let mut r = Record::new();
        for f in &c.fields {
            let v = match f.name.as_str() {
                "id" => json!("u1"),
                "emailVisibility" => json!(visible_email),
                "verified" => json!(false),
                other => json!(format!("{other}-value")),
            };
            r.insert(f.name.clone(), v);
        }
        r
    }

    /// Moving the values out (in field order or not) shapes exactly as copying them does.
    #[test]
    fn keys_are_written_as_the_serialiser_writes_them() {
        for key in [
            "title",
            "a b",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "héllo",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            write_key(&mut out, b',', key).unwrap();
            assert_eq!(
                out,
                format!(",{}:", serde_json::to_string(key).unwrap()).into_bytes(),
                "{key:?}"
            );
        }
    }

    #[test]
    fn moving_and_copying_shape_alike() {
        let c = users();
        let owner = Caller(Some(AuthInfo {
            collection_id: c.id.clone(),
            collection_name: c.name.clone(),
            record: stored(&c, false),
            is_superuser: false,
        }));
        for auth in [Caller(None), owner] {
            for visible_email in [false, true] {
                let r = stored(&c, visible_email);
                let copied = public_record(&c, &r, &auth);
                assert!(!copied.contains_key("password") && !copied.contains_key("tokenKey"));
                assert!(!copied.contains_key("secret"), "hidden field shown");
                assert_eq!(
                    copied.contains_key("email"),
                    visible_email || auth.0.is_some()
                );
                assert_eq!(into_public_record(&c, r.clone(), &auth), copied);
                assert_eq!(
                    serde_json::to_string(&PublicRecord::new(&c, &r, &auth)).unwrap(),
                    Value::Object(copied.clone()).to_string()
                );
                let mut reversed = Record::new();
                for (k, v) in r.iter().rev() {
                    reversed.insert(k.clone(), v.clone());
                }
                assert_eq!(
                    serde_json::to_string(&PublicRecord::new(&c, &reversed, &auth)).unwrap(),
                    Value::Object(copied.clone()).to_string()
                );
                assert_eq!(into_public_record(&c, reversed, &auth), copied);
            }
        }
    }
}
