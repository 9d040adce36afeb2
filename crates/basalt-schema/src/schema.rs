//! An immutable snapshot of every collection, looked up by id or name. The store swaps a
//! new snapshot in atomically after each committed schema change; readers never lock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::collection::Collection;
use crate::filter::{Expr, parse};

/// One access rule, parsed once per snapshot.
#[derive(Debug, Clone)]
pub enum RuleSlot {
    /// `null`: superusers only.
    Locked,
    /// `""`: everyone.
    Open,
    Expr(Arc<Expr>),
}

impl RuleSlot {
    fn from_rule(rule: Option<&str>) -> Self {
        match rule {
            None => RuleSlot::Locked,
            Some(r) if r.trim().is_empty() => RuleSlot::Open,
            // Collection validation rejects unparsable rules; one that slipped in locks.
            Some(r) => parse(r).map_or(RuleSlot::Locked, |e| RuleSlot::Expr(Arc::new(e))),
        }
    }
}

/// The parsed rules of one collection.
#[derive(Debug, Clone)]
pub struct ParsedRules {
    pub list: RuleSlot,
    pub view: RuleSlot,
    pub create: RuleSlot,
    pub update: RuleSlot,
    pub delete: RuleSlot,
    pub auth: RuleSlot,
    pub manage: RuleSlot,
}

impl ParsedRules {
    fn of(c: &Collection) -> Self {
        let auth = c.auth.as_ref();
        Self {
            list: RuleSlot::from_rule(c.list_rule.as_deref()),
            view: RuleSlot::from_rule(c.view_rule.as_deref()),
            create: RuleSlot::from_rule(c.create_rule.as_deref()),
            update: RuleSlot::from_rule(c.update_rule.as_deref()),
            delete: RuleSlot::from_rule(c.delete_rule.as_deref()),
            auth: RuleSlot::from_rule(auth.and_then(|a| a.auth_rule.as_deref()).or(Some(""))),
            manage: RuleSlot::from_rule(auth.and_then(|a| a.manage_rule.as_deref())),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    collections: Vec<Arc<Collection>>,
    by_id: HashMap<String, usize>,
    /// Lowercased name -> index: collection names are case-insensitive, as in PocketBase.
    by_name: HashMap<String, usize>,
    rules: Vec<ParsedRules>,
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
        let rules = collections.iter().map(|c| ParsedRules::of(c)).collect();
        Self {
            collections,
            by_id,
            by_name,
            rules,
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

    /// The parsed rules of a collection (by id).
    pub fn rules(&self, collection_id: &str) -> Option<&ParsedRules> {
        self.by_id.get(collection_id).map(|&i| &self.rules[i])
    }

    /// PocketBase accepts either the id or the name wherever a collection is named.
    pub fn find(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        self.by_id(id_or_name).or_else(|| self.by_name(id_or_name))
    }
}
