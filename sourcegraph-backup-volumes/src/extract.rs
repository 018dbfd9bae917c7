//! Restoring one part (blocking code): our own loop over the tar entries,
//! so that every entry is checked before anything is written.
//!
//! Rules: no absolute paths or `..` components; no device nodes or FIFOs;
//! every existing parent component must be a real directory inside the root
//! (checked with `lstat`, never followed); files are created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`; hard-link targets must be regular files
//! already restored inside the root. Symlink targets are stored verbatim:
//! they are never followed while restoring.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use sourcegraph_backup_core::{CoreError, ProgressSink};
use tar::EntryType;

use crate::error::VolumeError;

const COPY_BUFFER: usize = 1024 * 1024;
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

/// Metadata of a directory, applied after every part is restored (its
/// contents would otherwise bump the mtime, and a read-only mode would
/// block writing them).
#[derive(Debug, Clone)]
pub(crate) struct DirMeta {
    pub path: PathBuf,
    pub mode: u32,
    pub mtime: u64,
    pub owner: Option<(u32, u32)>,
}

/// What restoring one part did.
#[derive(Debug, Default)]
pub(crate) struct ExtractStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub bytes: u64,
    pub dir_meta: Vec<DirMeta>,
}

/// Restores one part's tar stream under `root` (canonical, existing).
pub(crate) struct Extractor {
    pub root: PathBuf,
    pub artifact: String,
    pub chown: bool,
    pub store: String,
    pub progress: ProgressSink,
    known_dirs: HashSet<PathBuf>,
    buf: Vec<u8>,
    stats: ExtractStats,
    unreported: u64,
}

enum Fail {
    /// Reading the archive failed (verification, decompression, tar format).
    Read(io::Error),
    /// The entry was refused or could not be written.
    Entry(VolumeError),
}

impl Extractor {
    /// An extractor for `artifact` into `root`.
    pub fn new(root: PathBuf, artifact: String, store: String, progress: ProgressSink) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let chown = unsafe { libc::geteuid() } == 0;
        Extractor {
            root,
            artifact,
            chown,
            store,
            progress,
            known_dirs: HashSet::new(),
            buf: vec![0u8; COPY_BUFFER],
            stats: ExtractStats::default(),
            unreported: 0,
        }
    }

    /// Restores every entry, then reads the artifact to its end so that its
    /// size and checksum are verified even after the end-of-archive marker.
    pub fn run(mut self, reader: Box<dyn Read + Send>) -> Result<ExtractStats, VolumeError> {
        let mut archive = tar::Archive::new(reader);
        let result = self.entries(&mut archive);
        let mut rest = archive.into_inner();
        match result {
            Ok(()) => {
                io::copy(&mut rest, &mut io::sink()).map_err(|e| self.read_error(e, None))?;
            }
            Err(Fail::Entry(e)) => return Err(e),
            Err(Fail::Read(e)) => return Err(self.read_error(e, Some(&mut rest))),
        }
        self.progress.bytes(&self.store, self.unreported);
        Ok(self.stats)
    }

    /// Names the artifact: a verification failure underneath wins over the
    /// tar reader's complaint about the garbage it produced.
    fn read_error(&self, e: io::Error, rest: Option<&mut Box<dyn Read + Send>>) -> VolumeError {
        let e = match e.downcast::<CoreError>() {
            Ok(core) => return self.artifact_error(core),
            Err(e) => e,
        };
        if let Some(rest) = rest {
            if let Err(drained) = io::copy(rest, &mut io::sink()) {
                if let Ok(core) = drained.downcast::<CoreError>() {
                    return self.artifact_error(core);
                }
            }
        }
        VolumeError::BadArchive {
            artifact: self.artifact.clone(),
            reason: e.to_string(),
        }
    }

    fn artifact_error(&self, source: CoreError) -> VolumeError {
        VolumeError::Artifact {
            artifact: self.artifact.clone(),
            source: Box::new(source),
        }
    }

    fn entries(&mut self, archive: &mut tar::Archive<Box<dyn Read + Send>>) -> Result<(), Fail> {
        for entry in archive.entries().map_err(Fail::Read)? {
            let mut entry = entry.map_err(Fail::Read)?;
            self.entry(&mut entry)?;
        }
        Ok(())
    }

    fn refuse(&self, entry: &str, reason: impl Into<String>) -> Fail {
        Fail::Entry(VolumeError::UnsafeEntry {
            artifact: self.artifact.clone(),
            entry: entry.into(),
            reason: reason.into(),
        })
    }

    fn failed(&self, entry: &str, source: io::Error) -> Fail {
        Fail::Entry(VolumeError::Extract {
            artifact: self.artifact.clone(),
            entry: entry.into(),
            source,
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Fail> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let rel = safe_relative(&raw).map_err(|r| self.refuse(&shown, r))?;
        let header = entry.header();
        let mode = header.mode().map_err(Fail::Read)? & 0o7777;
        let mtime = header.mtime().map_err(Fail::Read)?;
        let owner = match (header.uid(), header.gid()) {
            (Ok(u), Ok(g)) if self.chown => u32::try_from(u).ok().zip(u32::try_from(g).ok()),
            _ => None,
        };
        let path = self.root.join(&rel);
        match kind {
            EntryType::Directory => {
                if !rel.as_os_str().is_empty() {
                    self.parents(&rel, &shown)?;
                    self.make_dir(&path, &shown)?;
                }
                self.stats.dirs += 1;
                self.stats.dir_meta.push(DirMeta {
                    path,
                    mode,
                    mtime,
                    owner,
                });
            }
            _ if rel.as_os_str().is_empty() => {
                return Err(self.refuse(&shown, "the volume root can only be a directory"))
            }
            EntryType::Regular | EntryType::Continuous => {
                self.parents(&rel, &shown)?;
                self.clear_final(&path, &shown)?;
                let size = entry.size();
                self.write_file(entry, &path, size, &shown, mode, mtime, owner)?;
                self.stats.files += 1;
                self.stats.bytes += size;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.refuse(&shown, "symlink without a target"))?
                    .into_owned();
                self.parents(&rel, &shown)?;
                self.clear_final(&path, &shown)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| self.failed(&shown, e))?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&path, Some(u), Some(g)).map_err(|e| self.failed(&shown, e))?;
                }
                let t = FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(0), 0);
                filetime::set_symlink_file_times(&path, t, t).map_err(|e| self.failed(&shown, e))?;
                self.stats.symlinks += 1;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.refuse(&shown, "hard link without a target"))?
                    .into_owned();
                let target_rel = safe_relative(&target)
                    .map_err(|r| self.refuse(&shown, format!("hard link target: {r}")))?;
                let target_path = self.root.join(&target_rel);
                if target_rel.as_os_str().is_empty() || !self.is_restored_file(&target_rel) {
                    return Err(self.refuse(
                        &shown,
                        format!(
                            "hard link target {:?} is not a regular file restored earlier inside the root",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                self.parents(&rel, &shown)?;
                self.clear_final(&path, &shown)?;
                std::fs::hard_link(&target_path, &path).map_err(|e| self.failed(&shown, e))?;
                self.stats.hardlinks += 1;
            }
            EntryType::Char | EntryType::Block => {
                return Err(self.refuse(&shown, "device nodes are never restored"))
            }
            EntryType::Fifo => return Err(self.refuse(&shown, "FIFOs are never archived or restored")),
            other => {
                return Err(self.refuse(
                    &shown,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        }
        Ok(())
    }

    /// Makes sure every parent component of `rel` is a real directory inside
    /// the root, creating missing ones; a symlink or file in the way is refused.
    fn parents(&mut self, rel: &Path, shown: &str) -> Result<(), Fail> {
        let mut cur = self.root.clone();
        let Some(parent) = rel.parent() else { return Ok(()) };
        for comp in parent.components() {
            cur.push(comp);
            if self.known_dirs.contains(&cur) {
                continue;
            }
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => {
                    let what = if m.file_type().is_symlink() {
                        "a symlink"
                    } else {
                        "not a directory"
                    };
                    return Err(self.refuse(
                        shown,
                        format!("parent {} is {what}: refusing to write through it", cur.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&cur) {
                    Ok(()) => {}
                    // Another part created it meanwhile: check what it is.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !std::fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
                            return Err(
                                self.refuse(shown, format!("parent {} is not a directory", cur.display()))
                            );
                        }
                    }
                    Err(e) => return Err(self.failed(shown, e)),
                },
                Err(e) => return Err(self.failed(shown, e)),
            }
            self.known_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Whether `rel` is a regular file reached only through real directories.
    fn is_restored_file(&self, rel: &Path) -> bool {
        let mut cur = self.root.clone();
        let comps: Vec<_> = rel.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            cur.push(comp);
            let Ok(m) = std::fs::symlink_metadata(&cur) else {
                return false;
            };
            let last = i + 1 == comps.len();
            if (last && !m.is_file()) || (!last && !m.is_dir()) {
                return false;
            }
        }
        true
    }

    fn make_dir(&mut self, path: &Path, shown: &str) -> Result<(), Fail> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // A symlink or file from an earlier entry or an overwritten
                // target: replace the link itself, never what it points to.
                std::fs::remove_file(path).map_err(|e| self.failed(shown, e))?;
                std::fs::create_dir(path).map_err(|e| self.failed(shown, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(path) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(self.failed(shown, e)),
            },
            Err(e) => return Err(self.failed(shown, e)),
        }
        self.known_dirs.insert(path.to_path_buf());
        Ok(())
    }

    /// Removes a non-directory at the final component (overwrite, duplicate
    /// entries); a directory in the way is an error.
    fn clear_final(&self, path: &Path, shown: &str) -> Result<(), Fail> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Err(self.failed(
                shown,
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            )),
            Ok(_) => std::fs::remove_file(path).map_err(|e| self.failed(shown, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed(shown, e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        size: u64,
        shown: &str,
        mode: u32,
        mtime: u64,
        owner: Option<(u32, u32)>,
    ) -> Result<(), Fail> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| self.failed(shown, e))?;
        let mut remaining = size;
        let mut holes = false;
        while remaining > 0 {
            let want = usize::try_from(remaining.min(self.buf.len() as u64)).unwrap_or(self.buf.len());
            let n = read_full(entry, &mut self.buf[..want]).map_err(Fail::Read)?;
            if n == 0 {
                return Err(Fail::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("archive ends inside entry {shown:?}"),
                )));
            }
            let chunk = &self.buf[..n];
            // Whole zero blocks become holes: sparse files stay sparse.
            if n >= 4096 && chunk.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(n as i64))
                    .map_err(|e| self.failed(shown, e))?;
                holes = true;
            } else {
                file.write_all(chunk).map_err(|e| self.failed(shown, e))?;
            }
            remaining -= n as u64;
            self.unreported += n as u64;
            if self.unreported >= PROGRESS_STEP {
                self.progress.bytes(&self.store, self.unreported);
                self.unreported = 0;
            }
        }
        if holes {
            file.set_len(size).map_err(|e| self.failed(shown, e))?;
        }
        apply_meta(&file, mode, mtime, owner).map_err(|e| self.failed(shown, e))
    }
}

/// Sets ownership (first: chown clears setuid/setgid), mode and mtime through an open handle.
fn apply_meta(file: &File, mode: u32, mtime: u64, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((u, g)) = owner {
        std::os::unix::fs::fchown(file, Some(u), Some(g))?;
    }
    file.set_permissions(Permissions::from_mode(mode))?;
    let t = FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(0), 0);
    filetime::set_file_handle_times(file, Some(t), Some(t))
}

/// Applies directory metadata deepest first, through `O_NOFOLLOW` handles.
pub(crate) fn apply_dir_meta(mut dirs: Vec<DirMeta>) -> Result<(), (PathBuf, io::Error)> {
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in dirs {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&d.path)
            .map_err(|e| (d.path.clone(), e))?;
        apply_meta(&dir, d.mode, d.mtime, d.owner).map_err(|e| (d.path.clone(), e))?;
    }
    Ok(())
}

/// The relative path of an entry: absolute paths and `..` are refused,
/// `.` and empty components dropped (an empty result is the root).
pub(crate) fn safe_relative(raw: &[u8]) -> Result<PathBuf, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    let mut rel = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("path has a `..` component".into()),
            c => rel.push(OsStr::from_bytes(c)),
        }
    }
    Ok(rel)
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::safe_relative;
    use std::path::PathBuf;

    #[test]
    fn relative_paths_are_checked() {
        assert_eq!(safe_relative(b"./a//b/./c"), Ok(PathBuf::from("a/b/c")));
        assert_eq!(safe_relative(b"./"), Ok(PathBuf::new()));
        assert!(safe_relative(b"/etc/passwd").is_err());
        assert!(safe_relative(b"a/../../b").is_err());
        assert!(safe_relative(b"..").is_err());
    }
}
