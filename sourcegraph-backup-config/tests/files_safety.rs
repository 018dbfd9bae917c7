//! Restoring into files and reading input files, as a hostile or unlucky user would (issue 11:
//! a non-empty target, private modes, `REDACTED` secrets, special and huge input files).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::backup::{export, import};
use common::*;
use sourcegraph_backup_config::files::{ConfigFilePaths, SITE_FILE_NAME};
use sourcegraph_backup_config::{ConfigError, ConfigSnapshot, ConfigStore, ImportOptions};
use sourcegraph_backup_core::ProgressEvent;

/// A site configuration, global settings and one GitHub connection in `dir`.
fn write_input(dir: &Path, site: &str, extsvc: &str) -> ConfigFilePaths {
    std::fs::create_dir_all(dir).unwrap();
    let paths = ConfigFilePaths::in_dir(dir);
    std::fs::write(&paths.site_config[0], site).unwrap();
    std::fs::write(paths.global_settings.as_ref().unwrap(), settings_text()).unwrap();
    std::fs::write(paths.extsvc_config.as_ref().unwrap(), extsvc).unwrap();
    paths
}

fn github_file() -> String {
    format!("{{\"GITHUB\": [\n{}\n]}}\n", github_text())
}

fn fixture_input(dir: &tempfile::TempDir) -> ConfigFilePaths {
    write_input(dir.path(), &site_text(), &github_file())
}

/// A backup of the fixture files.
async fn fixture_backup() -> sourcegraph_backup_core::BackupRepository {
    let src = tempfile::tempdir().unwrap();
    let (repo, ..) = export(&ConfigStore::files(fixture_input(&src))).await.unwrap();
    repo
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_files_that_exist_needs_clean() {
    let repo = fixture_backup().await;
    let dst = tempfile::tempdir().unwrap();
    let existing = dst.path().join(SITE_FILE_NAME);
    std::fs::write(&existing, "{\"keep\": \"me\"}").unwrap();
    let store = ConfigStore::files(ConfigFilePaths::in_dir(dst.path()));

    let err = import(&repo, &store).await.unwrap_err();
    assert!(err.contains("--clean"), "names the flag: {err}");
    assert!(
        err.contains(&existing.display().to_string()),
        "names the file: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "{\"keep\": \"me\"}",
        "the existing file is untouched"
    );
    assert_eq!(
        names_in(dst.path()),
        [SITE_FILE_NAME],
        "nothing else was written (no other file, no temporary file)"
    );

    // A dry run refuses alike, so that it predicts the real run.
    let dry = store.clone().with_import_options(ImportOptions {
        dry_run: true,
        ..ImportOptions::default()
    });
    let err = import(&repo, &dry).await.unwrap_err();
    assert!(err.contains("--clean"), "{err}");

    // The library call names the files in a typed error.
    let snapshot = ConfigSnapshot::from_files(&fixture_input(&tempfile::tempdir().unwrap()))
        .await
        .unwrap();
    match snapshot
        .write_files(&ConfigFilePaths::in_dir(dst.path()), false)
        .await
    {
        Err(ConfigError::TargetExists { files }) => assert_eq!(files, vec![existing.clone()]),
        other => panic!("expected TargetExists, got {other:?}"),
    }

    // With the opt-in, the file is replaced and the report says so; the replaced file is
    // private even though the old one was not.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let report = import(&repo, &store.clone().overwrite(true)).await.unwrap();
    assert_eq!(
        report.details["replaced"],
        serde_json::json!([existing.display().to_string()])
    );
    assert_eq!(report.details["files"].as_array().unwrap().len(), 3);
    assert_private(dst.path(), dst.path(), &ConfigFilePaths::in_dir(dst.path()));
    assert_eq!(
        names_in(dst.path()),
        ["extsvc-config.json", "global-settings.json", SITE_FILE_NAME],
        "no temporary file stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_leaves_files_the_backup_has_no_document_for_and_says_so() {
    // A backup without code host connections.
    let src = tempfile::tempdir().unwrap();
    let paths = fixture_input(&src);
    std::fs::remove_file(paths.extsvc_config.as_ref().unwrap()).unwrap();
    let (repo, ..) = export(&ConfigStore::files(ConfigFilePaths {
        extsvc_config: None,
        ..paths
    }))
    .await
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let out = ConfigFilePaths::in_dir(dst.path());
    let stale = out.extsvc_config.clone().unwrap();
    std::fs::write(&stale, "{}").unwrap();
    let err = import(&repo, &ConfigStore::files(out.clone())).await.unwrap_err();
    assert!(
        err.contains(&stale.display().to_string()) && err.contains("--clean"),
        "{err}"
    );
    assert!(!out.site_config[0].exists(), "nothing written");
    let report = import(&repo, &ConfigStore::files(out.clone()).overwrite(true))
        .await
        .unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(&stale.display().to_string()) && w.contains("left as it was")),
        "{:?}",
        report.warnings
    );
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), "{}");
    assert_eq!(
        std::fs::read(&out.site_config[0]).unwrap(),
        site_text().as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_an_empty_files_directory_is_private() {
    let repo = fixture_backup().await;
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new/cfg");
    let paths = ConfigFilePaths::in_dir(&out);
    #[cfg(target_os = "linux")]
    if std::env::var_os(UMASK_CHILD).is_some() {
        assert_eq!(umask(), "0000");
        println!("umask checked: {}", umask());
    }
    let report = import(&repo, &ConfigStore::files(paths.clone())).await.unwrap();
    assert_eq!(report.details["replaced"], serde_json::json!([]));
    assert_private(dst.path(), &out, &paths);
}

/// Set in the child process that [`restored_files_are_private_under_umask_000`] runs.
const UMASK_CHILD: &str = "SGB_CONFIG_TEST_UMASK_000";

/// Runs [`restore_into_an_empty_files_directory_is_private`] again in a child process whose
/// umask is 000 (files would be created 0666, directories 0777 without explicit modes).
#[cfg(target_os = "linux")]
#[test]
fn restored_files_are_private_under_umask_000() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([
            "--exact",
            "restore_into_an_empty_files_directory_is_private",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UMASK_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the test ran in the child: {stdout}");
    assert!(stdout.contains("umask checked: 0000"), "{stdout}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The process umask, from `/proc/self/status`.
#[cfg(target_os = "linux")]
fn umask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    line["Umask:".len()..].trim().to_owned()
}

/// Every directory created below `root` is 0700 and every file 0600; `root` keeps its mode.
fn assert_private(root: &Path, out: &Path, paths: &ConfigFilePaths) {
    #[cfg(unix)]
    {
        let root_mode = mode(root);
        let mut d = out;
        while d != root {
            assert_eq!(
                format!("{:o}", mode(d)),
                "700",
                "directory {} is private",
                d.display()
            );
            d = d.parent().unwrap();
        }
        assert_eq!(mode(root), root_mode, "an existing parent keeps its mode");
        let files = paths
            .site_config
            .iter()
            .chain(&paths.global_settings)
            .chain(&paths.extsvc_config);
        for f in files {
            assert_eq!(format!("{:o}", mode(f)), "600", "file {} is private", f.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (root, out, paths);
    assert_eq!(
        std::fs::read(&paths.site_config[0]).unwrap(),
        site_text().as_bytes()
    );
}

fn redacted_site() -> String {
    "{\n  \"externalURL\": \"https://sg.example.com\",\n  \"auth.providers\": [\n    {\"type\": \"builtin\"},\n    {\"type\": \"github\", \"clientID\": \"abc\", \"clientSecret\": \"REDACTED\"}\n  ]\n}\n".to_owned()
}

fn redacted_extsvc() -> String {
    "{\"GITHUB\": [{\"url\": \"https://github.com\", \"token\": \"REDACTED\"}]}\n".to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn redacted_secrets_are_reported_at_backup_per_field() {
    let src = tempfile::tempdir().unwrap();
    let paths = write_input(src.path(), &redacted_site(), &redacted_extsvc());
    let (_, report, manifest, events) = export(&ConfigStore::files(paths)).await.unwrap();
    let site = "site configuration: secret field auth.providers[1].clientSecret holds REDACTED";
    let host = "code host connection GITHUB \"GITHUB #1\": secret field token holds REDACTED";
    for expected in [site, host] {
        assert!(
            report.warnings.iter().any(|w| w.starts_with(expected)),
            "report warns {expected:?}: {:?}",
            report.warnings
        );
        assert!(
            manifest
                .store("config")
                .unwrap()
                .warnings
                .iter()
                .any(|w| w.starts_with(expected)),
            "the manifest records it"
        );
        assert!(
            events.iter().any(
                |e| matches!(e, ProgressEvent::Warning { message, .. } if message.starts_with(expected))
            ),
            "a progress warning says it: {events:?}"
        );
    }
    // A clean configuration gives no such warning.
    let src = tempfile::tempdir().unwrap();
    let paths = write_input(src.path(), &site_text(), &github_file());
    let (_, report, ..) = export(&ConfigStore::files(paths)).await.unwrap();
    assert!(
        !report.warnings.iter().any(|w| w.contains("holds REDACTED")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redacted_secrets_are_refused_into_files() {
    let src = tempfile::tempdir().unwrap();
    let paths = write_input(src.path(), &redacted_site(), &github_file());
    let (repo, ..) = export(&ConfigStore::files(paths.clone())).await.unwrap();
    let dst = tempfile::tempdir().unwrap();
    let store = ConfigStore::files(ConfigFilePaths::in_dir(dst.path()));
    let err = import(&repo, &store).await.unwrap_err();
    assert!(
        err.contains("site configuration") && err.contains("secret field auth.providers[1].clientSecret"),
        "{err}"
    );
    assert!(names_in(dst.path()).is_empty(), "nothing written");
    // The library call refuses the same way.
    let snapshot = ConfigSnapshot::from_files(&paths).await.unwrap();
    let err = snapshot
        .write_files(&ConfigFilePaths::in_dir(dst.path()), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.providers[1].clientSecret"), "{err}");
    assert!(names_in(dst.path()).is_empty(), "nothing written");
}

/// `from_files` with a deadline: today's code would block or read forever.
async fn read_within(paths: &ConfigFilePaths) -> Result<ConfigSnapshot, String> {
    match tokio::time::timeout(Duration::from_secs(20), ConfigSnapshot::from_files(paths)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!("reading {paths:?} did not finish within 20 s"),
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_linked_to_dev_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_input(dir.path(), &site_text(), &github_file());
    std::fs::remove_file(&paths.site_config[0]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &paths.site_config[0]).unwrap();
    let err = read_within(&paths).await.unwrap_err();
    assert!(
        err.contains(&paths.site_config[0].display().to_string()) && err.contains("not a regular file"),
        "{err}"
    );
    assert!(err.contains("character device"), "says what it is: {err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_that_is_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_input(dir.path(), &site_text(), &github_file());
    let settings = paths.global_settings.clone().unwrap();
    std::fs::remove_file(&settings).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&settings)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    // Should the read open the FIFO and wait for a writer, a writer comes after the deadline
    // and closes at once, so that the blocked read ends and the test fails instead of hanging.
    let fifo = settings.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(25));
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    });
    let err = read_within(&paths).await.unwrap_err();
    assert!(
        err.contains(&settings.display().to_string()) && err.contains("not a regular file"),
        "{err}"
    );
    assert!(err.contains("FIFO"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_config_file_is_refused_naming_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_input(dir.path(), &site_text(), &github_file());
    let extsvc = paths.extsvc_config.clone().unwrap();
    // Sparse: 16 MiB + 1 byte without writing them.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&extsvc)
        .unwrap()
        .set_len(16 * 1024 * 1024 + 1)
        .unwrap();
    let err = read_within(&paths).await.unwrap_err();
    assert!(
        err.contains(&extsvc.display().to_string()) && err.contains("16 MiB"),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_linked_to_a_regular_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_input(dir.path(), &site_text(), &github_file());
    let real = dir.path().join("real-site.json");
    std::fs::rename(&paths.site_config[0], &real).unwrap();
    std::os::unix::fs::symlink(&real, &paths.site_config[0]).unwrap();
    let snapshot = read_within(&paths).await.unwrap();
    assert_eq!(snapshot.site_configurations().next().unwrap().text, site_text());
    assert_eq!(snapshot.code_hosts().count(), 1);
}
