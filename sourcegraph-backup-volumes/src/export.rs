//! Archiving one part of a volume as a tar stream (blocking code).
//!
//! Headers are GNU: long names and link targets use GNU extension entries,
//! sizes over 8 GiB and large uid/gid use base-256 numbers. Content is copied
//! with one reusable buffer; the header is written before the content, so a
//! file that shrinks while read is padded with zeros and a file that grows is
//! cut at the size in its header, and both are reported.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sourcegraph_backup_core::ProgressSink;
use tar::{EntryType, Header};

use crate::report::PartStats;
use crate::split::{sorted_names, PartSpec};

const COPY_BUFFER: usize = 1024 * 1024;
/// Progress is reported in steps of at least this many bytes.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

/// When a [`ReadHook`] is called for a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStage {
    /// Listed, about to be opened.
    BeforeOpen,
    /// Opened and stat'ed (its header is based on this stat), content not read yet.
    Opened,
}

/// Called for every regular file as it is archived, with its absolute path:
/// for tests and instrumentation (e.g. to change a file mid-read).
pub type ReadHook = Arc<dyn Fn(ReadStage, &Path) + Send + Sync>;

/// Everything a part writer needs besides its output.
pub(crate) struct PartJob {
    pub root: PathBuf,
    pub spec: PartSpec,
    pub store: String,
    pub progress: ProgressSink,
    pub hook: Option<ReadHook>,
}

/// Counts the bytes going into the artifact (tar bytes before compression).
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Failure of a part: which path, and the I/O error.
pub(crate) type PathError = (PathBuf, io::Error);

struct PartWriter<W: Write> {
    job: PartJob,
    builder: tar::Builder<Counting<W>>,
    stats: PartStats,
    /// (dev, ino) → archived path of files with several links.
    links: HashMap<(u64, u64), PathBuf>,
    buf: Vec<u8>,
    unreported: u64,
}

/// Writes the part's tar stream into `out` and returns `out` with the stats.
pub(crate) fn write_part<W: Write>(job: PartJob, out: W) -> Result<(W, PartStats), PathError> {
    let mut stats = PartStats {
        artifact: job.spec.artifact_name(),
        units: job.spec.units.len(),
        ..PartStats::default()
    };
    stats.first_units = job
        .spec
        .units
        .iter()
        .take(crate::report::LISTED_PATHS)
        .map(|u| display_rel(&u.rel))
        .collect();
    let mut builder = tar::Builder::new(Counting { inner: out, count: 0 });
    builder.follow_symlinks(false);
    let mut w = PartWriter {
        job,
        builder,
        stats,
        links: HashMap::new(),
        buf: vec![0u8; COPY_BUFFER],
        unreported: 0,
    };
    let units = std::mem::take(&mut w.job.spec.units);
    for unit in &units {
        w.archive_unit(&unit.rel, unit.recursive)?;
    }
    w.job.progress.bytes(&w.job.store, w.unreported);
    let root = w.job.root.clone();
    let counting = w.builder.into_inner().map_err(|e| (root, e))?;
    w.stats.tar_bytes = counting.count;
    Ok((counting.inner, w.stats))
}

fn display_rel(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.to_string_lossy().into_owned()
    }
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl<W: Write> PartWriter<W> {
    /// Archives a subtree depth-first in sorted name order.
    fn archive_unit(&mut self, rel: &Path, recursive: bool) -> Result<(), PathError> {
        let mut stack = vec![rel.to_path_buf()];
        while let Some(rel) = stack.pop() {
            let abs = self.job.root.join(&rel);
            let meta = match std::fs::symlink_metadata(&abs) {
                Ok(m) => m,
                Err(e) if not_found(&e) => {
                    self.stats.vanished.push(|| display_rel(&rel));
                    continue;
                }
                Err(e) => return Err((abs, e)),
            };
            let descend = meta.is_dir() && recursive;
            self.archive_entry(&rel, &abs, &meta)
                .map_err(|e| (abs.clone(), e))?;
            if descend {
                let names = match sorted_names(&abs) {
                    Ok(n) => n,
                    Err(e) if not_found(&e) => {
                        self.stats.vanished.push(|| display_rel(&rel));
                        continue;
                    }
                    Err(e) => return Err((abs, e)),
                };
                stack.extend(names.into_iter().rev().map(|n| rel.join(n)));
            }
        }
        Ok(())
    }

    fn header(meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        h.set_size(0);
        h
    }

    fn archive_entry(&mut self, rel: &Path, abs: &Path, meta: &Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let name: PathBuf = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        };
        if ft.is_dir() {
            let mut h = Self::header(meta, EntryType::Directory);
            self.builder.append_data(&mut h, &name, io::empty())?;
            self.stats.dirs += 1;
        } else if ft.is_symlink() {
            let target = match std::fs::read_link(abs) {
                Ok(t) => t,
                Err(e) if not_found(&e) => {
                    self.stats.vanished.push(|| display_rel(rel));
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut h = Self::header(meta, EntryType::Symlink);
            self.builder.append_link(&mut h, &name, &target)?;
            self.stats.symlinks += 1;
        } else if ft.is_file() {
            self.archive_file(rel, abs, meta)?;
        } else {
            let kind = if ft.is_socket() {
                "socket"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "character device"
            } else if ft.is_block_device() {
                "block device"
            } else {
                "unknown type"
            };
            self.stats
                .skipped_special
                .push(|| format!("{} ({kind})", display_rel(rel)));
        }
        Ok(())
    }

    fn archive_file(&mut self, rel: &Path, abs: &Path, listed: &Metadata) -> io::Result<()> {
        if listed.nlink() > 1 {
            if let Some(first) = self.links.get(&(listed.dev(), listed.ino())) {
                let mut h = Self::header(listed, EntryType::Link);
                let first = first.clone();
                self.builder.append_link(&mut h, rel, &first)?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
        }
        if let Some(hook) = &self.job.hook {
            hook(ReadStage::BeforeOpen, abs);
        }
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(abs)
        {
            Ok(f) => f,
            Err(e) if not_found(&e) => {
                self.stats.vanished.push(|| display_rel(rel));
                return Ok(());
            }
            // Replaced by a symlink after it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                self.stats
                    .changed
                    .push(|| format!("{} (replaced by a symlink; skipped)", display_rel(rel)));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let before = file.metadata()?;
        if !before.is_file() {
            self.stats
                .changed
                .push(|| format!("{} (no longer a regular file; skipped)", display_rel(rel)));
            return Ok(());
        }
        if let Some(hook) = &self.job.hook {
            hook(ReadStage::Opened, abs);
        }
        let size = before.len();
        let mut h = Self::header(&before, EntryType::Regular);
        h.set_size(size);
        // Writes any long-name entry and the header; the content follows.
        self.builder.append_data(&mut h, rel, io::empty())?;
        let short = self.copy_exact(&mut file, size)?;
        let out = self.builder.get_mut();
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize])?;
        let after = file.metadata()?;
        let grew = short.is_none() && file.read(&mut [0u8; 1])? > 0;
        let problem = if let Some(missing) = short {
            Some(format!("shrank while read; {missing} byte(s) padded with zeros"))
        } else if grew || after.len() != size {
            Some(format!(
                "size changed while read ({size} → {} bytes); archived the first {size}",
                after.len()
            ))
        } else if (after.mtime(), after.mtime_nsec()) != (before.mtime(), before.mtime_nsec()) {
            Some("modified while read (mtime changed)".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.stats
                .changed
                .push(|| format!("{} ({problem})", display_rel(rel)));
        }
        if listed.nlink() > 1 {
            self.links.insert((before.dev(), before.ino()), rel.to_path_buf());
        }
        self.stats.files += 1;
        self.stats.bytes += size;
        Ok(())
    }

    /// Copies exactly `size` bytes; returns how many had to be padded when
    /// the file ended early.
    fn copy_exact(&mut self, file: &mut File, size: u64) -> io::Result<Option<u64>> {
        let mut remaining = size;
        while remaining > 0 {
            let want = usize::try_from(remaining.min(self.buf.len() as u64)).unwrap_or(self.buf.len());
            let n = match file.read(&mut self.buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                let out = self.builder.get_mut();
                let missing = remaining;
                let zeros = [0u8; 8192];
                while remaining > 0 {
                    let k = remaining.min(zeros.len() as u64) as usize;
                    out.write_all(&zeros[..k])?;
                    remaining -= k as u64;
                }
                return Ok(Some(missing));
            }
            self.builder.get_mut().write_all(&self.buf[..n])?;
            remaining -= n as u64;
            self.unreported += n as u64;
            if self.unreported >= PROGRESS_STEP {
                self.job.progress.bytes(&self.job.store, self.unreported);
                self.unreported = 0;
            }
        }
        Ok(None)
    }
}
