//! Files that change or vanish while archived are reported; strict mode fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sourcegraph_backup_core::BackupRepository;
use sourcegraph_backup_volumes::{ReadHook, ReadStage, VolumeError, VolumeStore};

fn tree(root: &Path) {
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::write(root.join("dir/grows"), vec![b'g'; 100_000]).unwrap();
    fs::write(root.join("dir/shrinks"), vec![b's'; 100_000]).unwrap();
    fs::write(root.join("dir/vanishes"), "soon gone").unwrap();
    fs::write(root.join("dir/stable"), "stable").unwrap();
}

fn hook() -> ReadHook {
    Arc::new(|stage, path: &Path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        match (stage, name) {
            (ReadStage::BeforeOpen, "vanishes") => fs::remove_file(path).unwrap(),
            (ReadStage::Opened, "grows") => {
                let mut f = OpenOptions::new().append(true).open(path).unwrap();
                f.write_all(&[b'+'; 5000]).unwrap();
            }
            (ReadStage::Opened, "shrinks") => {
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_len(10)
                    .unwrap();
            }
            _ => {}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_and_vanished_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("redis-store", &src).with_read_hook(hook());
    let (reader, report) = common::backup(&repo, &store).await.unwrap();
    let d = &report.details;
    assert_eq!(d["changed"]["count"], 2, "{d}");
    let changed = d["changed"]["first"].to_string();
    assert!(
        changed.contains("dir/grows") && changed.contains("dir/shrinks"),
        "{changed}"
    );
    assert_eq!(d["vanished"]["count"], 1);
    assert!(d["vanished"]["first"][0]
        .as_str()
        .unwrap()
        .contains("dir/vanishes"));
    assert!(report.warnings.iter().any(|w| w.contains("changed while read")));
    assert!(report.warnings.iter().any(|w| w.contains("vanished")));
    // The manifest carries them too.
    let section = &reader.manifest().stores[0];
    assert_eq!(section.details["changed"]["count"], 2);
    assert_eq!(section.warnings.len(), 2);

    // The archive stays well-formed: sizes are those of the headers.
    let target = tmp.path().join("restored");
    common::restore(reader, &VolumeStore::new("redis-store", &target))
        .await
        .unwrap();
    assert_eq!(fs::metadata(target.join("dir/grows")).unwrap().len(), 100_000);
    let shrunk = fs::read(target.join("dir/shrinks")).unwrap();
    assert_eq!(shrunk.len(), 100_000);
    assert_eq!(&shrunk[..10], &[b's'; 10]);
    assert!(shrunk[10..].iter().all(|&b| b == 0), "padded with zeros");
    assert_eq!(fs::read(target.join("dir/stable")).unwrap(), b"stable");
    assert!(!target.join("dir/vanishes").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_fails_on_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("redis-store", &src)
        .with_read_hook(hook())
        .strict(true);
    let err = common::backup(&repo, &store).await.unwrap_err();
    let err = err.downcast::<VolumeError>().unwrap();
    match *err {
        VolumeError::Unstable { count, ref first, .. } => {
            assert_eq!(count, 3);
            assert!(first.iter().any(|p| p.contains("dir/vanishes")));
        }
        ref other => panic!("unexpected {other:?}"),
    }
}

/// Without any hook: a writer thread appends to a big file throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let log = src.join("appendonly.aof");
    fs::write(&log, vec![b'x'; 32 << 20]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"*3\r\n$3\r\nSET\r\n").unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let repo = BackupRepository::in_memory();
    let store = VolumeStore::new("redis-store", &src);
    let result = common::backup(&repo, &store).await;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (_, report) = result.unwrap();
    assert_eq!(report.details["changed"]["count"], 1, "{}", report.details);
    assert!(report.warnings[0].contains("appendonly.aof"));
}
