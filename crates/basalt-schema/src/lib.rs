//! Basalt's pure domain model: collections, fields, record values and their validation,
//! the filter/access-rule language (parsed into an AST), and the catalogue of client-facing
//! error codes.
//!
//! This crate owns *meaning*, never *mechanism*: it must never know about IO, an async
//! runtime, SQL or HTTP. Everything here is deterministic and unit-testable; the fuzz and
//! property tests of the filter language live here.

pub mod collection;
pub mod collection_oauth2;
pub mod collection_validate;
pub mod error;
pub mod field;
pub mod file_name;
pub mod filter;
pub mod id;
pub mod pattern;
pub mod record;
pub mod request;
pub mod schema;
pub mod thumb;
pub mod value;

pub use collection::{Collection, CollectionType};
pub use error::{FieldError, ValidationErrors};
pub use field::{Field, FieldKind};
pub use request::RequestInfo;
pub use schema::{ParsedRules, RuleSlot, Schema};
