//! The syntax tree of a filter or access rule. Identifiers are kept as written (segments);
//! resolving them against the schema (fields, relations, back-relations, JSON paths) is the
//! SQL compiler's job, because only it knows how a path becomes joins.

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare {
        left: Operand,
        op: CompareOp,
        right: Operand,
    },
}

/// Comparison operators. The `Any*` forms (`?=`, `?!=`, ...) match when *any* value of a
/// multi-valued side matches; the plain forms require *all* values to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    /// `~`: contains (`%` wildcards allowed; wrapped in `%...%` when it has none).
    Like,
    /// `!~`
    NotLike,
    AnyEq,
    AnyNeq,
    AnyGt,
    AnyGte,
    AnyLt,
    AnyLte,
    AnyLike,
    AnyNotLike,
}

impl CompareOp {
    pub fn is_any(self) -> bool {
        matches!(
            self,
            CompareOp::AnyEq
                | CompareOp::AnyNeq
                | CompareOp::AnyGt
                | CompareOp::AnyGte
                | CompareOp::AnyLt
                | CompareOp::AnyLte
                | CompareOp::AnyLike
                | CompareOp::AnyNotLike
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Neq => "!=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Like => "~",
            CompareOp::NotLike => "!~",
            CompareOp::AnyEq => "?=",
            CompareOp::AnyNeq => "?!=",
            CompareOp::AnyGt => "?>",
            CompareOp::AnyGte => "?>=",
            CompareOp::AnyLt => "?<",
            CompareOp::AnyLte => "?<=",
            CompareOp::AnyLike => "?~",
            CompareOp::AnyNotLike => "?!~",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Literal),
    Macro(DateMacro),
    Path(Path),
    /// `strftime(...)` or `geoDistance(...)`; arity and argument kinds checked by the parser.
    Call(Call),
}

/// A function call. Arguments are never calls themselves (PocketBase refuses nesting).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: Function,
    pub args: Vec<Operand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `strftime(format[, time-value[, modifier...]])`: SQLite's date formatting, with the
    /// format and modifiers string literals (the compiler checks them against what both
    /// backends answer alike).
    Strftime,
    /// `geoDistance(lonA, latA, lonB, latB)`: the Haversine distance in km.
    GeoDistance,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Strftime => "strftime",
            Function::GeoDistance => "geoDistance",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// `@now`, `@second`, ..., `@yearEnd`: resolved to values at compile time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateMacro {
    Now,
    Yesterday,
    Tomorrow,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
    Weekday,
    TodayStart,
    TodayEnd,
    MonthStart,
    MonthEnd,
    YearStart,
    YearEnd,
}

/// Where an identifier starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRoot {
    /// A field of the record being filtered (`title`, `author.name`, `comments_via_post.id`).
    Record,
    /// `@request.auth.*`
    RequestAuth,
    /// `@request.body.*`
    RequestBody,
    /// `@request.query.*`
    RequestQuery,
    /// `@request.headers.*`
    RequestHeaders,
    /// `@request.method`
    RequestMethod,
    /// `@request.context`
    RequestContext,
    /// `@collection.NAME.*` or `@collection.NAME:alias.*` — an independent join whose rows
    /// must satisfy the comparison (aliases let one rule join the same collection twice).
    Collection { name: String, alias: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    /// `:isset` — only for `@request.body.*`: whether the key was submitted.
    IsSet,
    /// `:changed` — only for `@request.body.*`: submitted and different from the stored value.
    Changed,
    /// `:length` — number of items of a multi-valued field (or submitted array).
    Length,
    /// `:each` — applies the comparison to every item of a multi-valued field.
    Each,
    /// `:lower` — compares the lowercased value.
    Lower,
}

/// A dotted identifier: the root, then the segments after it, then an optional modifier.
/// For `author.name:lower`, root = `Record`, segments = `["author", "name"]`.
/// For `@request.auth.id`, root = `RequestAuth`, segments = `["id"]`.
/// For `@collection.users.email`, root = `Collection{name:"users"}`, segments = `["email"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: PathRoot,
    pub segments: Vec<String>,
    pub modifier: Option<Modifier>,
}
