//! Evaluates a filter against JSON documents in memory (the collections list, which is
//! small and lives in the schema snapshot rather than in a table).

use std::cmp::Ordering;

use basalt_schema::filter::{CompareOp, Expr, Literal, Operand, PathRoot};
use serde_json::Value;

pub(super) fn matches(e: &Expr, doc: &Value) -> bool {
    match e {
        Expr::And(a, b) => matches(a, doc) && matches(b, doc),
        Expr::Or(a, b) => matches(a, doc) || matches(b, doc),
        Expr::Compare { left, op, right } => {
            let (l, r) = (operand(left, doc), operand(right, doc));
            let ord = cmp_values(Some(&l), Some(&r));
            let (ls, rs) = (text(&l).to_lowercase(), text(&r).to_lowercase());
            match op {
                CompareOp::Eq | CompareOp::AnyEq => ord == Ordering::Equal,
                CompareOp::Neq | CompareOp::AnyNeq => ord != Ordering::Equal,
                CompareOp::Gt | CompareOp::AnyGt => ord == Ordering::Greater,
                CompareOp::Gte | CompareOp::AnyGte => ord != Ordering::Less,
                CompareOp::Lt | CompareOp::AnyLt => ord == Ordering::Less,
                CompareOp::Lte | CompareOp::AnyLte => ord != Ordering::Greater,
                CompareOp::Like | CompareOp::AnyLike => ls.contains(rs.trim_matches('%')),
                CompareOp::NotLike | CompareOp::AnyNotLike => !ls.contains(rs.trim_matches('%')),
            }
        }
    }
}

fn operand(o: &Operand, doc: &Value) -> Value {
    match o {
        Operand::Literal(Literal::String(s)) => Value::String(s.clone()),
        Operand::Literal(Literal::Number(n)) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Operand::Literal(Literal::Bool(b)) => Value::Bool(*b),
        Operand::Literal(Literal::Null) | Operand::Macro(_) => Value::Null,
        Operand::Path(p) if p.root == PathRoot::Record => {
            let mut cur = doc;
            for s in &p.segments {
                match cur.get(s) {
                    Some(v) => cur = v,
                    None => return Value::Null,
                }
            }
            cur.clone()
        }
        Operand::Path(_) | Operand::Call(_) => Value::Null,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (x, y) => text(x.unwrap_or(&Value::Null)).cmp(&text(y.unwrap_or(&Value::Null))),
    }
}
