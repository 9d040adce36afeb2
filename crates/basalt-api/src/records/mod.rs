//! The records API: list, view, create, update, delete, plus the response shaping they
//! share (hidden fields, email visibility, expand, `fields`).

mod auth_input;
mod expand;
mod fields;
mod handlers;
pub(crate) mod shape;

pub(crate) use auth_input::{Target, prepare_auth_input};
pub(crate) use handlers::*;
