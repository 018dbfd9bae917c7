//! The testkit's conformance suite on the volume store: round trip with progress, verify, a
//! corrupt part refused as a corrupt backup naming it, a non-empty target refused and left as
//! it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use sourcegraph_backup_core::Importer;
use sourcegraph_backup_testkit::conformance::{run, Subject};
use sourcegraph_backup_volumes::VolumeStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_store_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source");
    std::fs::create_dir_all(src.join("repos/a.git/objects")).unwrap();
    for i in 0..50 {
        std::fs::write(
            src.join(format!("repos/a.git/objects/{i:02}")),
            vec![i as u8; 20_000 + i],
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("objects/07", src.join("repos/a.git/HEAD")).unwrap();

    let targets = tmp.path().to_path_buf();
    let mut made = 0;
    let source = src.clone();
    let report = run(Subject {
        source: Arc::new(VolumeStore::new("gitserver-0", &src)),
        fresh_target: Box::new(move || {
            made += 1;
            let dir = targets.join(format!("target-{made}"));
            Box::pin(async move { Arc::new(VolumeStore::new("gitserver-0", &dir)) as Arc<dyn Importer> })
        }),
        check: Box::new(move |target| {
            let source = source.clone();
            Box::pin(async move {
                let restored = PathBuf::from(target.location());
                let (a, b) = (common::snapshot(&source), common::snapshot(&restored));
                let differing: Vec<_> = a
                    .iter()
                    .filter(|(p, n)| !p.as_os_str().is_empty() && b.get(*p) != Some(n))
                    .map(|(p, _)| p.display().to_string())
                    .chain(
                        b.keys()
                            .filter(|p| !a.contains_key(*p))
                            .map(|p| p.display().to_string()),
                    )
                    .collect();
                if differing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("paths differ: {differing:?}"))
                }
            })
        }),
    })
    .await;
    report.assert_conforms();
    assert!(report
        .corrupted_artifact
        .unwrap()
        .starts_with("gitserver-0/part-"));
}
