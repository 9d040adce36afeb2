//! Record files as the file tests see them: what the server stored under `storage/`, and
//! the open collections (every rule empty) those tests upload into.

use std::path::Path;

use serde_json::{Value, json};

use crate::TestServer;

impl TestServer {
    /// Every stored object under the data dir's `storage/` (relative paths), sorted.
    pub fn stored_files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(
                        p.strip_prefix(root)
                            .expect("under root")
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        let root = self.data_dir().join("storage");
        let mut out = vec![];
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// Creates a collection from `doc` as superuser `su`; the answer must be 200.
    pub async fn create_collection(&self, su: &str, doc: Value) -> Value {
        let (st, c) = self
            .call("POST", "/api/collections", Some(su), Some(doc))
            .await;
        assert_eq!(st, 200, "{c}");
        c
    }

    /// Creates collection `name` with `fields` and every rule open (`""`); its id.
    pub async fn open_collection(&self, su: &str, name: &str, fields: Value) -> String {
        let c = self
            .create_collection(su, open_rules(json!({"name": name, "fields": fields})))
            .await;
        c["id"].as_str().expect("id").to_string()
    }

    /// `totalItems` of an open list of `collection`.
    pub async fn record_count(&self, collection: &str) -> u64 {
        let (st, v) = self
            .call(
                "GET",
                &format!("/api/collections/{collection}/records"),
                None,
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["totalItems"].as_u64().expect("totalItems")
    }
}

/// `doc` with every rule it does not set open (`""`).
pub fn open_rules(mut doc: Value) -> Value {
    if let Some(o) = doc.as_object_mut() {
        for rule in [
            "listRule",
            "viewRule",
            "createRule",
            "updateRule",
            "deleteRule",
        ] {
            o.entry(rule).or_insert(json!(""));
        }
    }
    doc
}
