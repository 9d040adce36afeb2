//! The records API: list, view, create, update, delete over `basalt_service::records`,
//! plus what the REST answers add: `fields` projection and the shaped record written
//! straight from the stored one.

pub(crate) mod fields;
mod handlers;
pub(crate) mod shape;

pub(crate) use handlers::*;
