//! An immutable snapshot of every collection, looked up by id or name. The store swaps a
//! new snapshot in atomically after each committed schema change; readers never lock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::collection::Collection;

#[derive(Debug, Clone, Default)]
pub struct Schema {
    collections: Vec<Arc<Collection>>,
    by_id: HashMap<String, usize>,
    /// Lowercased name -> index: collection names are case-insensitive, as in PocketBase.
    by_name: HashMap<String, usize>,
}

impl Schema {
    pub fn new(collections: Vec<Collection>) -> Self {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let by_id = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_name = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.to_lowercase(), i))
            .collect();
        Self {
            collections,
            by_id,
            by_name,
        }
    }

    pub fn collections(&self) -> &[Arc<Collection>] {
        &self.collections
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Collection>> {
        self.by_id.get(id).map(|&i| &self.collections[i])
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Collection>> {
        self.by_name
            .get(&name.to_lowercase())
            .map(|&i| &self.collections[i])
    }

    /// PocketBase accepts either the id or the name wherever a collection is named.
    pub fn find(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        self.by_id(id_or_name).or_else(|| self.by_name(id_or_name))
    }
}
