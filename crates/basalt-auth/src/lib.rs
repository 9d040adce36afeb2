//! Auth service: password hashing (argon2id, bcrypt verification) and JWT issue/verify.
//! It must never know about HTTP or SQL.
