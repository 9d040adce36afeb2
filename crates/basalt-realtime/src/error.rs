//! What can go wrong when a client manages its subscriptions.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RealtimeError {
    /// No connected client has this id.
    #[error("unknown client id")]
    UnknownClient,
    /// The client was bound to another identity by an earlier request.
    #[error("the identity differs from the client's")]
    IdentityMismatch,
    /// A topic is malformed or too long.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// More subscriptions than one client may hold.
    #[error("too many subscriptions")]
    TooManySubscriptions,
}
