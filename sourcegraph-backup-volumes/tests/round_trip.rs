//! A tree with every kind of entry survives backup and restore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::CString;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;
use sourcegraph_backup_core::BackupRepository;
use sourcegraph_backup_volumes::VolumeStore;

fn build_tree(root: &Path, outside: &Path) {
    fs::create_dir_all(root.join("a/b/c/d")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("a/b/c/d/deep.txt"), "deep").unwrap();
    fs::write(root.join("zero"), "").unwrap();
    // Sparse-ish 300 MiB: a hole with a few written blocks.
    let mut big = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(root.join("a/big.bin"))
        .unwrap();
    big.set_len(300 << 20).unwrap();
    for (i, off) in [0u64, 7 << 20, 150 << 20, (300 << 20) - 5]
        .into_iter()
        .enumerate()
    {
        big.seek(SeekFrom::Start(off)).unwrap();
        big.write_all(format!("block{i}").as_bytes()).unwrap();
    }
    drop(big);
    let long = "n".repeat(200);
    fs::write(root.join("a").join(&long), "long name").unwrap();
    // A hard link whose target has a long name, a long symlink target, a non-UTF-8 name.
    fs::hard_link(root.join("a").join(&long), root.join("a/zz-link-to-long")).unwrap();
    std::os::unix::fs::symlink(format!("a/{long}"), root.join("long-target-link")).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9")),
        "bytes",
    )
    .unwrap();
    fs::write(root.join("ünïcødé-文件-🙂.txt"), "unicode").unwrap();
    std::os::unix::fs::symlink("a/b/c/d/deep.txt", root.join("inside-link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("outside-link")).unwrap();
    std::os::unix::fs::symlink("../../../nowhere", root.join("a/b/dangling")).unwrap();
    fs::write(root.join("hard1"), "shared content").unwrap();
    fs::hard_link(root.join("hard1"), root.join("a/hard2")).unwrap();
    fs::write(root.join("private"), "0600").unwrap();
    fs::set_permissions(root.join("private"), Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("script.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("script.sh"), Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(root.join("shared")).unwrap();
    fs::write(root.join("shared/file"), "in setgid dir").unwrap();
    fs::set_permissions(root.join("shared"), Permissions::from_mode(0o2775)).unwrap();
    let fifo = CString::new(root.join("a/pipe").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    // Distinct, whole-second mtimes everywhere (tar keeps seconds).
    let t = FileTime::from_unix_time(1_600_000_000, 0);
    for p in [
        "zero",
        "a/big.bin",
        "private",
        "script.sh",
        "hard1",
        "shared/file",
        "a/b/c/d/deep.txt",
    ] {
        filetime::set_file_mtime(root.join(p), t).unwrap();
    }
    filetime::set_symlink_file_times(
        root.join("inside-link"),
        t,
        FileTime::from_unix_time(1_500_000_000, 0),
    )
    .unwrap();
    for d in ["a/b/c/d", "a/b/c", "a/b", "shared", "empty-dir", "a"] {
        filetime::set_file_mtime(root.join(d), FileTime::from_unix_time(1_400_000_000, 0)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_every_kind_of_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("src"), tmp.path().join("outside"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "must not be archived").unwrap();
    build_tree(&src, &outside);

    let repo = BackupRepository::local(tmp.path().join("repo")).unwrap();
    let store = VolumeStore::new("gitserver-0", &src);
    let (reader, report) = common::backup(&repo, &store).await.unwrap();

    let d = &report.details;
    assert_eq!(d["skipped_special"]["count"], 1, "{d}");
    assert!(d["skipped_special"]["first"][0]
        .as_str()
        .unwrap()
        .contains("a/pipe"));
    assert!(report.warnings.iter().any(|w| w.contains("a/pipe")));
    assert_eq!(d["hardlinks"], 2);
    assert_eq!(d["symlinks"], 4);
    assert_eq!(d["changed"]["count"], 0);
    assert_eq!(d["vanished"]["count"], 0);
    assert!(d["bytes"].as_u64().unwrap() >= 300 << 20);
    // The outside file's content never entered the archive.
    let stored = reader.manifest().stores[0].artifacts[0].clone();
    // Streamed (the archive is larger than a read into memory may be), with an overlap so a
    // match across two chunks is found too.
    let mut chunks = reader.open_artifact(&stored).into_chunks();
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        tail.extend_from_slice(&chunk.unwrap());
        assert!(!tail.windows(20).any(|w| w == b"must not be archived"));
        tail.drain(..tail.len().saturating_sub(19));
    }

    let target = tmp.path().join("restored");
    let restore = VolumeStore::new("gitserver-0", &target);
    let imported = common::restore(reader, &restore).await.unwrap();
    assert_eq!(imported.details["hardlinks"], 2);

    common::assert_trees_equal(&src, &target, &["a/pipe"]);
    let (h1, h2) = (
        fs::metadata(target.join("hard1")).unwrap(),
        fs::metadata(target.join("a/hard2")).unwrap(),
    );
    assert_eq!(h1.ino(), h2.ino(), "hard links restored as one inode");
    let long = "n".repeat(200);
    assert_eq!(
        fs::metadata(target.join("a").join(&long)).unwrap().ino(),
        fs::metadata(target.join("a/zz-link-to-long")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(target.join("outside-link")).unwrap(),
        outside.join("secret"),
        "the outside link is kept verbatim"
    );
    assert_eq!(
        fs::metadata(target.join("shared")).unwrap().mode() & 0o7777,
        0o2775
    );
    // The hole stays a hole.
    let big = fs::metadata(target.join("a/big.bin")).unwrap();
    assert!(
        big.blocks() * 512 < 64 << 20,
        "restored sparse file uses {} blocks",
        big.blocks()
    );
}
