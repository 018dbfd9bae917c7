//! Database → backup → database, on real PostgreSQL clusters, in two schema generations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backup::{export, import};
use common::*;
use sourcegraph_backup_config::{
    ConfigSnapshot, ConfigStore, DatabaseSourceOptions, DocumentKind, ImportOptions,
};
use sourcegraph_backup_testkit::PgCluster;

async fn round_trip(src_gen: Generation, dst_gen: Generation) {
    let cluster = PgCluster::start().await.unwrap();
    let src = create_db(&cluster, "src", src_gen).await;
    seed(&cluster, "src", src_gen).await;
    let dst = create_db(&cluster, "dst", dst_gen).await;
    // The target already has history: it must be kept.
    {
        let c = cluster.connect("dst").await.unwrap();
        c.batch_execute(
            "SET app.current_tenant = '1'; \
             INSERT INTO critical_and_site_config (type, contents) VALUES ('site', '{\"target\": 1}'); \
             INSERT INTO settings (contents) VALUES ('{\"target\": 1}')",
        )
        .await
        .unwrap();
    }
    let before = counts(&cluster, "dst").await;

    let snapshot = ConfigSnapshot::from_database(&src, &DatabaseSourceOptions::default())
        .await
        .unwrap();
    assert_eq!(snapshot.documents.len(), 4, "{snapshot:?}");
    assert_eq!(snapshot.site_configurations().next().unwrap().text, site_text());
    assert_eq!(snapshot.global_settings().unwrap().text, settings_text());
    let hosts: Vec<_> = snapshot.code_hosts().collect();
    assert_eq!(hosts[0].text, github_text());
    assert_eq!(hosts[1].text, big_text());
    assert!(big_text().len() >= 1024 * 1024);

    let (repo, report, manifest, _) = export(&ConfigStore::database(src.clone())).await.unwrap();
    // Each document is its own plain artifact, with the UI copies and the start-up files.
    let section = manifest.store("config").unwrap();
    for name in [
        "site.jsonc",
        "global-settings.jsonc",
        "ui/site-configuration.jsonc",
        "files/site-config.json",
        "files/extsvc-config.json",
    ] {
        assert!(
            section.artifact(name).is_some(),
            "missing {name}: {:?}",
            section.artifacts
        );
    }
    assert!(section
        .artifacts
        .iter()
        .any(|a| a.name().starts_with("code-hosts/") && a.name().ends_with("-github-com.jsonc")));
    // The report names the key material the new instance needs, never key material.
    let keys = serde_json::to_string(&report.details["encryption_keys"]).unwrap();
    assert!(
        keys.contains("extsvc-2024") && keys.contains("/etc/sg/keys/extsvc.key") && keys.contains("awskms"),
        "{keys}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("externalServiceKey: mounted key \"extsvc-2024\"")),
        "{:?}",
        report.warnings
    );

    let dst_store = ConfigStore::database(dst.clone());
    let first = import(&repo, &dst_store).await.unwrap();
    assert_eq!(first.details["written"], 4, "{:?}", first.details);
    let after = counts(&cluster, "dst").await;
    assert_eq!(after, (before.0 + 1, before.1 + 1, before.2 + 2));

    let back = ConfigSnapshot::from_database(&dst, &DatabaseSourceOptions::default())
        .await
        .unwrap();
    for (a, b) in snapshot.documents.iter().zip(&back.documents) {
        assert_eq!(a.text.as_bytes(), b.text.as_bytes(), "{a} vs {b}");
        assert_eq!(std::mem::discriminant(&a.kind), std::mem::discriminant(&b.kind));
    }
    if let DocumentKind::CodeHostConnection {
        display_name, kind, ..
    } = &back.code_hosts().next().unwrap().kind
    {
        assert_eq!((kind.as_str(), display_name.as_str()), ("GITHUB", "GitHub.com"));
    }

    // History is kept; the new revision has redacted_contents without the secrets.
    let c = cluster.connect("dst").await.unwrap();
    let rows = c
        .query(
            "SELECT contents, redacted_contents, author_user_id FROM critical_and_site_config ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "{\"target\": 1}");
    let redacted: String = rows[1].get(1);
    assert!(
        redacted.contains("\"clientSecret\": \"REDACTED\"") && !redacted.contains("gh-client-secret-xyz")
    );
    assert!(
        redacted.starts_with("// Site configuration"),
        "comments survive redaction"
    );
    assert_eq!(rows[1].get::<_, Option<i32>>(2), None);
    if dst_gen == Generation::V7 {
        let hash: Option<Vec<u8>> = c
            .query_one(
                "SELECT redacted_contents_hash FROM critical_and_site_config ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(hash.map(|h| h.len()), Some(32));
        let tenants: i64 = c
            .query_one("SELECT count(*) FROM external_services WHERE tenant_id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(tenants, 2);
    }

    // A second import changes nothing.
    let second = import(&repo, &dst_store).await.unwrap();
    assert_eq!(second.details["written"], 0, "{:?}", second.details);
    assert_eq!(counts(&cluster, "dst").await, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_v5_to_v5() {
    round_trip(Generation::V5, Generation::V5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_v7_to_v7_with_rls_as_non_owner() {
    round_trip(Generation::V7, Generation::V7).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_v5_to_v7() {
    round_trip(Generation::V5, Generation::V7).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_connections_fail_by_default_and_travel_on_request() {
    let cluster = PgCluster::start().await.unwrap();
    let src = create_db(&cluster, "src", Generation::V7).await;
    seed(&cluster, "src", Generation::V7).await;
    cluster
        .batch_execute(
            "src",
            "SET app.current_tenant = '1'; INSERT INTO external_services (kind, display_name, config, encryption_key_id) \
             VALUES ('GITLAB', 'Sealed', 'c2VhbGVkLWNpcGhlcnRleHQ=', '{\"Type\":\"mounted\",\"Name\":\"extsvc-2024\",\"Version\":\"1\"}')",
        )
        .await
        .unwrap();
    let err = export(&ConfigStore::database(src.clone())).await.unwrap_err();
    assert!(err.contains("GITLAB \"Sealed\""), "{err}");
    assert!(err.contains("carry_encrypted"), "{err}");

    let store = ConfigStore::database(src).with_source_options(DatabaseSourceOptions {
        carry_encrypted: true,
        ..Default::default()
    });
    let (repo, report, manifest, _) = export(&store).await.unwrap();
    let details = &manifest.store("config").unwrap().details;
    assert_eq!(
        details["encrypted_documents"].as_array().unwrap().len(),
        1,
        "{details}"
    );
    let sealed = details["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["encryption"].is_object())
        .unwrap();
    assert!(sealed["artifact"].as_str().unwrap().ends_with(".encrypted"));
    assert!(sealed["encryption"]["key_id"]
        .as_str()
        .unwrap()
        .contains("extsvc-2024"));
    assert!(report.warnings.iter().any(|w| w.contains("same encryption keys")));

    // The ciphertext and key id land in the target unchanged.
    let dst = create_db(&cluster, "dst", Generation::V7).await;
    import(&repo, &ConfigStore::database(dst)).await.unwrap();
    let row = cluster
        .connect("dst")
        .await
        .unwrap()
        .query_one(
            "SELECT config, encryption_key_id FROM external_services WHERE display_name = 'Sealed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "c2VhbGVkLWNpcGhlcnRleHQ=");
    assert!(row.get::<_, String>(1).contains("extsvc-2024"));
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_missing_soft_deletes_only_when_asked() {
    let cluster = PgCluster::start().await.unwrap();
    let src = create_db(&cluster, "src", Generation::V5).await;
    seed(&cluster, "src", Generation::V5).await;
    let dst = create_db(&cluster, "dst", Generation::V5).await;
    cluster
        .batch_execute("dst", "INSERT INTO external_services (kind, display_name, config) VALUES ('GITLAB', 'Extra', '{\"url\": \"u\", \"token\": \"t\"}')")
        .await
        .unwrap();
    let (repo, ..) = export(&ConfigStore::database(src)).await.unwrap();
    import(&repo, &ConfigStore::database(dst.clone())).await.unwrap();
    let q = "SELECT count(*) FROM external_services WHERE display_name = 'Extra' AND deleted_at IS NULL";
    let c = cluster.connect("dst").await.unwrap();
    assert_eq!(c.query_one(q, &[]).await.unwrap().get::<_, i64>(0), 1);
    let store = ConfigStore::database(dst).with_import_options(ImportOptions {
        remove_missing: true,
        ..Default::default()
    });
    let report = import(&repo, &store).await.unwrap();
    assert_eq!(report.details["written"], 1, "{}", report.details);
    assert_eq!(c.query_one(q, &[]).await.unwrap().get::<_, i64>(0), 0);
}
