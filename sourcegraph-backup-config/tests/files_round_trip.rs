//! Files → backup → files, byte for byte, and the start-up file formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backup::{export, import};
use common::*;
use sourcegraph_backup_config::files::{
    ConfigFilePaths, EXTSVC_CONFIG_FILE, GLOBAL_SETTINGS_FILE, SITE_CONFIG_FILE,
};
use sourcegraph_backup_config::{ConfigSnapshot, ConfigStore, DocumentKind};

fn extsvc_text() -> String {
    format!(
        "// code hosts\r\n{{\r\n  \"GITHUB\": [\r\n    {},\r\n    {{\"url\": \"https://ghe.example.com\", \"token\": \"t2\",}}, // second\r\n  ],\r\n  \"OTHER\": [\n{}\n  ],\r\n}}\r\n",
        github_text(),
        big_text()
    )
}

fn write_fixture(dir: &std::path::Path) -> ConfigFilePaths {
    std::fs::write(dir.join("site.json"), site_text()).unwrap();
    std::fs::write(dir.join("settings.json"), settings_text()).unwrap();
    std::fs::write(dir.join("extsvc.json"), extsvc_text()).unwrap();
    let env = |n: &str| match n {
        SITE_CONFIG_FILE => Some(dir.join("site.json").display().to_string()),
        GLOBAL_SETTINGS_FILE => Some(dir.join("settings.json").display().to_string()),
        EXTSVC_CONFIG_FILE => Some(dir.join("extsvc.json").display().to_string()),
        _ => None,
    };
    ConfigFilePaths::from_env_with(env)
}

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_byte_exact() {
    let src = tempfile::tempdir().unwrap();
    let paths = write_fixture(src.path());
    let snapshot = ConfigSnapshot::from_files(&paths).await.unwrap();
    let names: Vec<String> = snapshot.code_hosts().map(|d| d.name()).collect();
    assert_eq!(
        names,
        [
            "code host connection GITHUB \"GITHUB #1\"",
            "code host connection GITHUB \"GITHUB #2\"",
            "code host connection OTHER \"OTHER #1\""
        ]
    );
    assert_eq!(snapshot.code_hosts().next().unwrap().text, github_text());
    // An entry's text is its exact slice of the file, from `{` to `}`.
    assert!(snapshot.code_hosts().nth(2).unwrap().text == big_text().trim_end());

    let (repo, report, manifest, _) = export(&ConfigStore::files(paths)).await.unwrap();
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("deletes every code host connection")));
    let section = manifest.store("config").unwrap();
    assert_eq!(
        section.artifact("site.jsonc").unwrap().compression,
        sourcegraph_backup_core::Compression::None
    );
    let reader = repo.open_latest().await.unwrap();
    let bytes = reader
        .open_artifact(section.artifact("files/extsvc-config.json").unwrap())
        .read_to_end()
        .await
        .unwrap();
    assert!(
        bytes.as_ref() == extsvc_text().as_bytes(),
        "the code host file is kept verbatim"
    );
    let ui = reader
        .open_artifact(section.artifact("ui/site-configuration.jsonc").unwrap())
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(ui.as_ref(), site_text().as_bytes());

    let dst = tempfile::tempdir().unwrap();
    let out = ConfigFilePaths::in_dir(dst.path().join("cfg"));
    let imported = import(&repo, &ConfigStore::files(out.clone())).await.unwrap();
    assert!(imported
        .warnings
        .iter()
        .any(|w| w.contains("EXTSVC_CONFIG_FILE deletes every")));
    assert_eq!(
        std::fs::read(&out.site_config[0]).unwrap(),
        site_text().as_bytes()
    );
    assert_eq!(
        std::fs::read(out.global_settings.as_ref().unwrap()).unwrap(),
        settings_text().as_bytes()
    );
    assert!(std::fs::read(out.extsvc_config.as_ref().unwrap()).unwrap() == extsvc_text().as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn spliced_code_host_file_keeps_each_text() {
    let src = tempfile::tempdir().unwrap();
    let paths = write_fixture(src.path());
    let mut snapshot = ConfigSnapshot::from_files(&paths).await.unwrap();
    // Documents from a database: no original file, so the texts are spliced into one.
    snapshot.extsvc_file_text = None;
    for (i, d) in snapshot.documents.iter_mut().enumerate() {
        if let DocumentKind::CodeHostConnection { display_name, .. } = &mut d.kind {
            *display_name = format!("from db {i}");
        }
    }
    let dst = tempfile::tempdir().unwrap();
    let out = ConfigFilePaths::in_dir(dst.path());
    snapshot.write_files(&out, false).await.unwrap();
    let back = ConfigSnapshot::from_files(&out).await.unwrap();
    let a: Vec<&str> = snapshot.code_hosts().map(|d| d.text.as_str()).collect();
    let b: Vec<&str> = back.code_hosts().map(|d| d.text.as_str()).collect();
    assert!(a == b);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_documents_write_no_file() {
    let src = tempfile::tempdir().unwrap();
    let paths = write_fixture(src.path());
    let mut snapshot = ConfigSnapshot::from_files(&paths).await.unwrap();
    snapshot.documents[1].text = "{\"a\": 1,\n \"b\": }".into();
    let dst = tempfile::tempdir().unwrap();
    let out = ConfigFilePaths::in_dir(dst.path());
    let err = snapshot.write_files(&out, false).await.unwrap_err().to_string();
    assert!(err.contains("global settings") && err.contains("line 2"), "{err}");
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);
    // Reading a malformed file names the file and the position.
    std::fs::write(src.path().join("settings.json"), "{\n\n  \"x\": [1, 2,, 3]\n}").unwrap();
    let err = ConfigSnapshot::from_files(&paths).await.unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");
}
