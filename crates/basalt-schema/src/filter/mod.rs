//! The filter and access-rule language (PocketBase's syntax): parsed into an [`ast::Expr`]
//! here; compiled to SQL with bound parameters in `basalt-store`.

pub mod ast;
mod display;
mod lexer;
mod parser;
mod query;
#[cfg(test)]
mod tests;

pub use ast::{
    Call, CompareOp, DateMacro, Expr, Function, Literal, Modifier, Operand, Path, PathRoot,
};
pub use parser::{FilterError, parse, parse_path, parse_with_params};
pub use query::{FieldSelector, SortKey, parse_expand, parse_fields, parse_sort};
