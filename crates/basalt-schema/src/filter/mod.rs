//! The filter and access-rule language (PocketBase's syntax): parsed into an [`ast::Expr`]
//! here; compiled to SQL with bound parameters in `basalt-store`.

pub mod ast;

pub use ast::{CompareOp, DateMacro, Expr, Literal, Modifier, Operand, Path, PathRoot};
