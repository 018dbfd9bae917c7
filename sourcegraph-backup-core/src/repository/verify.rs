//! `verify`: re-read every artifact of a backup and report each problem by name.

use serde::Serialize;

use super::BackupReader;
use crate::error::CoreError;

/// What is wrong with one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactProblem {
    /// The artifact path inside the backup.
    pub path: String,
    /// What is wrong, in words.
    pub problem: String,
    /// Whether the artifact is missing altogether.
    pub missing: bool,
}

/// The outcome of verifying a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The backup id.
    pub backup: String,
    /// Artifacts checked.
    pub checked: usize,
    /// Stored bytes read.
    pub bytes: u64,
    /// Every problem found, in manifest order.
    pub problems: Vec<ArtifactProblem>,
}

impl VerifyReport {
    /// Whether every artifact is present and matches its size and SHA-256.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An error's message followed by its causes (the OS error of a failed read, e.g.
/// `Permission denied`), each once.
fn with_causes(e: &CoreError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

pub(super) async fn verify(reader: &BackupReader) -> VerifyReport {
    let mut report = VerifyReport {
        backup: reader.id().into(),
        checked: 0,
        bytes: 0,
        problems: Vec::new(),
    };
    for store in &reader.manifest().stores {
        for record in &store.artifacts {
            report.checked += 1;
            match reader.open_artifact(record).verify().await {
                Ok(()) => report.bytes += record.size,
                Err(e) => report.problems.push(ArtifactProblem {
                    path: record.path.clone(),
                    missing: matches!(e, CoreError::MissingArtifact { .. }),
                    problem: with_causes(&e),
                }),
            }
        }
    }
    report
}
