//! Progress events: a typed stream an embedder turns into progress bars.
//!
//! Library code never prints. Exporters and importers send [`ProgressEvent`]s
//! through a [`ProgressSink`]; whoever runs them (the pipeline, an embedder)
//! receives them from the matching channel.

use serde::Serialize;
use tokio::sync::mpsc;

/// One thing that happened while a store was exported or imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum ProgressEvent {
    /// A store started; `total_bytes` is an estimate when the store knows one.
    StoreStarted {
        /// The store id.
        store: String,
        /// Estimated bytes to process, when known.
        total_bytes: Option<u64>,
    },
    /// More bytes were processed (a delta, not a running total).
    Bytes {
        /// The store id.
        store: String,
        /// Bytes processed since the previous event.
        bytes: u64,
    },
    /// More rows of a table were processed (a delta).
    Rows {
        /// The store id.
        store: String,
        /// The table (qualified name).
        table: String,
        /// Rows processed since the previous event for this table.
        rows: u64,
    },
    /// An artifact was written and checksummed.
    ArtifactCommitted {
        /// The store id.
        store: String,
        /// The artifact path inside the backup.
        path: String,
        /// Stored size in bytes.
        size: u64,
    },
    /// A notable condition that does not stop the store (e.g. a file changed while read).
    Warning {
        /// The store id.
        store: String,
        /// What happened.
        message: String,
    },
    /// A store finished.
    StoreFinished {
        /// The store id.
        store: String,
        /// `None` on success, the error's text on failure.
        error: Option<String>,
    },
}

/// Where progress events go. Cloning is cheap; a sink without a receiver
/// ([`ProgressSink::disabled`]) drops events.
#[derive(Debug, Clone, Default)]
pub struct ProgressSink {
    tx: Option<mpsc::UnboundedSender<ProgressEvent>>,
}

impl ProgressSink {
    /// A sink and the receiver its events arrive on.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<ProgressEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ProgressSink { tx: Some(tx) }, rx)
    }

    /// A sink that drops every event.
    pub fn disabled() -> Self {
        ProgressSink { tx: None }
    }

    /// Sends an event; a closed receiver is not an error.
    pub fn send(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    /// Reports processed bytes for a store.
    pub fn bytes(&self, store: &str, bytes: u64) {
        if bytes > 0 {
            self.send(ProgressEvent::Bytes {
                store: store.into(),
                bytes,
            });
        }
    }

    /// Reports processed rows of a table.
    pub fn rows(&self, store: &str, table: &str, rows: u64) {
        if rows > 0 {
            self.send(ProgressEvent::Rows {
                store: store.into(),
                table: table.into(),
                rows,
            });
        }
    }

    /// Reports a warning for a store.
    pub fn warning(&self, store: &str, message: impl Into<String>) {
        self.send(ProgressEvent::Warning {
            store: store.into(),
            message: message.into(),
        });
    }
}
