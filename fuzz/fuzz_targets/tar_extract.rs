//! The volumes crate's tar extractor, through its public restore path: the
//! input is stored as the one part of a volume in an in-memory backup and
//! `VolumeStore`'s `Importer::import` restores it into `<scratch>/root`.
//!
//! Invariants checked after every input, whether the restore succeeded or
//! was refused:
//! - `<scratch>` holds nothing but `root` and the sentinel directory
//!   `outside` (a file `secret` and an empty directory `dir`), and the
//!   sentinels are unchanged: same entries, content, mode, mtime and ctime
//!   (so no write, chmod, chown or utime went through a symlink or `..` to
//!   them), and `secret` has one link (none was hard-linked to it);
//! - every name in the archive (and every prefix of it), resolved through the
//!   symlinks that now exist, lands inside `root`, or else nothing exists
//!   there that was born during this input (so nothing was created outside
//!   the scratch directory either, e.g. through a symlink to `/tmp`);
//! - every hard-linked file inside `root` has all its links inside `root`.
//!
//! Symlinks that point outside `root` are allowed: the extractor recreates
//! them verbatim by design (see the crate docs, "Restoring safely"); what
//! must hold is that none is ever followed while restoring, which the checks
//! above observe.
//!
//! The scratch directory is `$SGB_FUZZ_SCRATCH` or `<tmp>/sgb-fuzz-tar-<pid>`;
//! it is reused for every input (`root` is removed after each).
#![no_main]

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, ImportContext, Importer, ProgressSink, SourceInfo,
    StoreKind, StoreSection,
};
use sourcegraph_backup_volumes::VolumeStore;

const STORE: &str = "fuzz";

struct Scratch {
    base: PathBuf,
    root: PathBuf,
    sentinels: Vec<(PathBuf, Snapshot)>,
}

/// What must not change about a sentinel.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Option<Vec<u8>>,
    entries: Option<BTreeSet<Vec<u8>>>,
}

fn snapshot(p: &Path) -> Snapshot {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("sentinel {} gone: {e}", p.display()));
    Snapshot {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content: m.is_file().then(|| std::fs::read(p).expect("read sentinel")),
        entries: m.is_dir().then(|| entries(p)),
    }
}

fn entries(p: &Path) -> BTreeSet<Vec<u8>> {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display()))
        .map(|e| e.expect("dir entry").file_name().as_bytes().to_vec())
        .collect()
}

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| {
    let base = std::env::var_os("SGB_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sgb-fuzz-tar-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("outside/dir")).expect("create scratch");
    std::fs::write(base.join("outside/secret"), b"secret").expect("write sentinel");
    let base = std::fs::canonicalize(&base).expect("canonical scratch");
    let outside = base.join("outside");
    let sentinels = [outside.clone(), outside.join("secret"), outside.join("dir")]
        .into_iter()
        .map(|p| {
            let s = snapshot(&p);
            (p, s)
        })
        .collect();
    Scratch {
        root: base.join("root"),
        base,
        sentinels,
    }
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

/// Restores `tar` as the one part of volume `fuzz` into `root`; the outcome
/// (restored or refused) does not matter here, only what it left behind.
async fn restore(tar: &[u8], root: &Path) {
    let repo = BackupRepository::in_memory();
    let w = repo.start_backup(BackupOption::AllData);
    let mut a = w
        .artifact(
            STORE,
            "part-0000.tar",
            ArtifactOptions::plain("application/x-tar"),
        )
        .await
        .expect("artifact");
    a.write(Bytes::copy_from_slice(tar)).await.expect("write");
    a.finish().await.expect("finish");
    let section = StoreSection {
        id: STORE.into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::Value::Null,
        warnings: vec![],
    };
    w.commit(vec![section], None, SourceInfo::default(), vec![])
        .await
        .expect("commit");
    let reader = repo.open_backup(w.id()).await.expect("open");
    let ctx = ImportContext::new(STORE, reader, ProgressSink::disabled()).expect("context");
    let _ = VolumeStore::new(STORE, root).import(ctx).await;
}

/// Entry names and hard-link targets as the tar crate reads them (the same
/// reader the extractor uses), up to the first error.
fn names(tar: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return out;
    };
    for e in entries {
        let Ok(e) = e else { break };
        out.push(e.path_bytes().into_owned());
        if let Some(l) = e.link_name_bytes() {
            out.push(l.into_owned());
        }
    }
    out
}

fn born(m: &std::fs::Metadata) -> SystemTime {
    m.created().unwrap_or_else(|_| {
        SystemTime::UNIX_EPOCH + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().max(0) as u32)
    })
}

/// For `name` and each prefix of it: where it resolves (through the
/// symlinks that exist now) when that is outside `root`, if something born
/// at or after `since` is there.
fn created_outside(s: &Scratch, root: &Path, name: &[u8], since: SystemTime) -> Option<PathBuf> {
    let mut lexical = if name.first() == Some(&b'/') {
        PathBuf::from("/")
    } else {
        root.to_path_buf()
    };
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => {
                lexical.push("..");
                continue;
            }
            c => {
                let parent = std::fs::canonicalize(&lexical);
                lexical.push(OsStr::from_bytes(c));
                let Ok(parent) = parent else { return None };
                // procfs and sysfs stamp their entries with the time they are looked at.
                if parent.starts_with(root) || parent.starts_with("/proc") || parent.starts_with("/sys") {
                    continue;
                }
                let at = parent.join(OsStr::from_bytes(c));
                // The sentinels (made just before the first input) are checked by `check`.
                if at == s.base || s.sentinels.iter().any(|(p, _)| *p == at) {
                    continue;
                }
                if let Ok(m) = std::fs::symlink_metadata(&at) {
                    if born(&m) >= since {
                        return Some(at);
                    }
                }
            }
        }
    }
    None
}

fn check(s: &Scratch, tar: &[u8], since: SystemTime) {
    let top = entries(&s.base);
    let allowed: BTreeSet<Vec<u8>> = [b"outside".to_vec(), b"root".to_vec()].into();
    assert!(
        top.is_subset(&allowed) && top.contains(&b"outside"[..]),
        "scratch holds {:?}",
        top.iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect::<Vec<_>>()
    );
    for (p, before) in &s.sentinels {
        let now = snapshot(p);
        assert_eq!(&now, before, "sentinel {} changed", p.display());
    }
    let root = match std::fs::canonicalize(&s.root) {
        Ok(r) => r,
        Err(_) => return, // refused before it was created
    };
    assert_eq!(root, s.root, "root is no longer a real directory");
    for name in names(tar) {
        if let Some(at) = created_outside(s, &root, &name, since) {
            panic!(
                "entry {:?} created {} outside the restore root",
                String::from_utf8_lossy(&name),
                at.display()
            );
        }
    }
    // Hard links: every link of a file inside the root is inside the root.
    let mut links: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.nlink() > 1 {
                links.entry((m.dev(), m.ino())).or_insert((0, m.nlink())).0 += 1;
            }
        }
    }
    for ((_, ino), (seen, nlink)) in links {
        assert_eq!(
            seen, nlink,
            "inode {ino} has {nlink} links but only {seen} inside the root"
        );
    }
}

fn clean(root: &Path) {
    if std::fs::remove_dir_all(root).is_ok() || !root.exists() {
        return;
    }
    // Not running as root: directories restored read-only block removal.
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(root).unwrap_or_else(|e| panic!("cannot clean {}: {e}", root.display()));
}

fuzz_target!(|data: &[u8]| {
    let s = &*SCRATCH;
    clean(&s.root);
    // File systems stamp times from a coarse clock: allow for it.
    let since = SystemTime::now() - Duration::from_millis(50);
    RUNTIME.block_on(restore(data, &s.root));
    check(s, data, since);
    clean(&s.root);
});
