//! Postgres store for sourcegraph-backup: connections, probing, schema extraction and data export.

pub mod connection;
pub mod error;
pub mod probe;
pub mod schema;
mod tls;

pub use connection::{DatabaseRole, PgConnectionConfig, SslMode};
pub use error::PgError;
pub use probe::{probe, ProbeOptions, ProbeReport, SourcegraphSchema};
