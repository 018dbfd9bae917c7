//! Shared test helpers: back a volume up, restore it, compare two trees.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sourcegraph_backup_core::{
    BackupOption, BackupReader, BackupRepository, BoxError, DataStore, ExportContext, ExportReport, Exporter,
    ImportContext, ImportReport, Importer, ProgressSink, SourceInfo, StoreError, StoreSection,
};
use sourcegraph_backup_volumes::VolumeStore;

/// Exports `store` into a new backup of `repo` and commits it.
pub async fn backup(
    repo: &BackupRepository,
    store: &VolumeStore,
) -> Result<(BackupReader, ExportReport), BoxError> {
    let w = repo.start_backup(BackupOption::AllData);
    let report = store
        .export(ExportContext::new(
            store.id(),
            w.clone(),
            ProgressSink::disabled(),
        ))
        .await
        .map_err(StoreError::into_cause)?;
    let section = StoreSection {
        id: store.id().into(),
        kind: store.kind(),
        catalog: store.catalog(),
        details: report.details.clone(),
        warnings: report.warnings.clone(),
    };
    w.commit(vec![section], None, SourceInfo::default(), vec![])
        .await?;
    Ok((repo.open_backup(w.id()).await?, report))
}

/// Restores store `id` of `reader` into `target`.
pub async fn restore(reader: BackupReader, target: &VolumeStore) -> Result<ImportReport, BoxError> {
    let ctx = ImportContext::new(target.id(), reader, ProgressSink::disabled())?;
    target.import(ctx).await.map_err(StoreError::into_cause)
}

/// What the comparison looks at for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub link: Option<PathBuf>,
}

/// Every path under `root` (lstat, never followed), the root itself as "".
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let m = std::fs::symlink_metadata(&abs).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "special"
        };
        let link = ft.is_symlink().then(|| std::fs::read_link(&abs).unwrap());
        out.insert(
            rel.clone(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                size: if ft.is_dir() { 0 } else { m.len() },
                // Directory mtimes of the root change as the test works in it.
                mtime: m.mtime(),
                link,
            },
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&abs).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    out
}

/// Asserts the two files have the same bytes (chunk-wise memcmp: fast even unoptimised).
pub fn assert_same_content(a: &Path, b: &Path) {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        assert_eq!(na, nb, "{} and {} differ in length", a.display(), b.display());
        assert!(ba[..na] == bb[..nb], "{} and {} differ", a.display(), b.display());
        if na == 0 {
            return;
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Asserts `restored` equals `source` except the paths in `missing` (which
/// must be absent from the restore): type, mode, size, mtime, link target, content.
pub fn assert_trees_equal(source: &Path, restored: &Path, missing: &[&str]) {
    let mut a = snapshot(source);
    let b = snapshot(restored);
    for m in missing {
        assert!(a.remove(Path::new(m)).is_some(), "{m} not in the source");
    }
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "different paths");
    for (path, na) in &a {
        assert_eq!(na, &b[path], "{} differs", path.display());
        if na.kind == "file" {
            assert_same_content(&source.join(path), &restored.join(path));
        }
    }
}
