//! Import safety on a real PostgreSQL cluster: validation, optimistic concurrency, dry runs,
//! redaction markers, and secrets never leaking into anything the crate formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backup::{export, import};
use common::*;
use sourcegraph_backup_config::{
    ConfigDocument, ConfigError, ConfigImporter, ConfigSnapshot, ConfigStore, DatabaseSourceOptions,
    DocumentKind, ImportOptions, PlanAction, Provenance,
};
use sourcegraph_backup_testkit::PgCluster;

async fn seeded(
    generation: Generation,
) -> (
    PgCluster,
    sourcegraph_backup_pg::PgConnectionConfig,
    ConfigSnapshot,
) {
    let cluster = PgCluster::start().await.unwrap();
    let db = create_db(&cluster, "sg", generation).await;
    seed(&cluster, "sg", generation).await;
    let snapshot = ConfigSnapshot::from_database(&db, &DatabaseSourceOptions::default())
        .await
        .unwrap();
    (cluster, db, snapshot)
}

fn with_text(
    snapshot: &ConfigSnapshot,
    pick: impl Fn(&ConfigDocument) -> bool,
    text: &str,
) -> ConfigSnapshot {
    let mut s = snapshot.clone();
    for d in s.documents.iter_mut().filter(|d| pick(d)) {
        d.text = text.to_owned();
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revision_that_moved_after_planning_aborts_cleanly() {
    let (cluster, db, snapshot) = seeded(Generation::V7).await;
    let changed = with_text(
        &snapshot,
        |d| d.kind == DocumentKind::GlobalSettings,
        "{\"new\": true}",
    );
    let importer = ConfigImporter::new(db.clone(), ImportOptions::default());

    let plan = importer.plan(&changed).await.unwrap();
    assert!(plan.changes.iter().any(|c| c.action == PlanAction::Update));
    cluster
        .batch_execute("sg", "INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"someone\": \"else\"}')")
        .await
        .unwrap();
    let before = counts(&cluster, "sg").await;
    let err = importer.apply(&plan).await.unwrap_err();
    assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("someone else has already applied a newer edit to site configuration"),
        "{err}"
    );
    assert_eq!(counts(&cluster, "sg").await, before, "nothing written");

    // A code host updated behind our back is named too.
    let plan = importer.plan(&changed).await.unwrap();
    cluster
        .batch_execute("sg", "UPDATE external_services SET config = '{\"url\": \"https://github.com\", \"token\": \"y\"}', updated_at = now() + interval '1 second' WHERE display_name = 'GitHub.com'")
        .await
        .unwrap();
    let err = importer.apply(&plan).await.unwrap_err().to_string();
    assert!(err.contains("GITHUB \"GitHub.com\""), "{err}");
    assert_eq!(counts(&cluster, "sg").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_documents_are_refused_with_line_and_column() {
    let (cluster, db, snapshot) = seeded(Generation::V5).await;
    let before = counts(&cluster, "sg").await;
    let importer = ConfigImporter::new(db, ImportOptions::default());
    let cases = [
        ("{\n  \"a\": \"unclosed\n}", "line 2"),
        ("{\r\n  \"a\": 1,\r\n  \"b\": nope\r\n}", "line 3, column 8"),
        (
            "[\"top\", \"level\"]",
            "must be a JSON object, found an array at line 1, column 1",
        ),
        ("", "empty"),
        ("  \n// nothing but a comment\n", "empty"),
    ];
    for (text, expected) in cases {
        let bad = with_text(&snapshot, |d| d.kind == DocumentKind::GlobalSettings, text);
        let err = importer.import(&bad).await.unwrap_err().to_string();
        assert!(err.contains("global settings is not valid"), "{err}");
        assert!(err.contains(expected), "{text:?}: {err}");
        assert_eq!(
            counts(&cluster, "sg").await,
            before,
            "target unchanged for {text:?}"
        );
    }
    // A malformed code host connection is named by kind and display name.
    let bad = with_text(
        &snapshot,
        |d| d.kind.code_host_kind() == Some("GITHUB"),
        "{\"url\": ",
    );
    let err = importer.import(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("GITHUB \"GitHub.com\"") && err.contains("line 1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_writes_nothing_and_shows_the_change() {
    let (cluster, db, snapshot) = seeded(Generation::V7).await;
    let changed = with_text(
        &snapshot,
        |d| d.kind == DocumentKind::GlobalSettings,
        "{\n  // comment in settings\n  \"zeta\": 2,\n  \"alpha\": \"Grüße\",\n}\n",
    );
    let before = counts(&cluster, "sg").await;
    let importer = ConfigImporter::new(
        db,
        ImportOptions {
            dry_run: true,
            ..Default::default()
        },
    );
    let outcome = importer.import(&changed).await.unwrap();
    assert_eq!(outcome.written, 0);
    assert!(outcome.dry_run);
    assert_eq!(counts(&cluster, "sg").await, before);
    let settings = outcome
        .plan
        .changes
        .iter()
        .find(|c| c.kind == DocumentKind::GlobalSettings)
        .unwrap();
    assert_eq!(settings.action, PlanAction::Update);
    assert!(
        settings.diff.contains("-  \"zeta\": 1,") && settings.diff.contains("+  \"zeta\": 2,"),
        "{}",
        settings.diff
    );
    let unchanged = outcome
        .plan
        .changes
        .iter()
        .filter(|c| c.action == PlanAction::Unchanged)
        .count();
    assert_eq!(unchanged, 3, "{}", outcome.plan);
}

#[tokio::test(flavor = "multi_thread")]
async fn redacted_secrets_are_refused_naming_the_field() {
    let (cluster, db, snapshot) = seeded(Generation::V5).await;
    let before = counts(&cluster, "sg").await;
    let importer = ConfigImporter::new(db.clone(), ImportOptions::default());
    let api_copy = with_text(
        &snapshot,
        |d| d.kind.code_host_kind() == Some("GITHUB"),
        "{\"url\": \"https://github.com\", \"token\": \"REDACTED\"}",
    );
    let err = importer.import(&api_copy).await.unwrap_err().to_string();
    assert!(
        err.contains("GITHUB \"GitHub.com\"") && err.contains("secret field token"),
        "{err}"
    );
    let api_site = with_text(
        &snapshot,
        |d| d.kind == DocumentKind::SiteConfiguration,
        "{\"auth.providers\": [{\"type\": \"github\", \"clientSecret\": \"REDACTED\"}]}",
    );
    let err = importer.import(&api_site).await.unwrap_err().to_string();
    assert!(err.contains("auth.providers[0].clientSecret"), "{err}");
    assert_eq!(counts(&cluster, "sg").await, before);

    // Through the store as well: the export succeeds (it carries what is there), the import refuses.
    cluster
        .batch_execute("sg", "INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"email.smtp\": {\"password\": \"REDACTED\"}}')")
        .await
        .unwrap();
    let (repo, report, ..) = export(&ConfigStore::database(db.clone())).await.unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("site configuration: secret field email.smtp.password holds REDACTED")),
        "the backup reports it: {:?}",
        report.warnings
    );
    let err = import(&repo, &ConfigStore::database(db)).await.unwrap_err();
    assert!(err.contains("email.smtp.password"), "{err}");
    // And into files, as into the database.
    let dir = tempfile::tempdir().unwrap();
    let files = ConfigStore::files(sourcegraph_backup_config::ConfigFilePaths::in_dir(dir.path()));
    let err = import(&repo, &files).await.unwrap_err();
    assert!(err.contains("secret field email.smtp.password"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_secrets_never_appear_in_formatted_output() {
    let (cluster, db, snapshot) = seeded(Generation::V7).await;
    let secrets = [TOKEN, "gh-client-secret-xyz", "smtp-pass-123"];
    let mut out = Vec::new();
    out.push(format!("{snapshot:?}\n{snapshot}\n{snapshot:#?}"));
    for d in &snapshot.documents {
        out.push(format!(
            "{d:?} {d} {}",
            sourcegraph_backup_config::redacted_text(d).unwrap()
        ));
    }
    // A plan whose diffs touch the secret lines (token rotated, site changed).
    let rotated = with_text(
        &snapshot,
        |d| d.kind.code_host_kind() == Some("GITHUB"),
        &github_text().replace("\"repositoryQuery\"", "\"exclude\": [],\n\t\"repositoryQuery\""),
    );
    let importer = ConfigImporter::new(
        db.clone(),
        ImportOptions {
            dry_run: true,
            ..Default::default()
        },
    );
    let outcome = importer.import(&rotated).await.unwrap();
    assert!(outcome.plan.changes.iter().any(|c| c.diff.contains("exclude")));
    out.push(format!("{outcome:?}\n{}\n{:#?}", outcome.plan, outcome.plan));
    // Errors about documents holding the token: malformed right after it, missing fields, conflicts.
    let broken = with_text(
        &snapshot,
        |d| d.kind.code_host_kind() == Some("GITHUB"),
        &format!("{{\"token\": \"{TOKEN}"),
    );
    let e = importer.import(&broken).await.unwrap_err();
    out.push(format!("{e} {e:?}"));
    let missing = with_text(
        &snapshot,
        |d| d.kind.code_host_kind() == Some("GITHUB"),
        &format!("{{\"token\": \"{TOKEN}\"}}"),
    );
    let e = importer.import(&missing).await.unwrap_err();
    out.push(format!("{e} {e:?}"));
    let real = ConfigImporter::new(db.clone(), ImportOptions::default());
    let plan = real.plan(&rotated).await.unwrap();
    cluster
        .batch_execute(
            "sg",
            "UPDATE external_services SET updated_at = now() + interval '1 minute'",
        )
        .await
        .unwrap();
    let e = real.apply(&plan).await.unwrap_err();
    out.push(format!("{e} {e:?} {plan:?}"));
    // The store: Debug, location, export report, manifest details, progress, import report.
    let store = ConfigStore::database(db.clone());
    out.push(format!(
        "{store:?} {}",
        sourcegraph_backup_core::DataStore::location(&store)
    ));
    let (repo, report, manifest, events) = export(&store).await.unwrap();
    out.push(format!(
        "{report:?} {}",
        serde_json::to_string(&manifest).unwrap()
    ));
    out.push(format!("{events:?}"));
    let dst = create_db(&cluster, "dst", Generation::V7).await;
    let imported = import(&repo, &ConfigStore::database(dst)).await.unwrap();
    assert!(imported.details["diffs"].as_array().unwrap().len() >= 3);
    out.push(format!("{imported:?}"));

    let all = out.join("\n");
    for s in secrets {
        assert!(!all.contains(s), "secret {s} leaked");
    }
    assert!(all.contains("REDACTED"), "the redacted views were formatted");
}

#[test]
fn documents_debug_shows_length_and_hash_only() {
    let d = ConfigDocument::new(
        DocumentKind::CodeHostConnection {
            kind: "GITHUB".into(),
            display_name: "x".into(),
            id: Some(1),
        },
        github_text(),
        Provenance::default(),
    );
    let dbg = format!("{d:?}");
    assert!(dbg.contains(&d.sha256()) && dbg.contains(&github_text().len().to_string()));
    assert!(!dbg.contains(TOKEN) && !format!("{d}").contains(TOKEN));
}
