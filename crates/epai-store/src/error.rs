use tokio_postgres::error::SqlState;

/// What can go wrong in the store, in terms a caller can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist, or the current tenant may not see it: the two are
    /// indistinguishable on purpose.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule was violated (for example an email that already has an account).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database refused a value (out of range, malformed, or not storable such as `\u0000`).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A row-level security or privilege check refused the statement.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The database cannot be reached or is shutting down; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement ran past its time limit (`statement_timeout`, or a lock wait past
    /// `lock_timeout`) and was cancelled; retrying later may succeed.
    #[error("database statement timed out: {0}")]
    Timeout(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Anything else: a bug or an unexpected database state.
    #[error("database error: {0}")]
    Other(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            return if is_connection_failure(&err) {
                StoreError::Unavailable(err.to_string())
            } else {
                StoreError::Other(err.to_string())
            };
        };
        let message = db.message().to_owned();
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::DUPLICATE_DATABASE
            || *code == SqlState::DUPLICATE_OBJECT
        {
            StoreError::Conflict(message)
        } else if *code == SqlState::NO_DATA_FOUND {
            StoreError::NotFound(message)
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            StoreError::Forbidden(message)
        } else if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
            StoreError::Timeout(message)
        } else if code.code().starts_with("22") || code.code().starts_with("23") {
            // Class 22 (data exception) and 23 (integrity constraint): the input was wrong.
            StoreError::Invalid(message)
        } else if code.code().starts_with("08")
            || code.code().starts_with("53")
            || code.code().starts_with("57")
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            // Connection exceptions, insufficient resources (disk full, out of memory, too many
            // connections), operator intervention (shutdown, a server starting up), and a
            // database switched to read-only (a standby, or writes stopped to protect a full
            // disk): all pass, none is the request's fault.
            StoreError::Unavailable(message)
        } else {
            StoreError::Other(format!("{}: {message}", code.code()))
        }
    }
}

/// The connection, not the statement, failed: it could not be opened, was closed or broke
/// (the server went away mid-statement), or timed out. tokio-postgres exposes its error kinds
/// only through `is_closed`, the source (I/O errors) and the message.
fn is_connection_failure(err: &tokio_postgres::Error) -> bool {
    let message = err.to_string();
    err.is_closed()
        || std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
        || message.starts_with("error connecting to server")
        || message.starts_with("error communicating with the server")
        || message.starts_with("timeout waiting for server")
        || message.starts_with("error performing TLS handshake")
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
