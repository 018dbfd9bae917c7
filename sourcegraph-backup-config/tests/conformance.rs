//! The testkit's conformance suite on the configuration store (files to files): round trip
//! with progress, verify, a corrupt document refused as a corrupt backup naming it, a
//! non-empty target directory refused and left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sourcegraph_backup_config::files::ConfigFilePaths;
use sourcegraph_backup_config::{ConfigSnapshot, ConfigStore};
use sourcegraph_backup_core::{DataStore, Importer};
use sourcegraph_backup_testkit::conformance::{run, Subject};

/// Every document's name and exact text, in order.
async fn documents(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let snapshot = ConfigSnapshot::from_files(&ConfigFilePaths::in_dir(dir))
        .await
        .map_err(|e| e.to_string())?;
    Ok(snapshot
        .documents
        .iter()
        .map(|d| (d.name(), d.text.clone()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_store_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source");
    std::fs::create_dir_all(&src).unwrap();
    let paths = ConfigFilePaths::in_dir(&src);
    std::fs::write(&paths.site_config[0], common::site_text()).unwrap();
    std::fs::write(paths.global_settings.as_ref().unwrap(), common::settings_text()).unwrap();
    std::fs::write(
        paths.extsvc_config.as_ref().unwrap(),
        format!("{{\n  \"GITHUB\": [\n    {}\n  ]\n}}\n", common::github_text()),
    )
    .unwrap();
    let expected = documents(&src).await.unwrap();
    assert_eq!(expected.len(), 3, "{expected:?}");

    let root = tmp.path().to_path_buf();
    let mut made = 0;
    // Target directories by the location their store shows.
    let dirs: Arc<Mutex<HashMap<String, PathBuf>>> = Arc::default();
    let made_dirs = dirs.clone();
    let report = run(Subject {
        source: Arc::new(ConfigStore::files(paths)),
        fresh_target: Box::new(move || {
            made += 1;
            let dir = root.join(format!("target-{made}"));
            let store = ConfigStore::files(ConfigFilePaths::in_dir(&dir));
            made_dirs.lock().unwrap().insert(store.location(), dir);
            Box::pin(async move { Arc::new(store) as Arc<dyn Importer> })
        }),
        check: Box::new(move |target| {
            let expected = expected.clone();
            let dir = dirs
                .lock()
                .unwrap()
                .get(&target.location())
                .cloned()
                .unwrap_or_default();
            Box::pin(async move {
                let restored = documents(&dir).await?;
                if restored == expected {
                    Ok(())
                } else {
                    Err(format!("documents differ in {}: {restored:?}", dir.display()))
                }
            })
        }),
    })
    .await;
    report.assert_conforms();
}
