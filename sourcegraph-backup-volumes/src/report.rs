//! What archiving a volume found: counts, skipped special files, files that
//! changed or vanished while read; turned into the manifest's details
//! ([`VolumeDetails`], versioned by its `format`) and read back by the importer.
//! What restoring it did: [`VolumeImportDetails`].

use serde::{Deserialize, Serialize};

use crate::error::VolumeError;

/// How many paths of each kind the manifest lists (the counts are complete).
pub const LISTED_PATHS: usize = 20;

/// The layout version of [`VolumeDetails`] this release writes, and the newest it reads.
pub const DETAILS_FORMAT: u32 = 1;

/// The format of details written before the format was recorded.
fn unversioned_format() -> u32 {
    1
}

/// A path list that counts everything but keeps only the first few paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathSample {
    /// How many paths there were.
    pub count: u64,
    /// The first [`LISTED_PATHS`] of them (with a reason where useful).
    pub first: Vec<String>,
}

impl PathSample {
    /// Records one path.
    pub fn push(&mut self, path: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.len() < LISTED_PATHS {
            self.first.push(path());
        }
    }

    /// Adds another sample to this one.
    pub fn merge(&mut self, other: PathSample) {
        self.count += other.count;
        for p in other.first {
            if self.first.len() < LISTED_PATHS {
                self.first.push(p);
            }
        }
    }
}

/// What archiving one part found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartStats {
    /// The artifact name (`part-0000.tar.zst`).
    pub artifact: String,
    /// How many split units (subtrees) the part holds.
    pub units: usize,
    /// The first few units, relative to the volume root (`.` is the root's own entry).
    pub first_units: Vec<String>,
    /// Regular files archived with their content.
    pub files: u64,
    /// Directories archived.
    pub dirs: u64,
    /// Symbolic links archived as links.
    pub symlinks: u64,
    /// Hard links archived as links to an earlier entry of the same part.
    pub hardlinks: u64,
    /// File content bytes read.
    pub bytes: u64,
    /// Tar bytes written (before compression).
    pub tar_bytes: u64,
    /// Stored (compressed) bytes.
    pub stored_bytes: u64,
    /// Sockets, FIFOs and device files, skipped.
    pub skipped_special: PathSample,
    /// Files whose size or mtime changed while they were read.
    pub changed: PathSample,
    /// Files or directories that vanished between listing and reading.
    pub vanished: PathSample,
}

/// The manifest details of one volume. Fields missing from a manifest read as their defaults;
/// read them back with [`VolumeDetails::from_manifest`], which checks the format first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeDetails {
    /// The layout version ([`DETAILS_FORMAT`]); details written before it was recorded read
    /// as 1.
    #[serde(default = "unversioned_format")]
    pub format: u32,
    /// The volume name.
    pub volume: String,
    /// The directory it was read from.
    pub path: String,
    /// The standard volume it is (or is a shard of), when known.
    pub deployment_volume: Option<String>,
    /// Regular files archived.
    pub files: u64,
    /// Directories archived.
    pub dirs: u64,
    /// Symbolic links archived.
    pub symlinks: u64,
    /// Hard links archived as links.
    pub hardlinks: u64,
    /// File content bytes (before tar and compression).
    pub bytes: u64,
    /// Tar bytes (before compression).
    pub tar_bytes: u64,
    /// Stored bytes.
    pub stored_bytes: u64,
    /// The target part size used for splitting.
    pub part_size: u64,
    /// Each part.
    pub parts: Vec<PartStats>,
    /// Sockets, FIFOs and device files, skipped.
    pub skipped_special: PathSample,
    /// Files that changed while read.
    pub changed: PathSample,
    /// Files or directories that vanished while archived.
    pub vanished: PathSample,
    /// A free-text note about the data (e.g. it was copied live).
    pub live_note: Option<String>,
}

impl Default for VolumeDetails {
    /// Empty details of the current [`DETAILS_FORMAT`].
    fn default() -> Self {
        VolumeDetails {
            format: DETAILS_FORMAT,
            volume: String::new(),
            path: String::new(),
            deployment_volume: None,
            files: 0,
            dirs: 0,
            symlinks: 0,
            hardlinks: 0,
            bytes: 0,
            tar_bytes: 0,
            stored_bytes: 0,
            part_size: 0,
            parts: Vec::new(),
            skipped_special: PathSample::default(),
            changed: PathSample::default(),
            vanished: PathSample::default(),
            live_note: None,
        }
    }
}

impl VolumeDetails {
    /// Reads the details of volume `volume` back from its manifest section. The format is
    /// checked before anything else is read: a newer one (written by a newer release) is
    /// refused with [`VolumeError::NewerFormat`], naming the volume; a section without a
    /// `format` (written before it was recorded) reads as format 1, and one without details at
    /// all as empty details.
    pub fn from_manifest(volume: &str, details: &serde_json::Value) -> Result<Self, VolumeError> {
        /// Only the format, so that a newer layout is refused rather than misread.
        #[derive(Deserialize)]
        struct Format {
            #[serde(default = "unversioned_format")]
            format: u32,
        }
        if details.is_null() {
            return Ok(VolumeDetails {
                format: unversioned_format(),
                volume: volume.to_string(),
                ..VolumeDetails::default()
            });
        }
        let malformed = |e: serde_json::Error| VolumeError::MalformedDetails {
            volume: volume.to_string(),
            reason: e.to_string(),
        };
        let Format { format } = Format::deserialize(details).map_err(malformed)?;
        if format > DETAILS_FORMAT {
            return Err(VolumeError::NewerFormat {
                volume: volume.to_string(),
                found: format,
                supported: DETAILS_FORMAT,
            });
        }
        VolumeDetails::deserialize(details).map_err(malformed)
    }

    /// Adds a finished part.
    pub fn add_part(&mut self, part: PartStats) {
        self.files += part.files;
        self.dirs += part.dirs;
        self.symlinks += part.symlinks;
        self.hardlinks += part.hardlinks;
        self.bytes += part.bytes;
        self.tar_bytes += part.tar_bytes;
        self.stored_bytes += part.stored_bytes;
        self.skipped_special.merge(part.skipped_special.clone());
        self.changed.merge(part.changed.clone());
        self.vanished.merge(part.vanished.clone());
        self.parts.push(part);
    }

    /// Warnings for the manifest: what a restorer should know.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |s: &PathSample| s.first.join(", ");
        if self.changed.count > 0 {
            out.push(format!(
                "volume {}: {} file(s) changed while read and may be inconsistent: {}",
                self.volume,
                self.changed.count,
                list(&self.changed)
            ));
        }
        if self.vanished.count > 0 {
            out.push(format!(
                "volume {}: {} path(s) vanished while archived and are not in the backup: {}",
                self.volume,
                self.vanished.count,
                list(&self.vanished)
            ));
        }
        if self.skipped_special.count > 0 {
            out.push(format!(
                "volume {}: {} socket(s), FIFO(s) or device file(s) skipped: {}",
                self.volume,
                self.skipped_special.count,
                list(&self.skipped_special)
            ));
        }
        out
    }
}

/// What restoring one volume did: the details of its import report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeImportDetails {
    /// The volume name.
    pub volume: String,
    /// The directory it was restored into.
    pub path: String,
    /// How many parts were restored.
    pub parts: usize,
    /// Regular files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symbolic links restored.
    pub symlinks: u64,
    /// Hard links restored as links.
    pub hardlinks: u64,
    /// File content bytes written.
    pub bytes: u64,
}
