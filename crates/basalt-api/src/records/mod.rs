//! The records API: list, view, create, update, delete over `basalt_service::records`,
//! plus what the REST answers add: `fields` projection and the shaped record written
//! straight from the stored one, and conditional reads (`ETag`, `304`, `Cache-Control`).

pub(crate) mod conditional;
pub(crate) mod fields;
mod handlers;
pub(crate) mod shape;

pub(crate) use handlers::*;
