//! The HTTP layer: routes, extractors, wire types and error mapping of the
//! PocketBase-compatible API. The only crate that knows HTTP; it holds no business rules.
