//! Retention (`forget`) on a real local repository: backups are written through the public
//! API, then moved to ids and start times the tests choose (a backup id begins with its start
//! time), so that days and weeks are under the tests' control.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sourcegraph_backup_core::repository::{KeepReason, UntouchedState};
use sourcegraph_backup_core::{
    ArtifactOptions, BackupOption, BackupRepository, RetentionPolicy, StoreKind, StoreSection,
};

/// A complete backup with one artifact, started at `created_at` (RFC 3339) as far as its id and
/// manifest say. Returns its id.
async fn backup_at(repo: &BackupRepository, created_at: &str) -> String {
    let created_at: DateTime<Utc> = DateTime::parse_from_rfc3339(created_at).unwrap().into();
    let writer = repo.start_backup(BackupOption::ConfigOnly);
    let mut artifact = writer
        .artifact(
            "config",
            "site.jsonc",
            ArtifactOptions::plain("application/jsonc"),
        )
        .await
        .unwrap();
    artifact.write(Bytes::from_static(b"{}")).await.unwrap();
    artifact.finish().await.unwrap();
    let section = StoreSection {
        id: "config".into(),
        kind: StoreKind::Config,
        catalog: vec![],
        details: serde_json::Value::Null,
        warnings: vec![],
    };
    writer
        .commit(vec![section], None, Default::default(), vec![])
        .await
        .unwrap();

    // Move it to the chosen id: artifacts first, the manifest (rewritten) last.
    let (old, id) = (
        writer.id().to_string(),
        created_at.format("%Y%m%dT%H%M%S%.3fZ-0000").to_string(),
    );
    let store = repo.object_store();
    let objects: Vec<Path> = store
        .list(Some(&Path::from(old.as_str())))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    let mut manifest = None;
    for path in objects {
        let relative: Vec<String> = path.parts().skip(1).map(|p| p.as_ref().to_string()).collect();
        let target = relative
            .iter()
            .fold(Path::from(id.as_str()), |p, part| p.join(part.as_str()));
        if relative == ["manifest.json"] {
            manifest = Some(store.get(&path).await.unwrap().bytes().await.unwrap());
        } else {
            store.copy(&path, &target).await.unwrap();
        }
    }
    let mut manifest: serde_json::Value = serde_json::from_slice(&manifest.unwrap()).unwrap();
    manifest["backup_id"] = id.clone().into();
    manifest["created_at"] = created_at.to_rfc3339().into();
    manifest["completed_at"] = created_at.to_rfc3339().into();
    store
        .put(
            &Path::from(id.as_str()).join("manifest.json"),
            PutPayload::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap();
    repo.delete_backup(&old).await.unwrap();
    id
}

/// Ids of the complete backups, newest first.
async fn complete(repo: &BackupRepository) -> Vec<String> {
    repo.list().await.unwrap().into_iter().map(|b| b.id).collect()
}

fn local() -> (tempfile::TempDir, BackupRepository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    (dir, repo)
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_last_one_removes_the_two_older_backups_and_everything_in_them() {
    let (dir, repo) = local();
    let oldest = backup_at(&repo, "2026-03-01T10:00:00Z").await;
    let middle = backup_at(&repo, "2026-03-02T10:00:00Z").await;
    let newest = backup_at(&repo, "2026-03-03T10:00:00Z").await;
    assert_eq!(
        complete(&repo).await,
        [newest.as_str(), middle.as_str(), oldest.as_str()]
    );

    let report = repo
        .forget(&RetentionPolicy::new().keep_last(1), false)
        .await
        .unwrap();
    assert!(!report.dry_run);
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].backup.id, newest);
    assert_eq!(report.kept[0].reasons, [KeepReason::Last]);
    let removed: Vec<&str> = report.removed.iter().map(|r| r.backup.id.as_str()).collect();
    assert_eq!(removed, [middle.as_str(), oldest.as_str()]);
    assert!(report.untouched.is_empty());

    assert_eq!(complete(&repo).await, [newest.as_str()]);
    assert!(
        repo.list_all().await.unwrap().len() == 1,
        "nothing of the removed backups is listed"
    );
    for id in [&middle, &oldest] {
        assert!(!dir.path().join(id).exists(), "{id} left files behind");
    }
    assert!(repo.verify(&newest).await.unwrap().is_ok());
    let text = report.to_string();
    assert!(text.contains(&format!("keep {newest} (keep-last)")), "{text}");
    assert!(text.contains(&format!("removed {oldest}")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn daily_and_weekly_keep_the_newest_of_each_period_that_has_backups() {
    let (_dir, repo) = local();
    // Mon 2026-03-02 .. Sun 2026-03-08 is ISO week 10; Mon 2026-03-09 starts week 11.
    let w09 = backup_at(&repo, "2026-02-25T08:00:00Z").await;
    let mon_early = backup_at(&repo, "2026-03-02T08:00:00Z").await;
    let mon_late = backup_at(&repo, "2026-03-02T20:00:00Z").await;
    let thu = backup_at(&repo, "2026-03-05T08:00:00Z").await;
    let next_mon = backup_at(&repo, "2026-03-09T08:00:00Z").await;

    // Daily 3: the newest of each of the last three days with backups (Mon 9, Thu 5, Mon 2).
    let report = repo
        .forget(&RetentionPolicy::new().keep_daily(3), true)
        .await
        .unwrap();
    let kept: Vec<&str> = report.kept.iter().map(|k| k.backup.id.as_str()).collect();
    assert_eq!(kept, [next_mon.as_str(), thu.as_str(), mon_late.as_str()]);
    assert!(report.kept.iter().all(|k| k.reasons == [KeepReason::Daily]));
    let removed: Vec<&str> = report.removed.iter().map(|r| r.backup.id.as_str()).collect();
    assert_eq!(removed, [mon_early.as_str(), w09.as_str()]);

    // Weekly 2: week 11's only backup and week 10's newest.
    let report = repo
        .forget(&RetentionPolicy::new().keep_weekly(2), false)
        .await
        .unwrap();
    let kept: Vec<&str> = report.kept.iter().map(|k| k.backup.id.as_str()).collect();
    assert_eq!(kept, [next_mon.as_str(), thu.as_str()]);
    assert_eq!(complete(&repo).await, [next_mon.as_str(), thu.as_str()]);

    // Both rules together: the union, each backup with every reason that keeps it.
    let (_dir, repo) = local();
    let a = backup_at(&repo, "2026-03-02T08:00:00Z").await;
    let b = backup_at(&repo, "2026-03-05T08:00:00Z").await;
    let c = backup_at(&repo, "2026-03-09T08:00:00Z").await;
    let report = repo
        .forget(&RetentionPolicy::new().keep_daily(1).keep_weekly(2), false)
        .await
        .unwrap();
    assert_eq!(report.kept[0].backup.id, c);
    assert_eq!(report.kept[0].reasons, [KeepReason::Daily, KeepReason::Weekly]);
    assert_eq!(report.kept[1].backup.id, b);
    assert_eq!(report.kept[1].reasons, [KeepReason::Weekly]);
    assert_eq!(complete(&repo).await, [c.as_str(), b.as_str()]);
    assert!(!complete(&repo).await.contains(&a));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_decides_and_removes_nothing() {
    let (_dir, repo) = local();
    let ids = [
        backup_at(&repo, "2026-03-01T10:00:00Z").await,
        backup_at(&repo, "2026-03-02T10:00:00Z").await,
        backup_at(&repo, "2026-03-03T10:00:00Z").await,
    ];
    let report = repo
        .forget(&RetentionPolicy::new().keep_last(1), true)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.removed.len(), 2);
    assert!(report.to_string().contains("would remove"), "{report}");
    assert_eq!(
        complete(&repo).await,
        [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    for id in &ids {
        assert!(repo.verify(id).await.unwrap().is_ok());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_only_complete_backup_is_kept_unless_removing_it_is_allowed() {
    let (_dir, repo) = local();
    let only = backup_at(&repo, "2026-03-01T10:00:00Z").await;
    let policy = RetentionPolicy::new().keep_last(0);
    let report = repo.forget(&policy, false).await.unwrap();
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].reasons, [KeepReason::LastComplete]);
    assert!(report.removed.is_empty());
    assert_eq!(complete(&repo).await, [only.as_str()]);

    // With several backups, a policy that keeps none still leaves the newest.
    let newer = backup_at(&repo, "2026-03-02T10:00:00Z").await;
    let report = repo.forget(&policy, false).await.unwrap();
    assert_eq!(report.kept[0].backup.id, newer);
    assert_eq!(complete(&repo).await, [newer.as_str()]);

    // A policy without rules keeps everything.
    let report = repo.forget(&RetentionPolicy::new(), false).await.unwrap();
    assert_eq!(report.kept[0].reasons, [KeepReason::NoPolicy]);
    assert_eq!(complete(&repo).await, [newer.as_str()]);

    // Told, it goes.
    let report = repo
        .forget(&policy.clone().allow_removing_last(true), false)
        .await
        .unwrap();
    assert!(report.kept.is_empty());
    assert_eq!(report.removed.len(), 1);
    assert!(complete(&repo).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn running_abandoned_and_unreadable_backups_are_reported_and_never_touched() {
    let (_dir, repo) = local();
    backup_at(&repo, "2026-03-01T10:00:00Z").await;
    let newest = backup_at(&repo, "2026-03-02T10:00:00Z").await;

    // A running backup: an artifact written, its lease live, no manifest.
    let running = repo.start_backup(BackupOption::ConfigOnly);
    let mut artifact = running
        .artifact(
            "config",
            "site.jsonc",
            ArtifactOptions::plain("application/jsonc"),
        )
        .await
        .unwrap();
    artifact.write(Bytes::from_static(b"{}")).await.unwrap();
    artifact.finish().await.unwrap();
    // An abandoned one: an object and no lease.
    let store = repo.object_store();
    let abandoned = "20260101T000000.000Z-aaaa";
    store
        .put(
            &Path::from(abandoned).join("config").join("x"),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();
    // An unreadable one: a manifest from a newer release.
    let unreadable = "20260102T000000.000Z-bbbb";
    store
        .put(
            &Path::from(unreadable).join("manifest.json"),
            PutPayload::from_static(br#"{"format_version": 99}"#),
        )
        .await
        .unwrap();

    let report = repo
        .forget(
            &RetentionPolicy::new().keep_last(0).allow_removing_last(true),
            false,
        )
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(report.removed.iter().any(|r| r.backup.id == newest));
    let untouched: Vec<(&str, UntouchedState)> = report
        .untouched
        .iter()
        .map(|u| (u.id.as_str(), u.state))
        .collect();
    assert!(
        untouched.contains(&(running.id(), UntouchedState::InProgress)),
        "{untouched:?}"
    );
    assert!(
        untouched.contains(&(abandoned, UntouchedState::Abandoned)),
        "{untouched:?}"
    );
    assert!(
        untouched.contains(&(unreadable, UntouchedState::Unreadable)),
        "{untouched:?}"
    );
    let unreadable_detail = &report
        .untouched
        .iter()
        .find(|u| u.id == unreadable)
        .unwrap()
        .detail;
    assert!(
        unreadable_detail.contains("format version 99"),
        "{unreadable_detail}"
    );
    assert_eq!(
        repo.list_all().await.unwrap().len(),
        3,
        "the three were left alone"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["untouched"].as_array().unwrap().len(), 3);
    running.abort().await.unwrap();
}
