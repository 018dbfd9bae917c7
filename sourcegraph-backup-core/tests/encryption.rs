//! Encryption at rest with age: round trips with an X25519 recipient and with a passphrase,
//! ciphertext on disk, verify without the key, the key checked at open, a plaintext manifest
//! without secrets, old manifests still read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use sourcegraph_backup_core::repository::encryption::age::secrecy::{ExposeSecret, SecretString};
use sourcegraph_backup_core::repository::encryption::age::x25519;
use sourcegraph_backup_core::repository::{BackupOptions, Decryption, Encryption, PART_SIZE};
use sourcegraph_backup_core::{
    ArtifactOptions, ArtifactRecord, BackupOption, BackupRepository, BackupWriter, CoreError, StoreKind,
    StoreSection,
};

const MARKER: &[u8] = b"SECRET-MARKER-0123456789-sourcegraph-token";

fn section(id: &str) -> StoreSection {
    StoreSection {
        id: id.into(),
        kind: StoreKind::Volume,
        catalog: vec![],
        details: serde_json::json!({"note": "test"}),
        warnings: vec![],
    }
}

/// Deterministic, poorly compressible bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn write(
    backup: &BackupWriter,
    store: &str,
    name: &str,
    opts: ArtifactOptions,
    data: &[u8],
) -> ArtifactRecord {
    let mut w = backup.artifact(store, name, opts).await.unwrap();
    for chunk in data.chunks(300_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    w.finish().await.unwrap()
}

/// The artifacts every test writes: a small plain one with the marker, a large plain one
/// above the multipart part size, a zstd one with the marker repeated.
fn contents() -> Vec<(&'static str, &'static str, ArtifactOptions, Vec<u8>)> {
    let mut big = pseudo_random(PART_SIZE + 3 * 1024 * 1024 + 17, 3);
    big[1000..1000 + MARKER.len()].copy_from_slice(MARKER);
    let mut text = b"COPY line\tvalue\n".repeat(100_000);
    text.extend_from_slice(MARKER);
    vec![
        (
            "s1",
            "small.txt",
            ArtifactOptions::plain("text/plain"),
            MARKER.to_vec(),
        ),
        (
            "s1",
            "dir/big.bin",
            ArtifactOptions::plain("application/octet-stream"),
            big,
        ),
        ("s2", "text.copy", ArtifactOptions::zstd("text/plain"), text),
    ]
}

/// Writes the artifacts into a new encrypted backup and commits it.
async fn backup_with(repo: &BackupRepository, encryption: Encryption) -> String {
    let backup = repo
        .start_backup_with(
            BackupOption::AllData,
            &BackupOptions::default().encryption(encryption),
        )
        .unwrap();
    for (store, name, opts, data) in contents() {
        let record = write(&backup, store, name, opts, &data).await;
        assert_ne!(
            record.size,
            data.len() as u64,
            "{name}: stored bytes carry the age header"
        );
        assert_eq!(record.uncompressed_size, data.len() as u64);
    }
    backup
        .commit(
            vec![section("s1"), section("s2")],
            None,
            Default::default(),
            vec![],
        )
        .await
        .unwrap();
    backup.id().to_string()
}

/// Every artifact reads back byte-exact, streamed and whole.
async fn read_back(repo: &BackupRepository, id: &str) {
    let reader = repo.open_backup(id).await.unwrap();
    assert!(reader.is_encrypted());
    for (store, name, _, data) in contents() {
        let record = reader
            .manifest()
            .store(store)
            .unwrap()
            .artifact(name)
            .unwrap()
            .clone();
        let got = reader.open_artifact(&record).into_chunks();
        let mut got = got;
        let mut out = Vec::new();
        while let Some(chunk) = got.recv().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert!(out == data, "{name}: content differs after decryption");
        if data.len() < 1024 * 1024 {
            let whole = reader.open_artifact(&record).read_to_end().await.unwrap();
            assert_eq!(&whole[..], &data[..]);
        }
    }
}

/// Every stored file of the backup, by relative path.
fn stored_files(root: &std::path::Path, id: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.join(id)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path
                    .strip_prefix(root.join(id))
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn encryption_error(result: Result<impl std::fmt::Debug, CoreError>) -> String {
    match result {
        Err(e @ CoreError::Encryption { .. }) => e.to_string(),
        other => panic!("expected an encryption error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x25519_round_trip_ciphertext_on_disk_and_manifest_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let identity = x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let secret = identity.to_string().expose_secret().to_string();
    let id = backup_with(&repo, Encryption::recipients(vec![identity.to_public()])).await;

    // Nothing stored holds the plaintext marker; the manifest holds the public key, no secret.
    let files = stored_files(dir.path(), &id);
    assert!(files.iter().any(|(p, _)| p == "manifest.json"));
    for (path, bytes) in &files {
        assert!(!contains(bytes, MARKER), "{path} holds the plaintext");
        assert!(!contains(bytes, secret.as_bytes()), "{path} holds the secret key");
        if path != "manifest.json" {
            assert!(
                bytes.starts_with(b"age-encryption.org/v1\n"),
                "{path} is not an age file"
            );
        }
    }
    let manifest = std::fs::read_to_string(dir.path().join(&id).join("manifest.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(json["encryption"]["scheme"], "age");
    assert_eq!(json["encryption"]["recipients"], serde_json::json!([public]));
    assert_eq!(json["encryption"]["passphrase"], false);
    assert!(!manifest.contains("AGE-SECRET-KEY"));

    // Verify needs no key.
    let report = repo.verify(&id).await.unwrap();
    assert!(report.is_ok(), "{report:?}");

    // With the identity: byte-exact.
    let keyed = repo
        .clone()
        .with_decryption(Decryption::identities(vec![identity]));
    read_back(&keyed, &id).await;
    assert_eq!(keyed.open_latest().await.unwrap().id(), id);

    // Without a key, or with a wrong one: refused at open, naming the backup and recipient.
    let err = encryption_error(repo.open_backup(&id).await);
    assert!(
        err.contains(&id) && err.contains(&public) && err.contains("no key"),
        "{err}"
    );
    let err = encryption_error(repo.open_latest().await);
    assert!(err.contains(&id), "{err}");
    let wrong = repo
        .clone()
        .with_decryption(Decryption::identities(vec![x25519::Identity::generate()]));
    let err = encryption_error(wrong.open_backup(&id).await);
    assert!(
        err.contains(&id) && err.contains(&public) && err.contains("none of the keys"),
        "{err}"
    );
    let wrong = repo
        .clone()
        .with_decryption(Decryption::passphrase(SecretString::from("not it")));
    let err = encryption_error(wrong.open_backup(&id).await);
    assert!(err.contains(&id), "{err}");
    assert!(!format!("{wrong:?}").contains("not it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_round_trip_and_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let passphrase = "correct horse battery staple";
    let encryption = Encryption::passphrase(SecretString::from(passphrase));
    assert!(!format!("{encryption:?}").contains(passphrase));
    let id = backup_with(&repo, encryption).await;

    let files = stored_files(dir.path(), &id);
    assert!(files.iter().any(|(p, _)| p == "passphrase-key.age"));
    for (path, bytes) in &files {
        assert!(!contains(bytes, MARKER), "{path} holds the plaintext");
        assert!(
            !contains(bytes, passphrase.as_bytes()),
            "{path} holds the passphrase"
        );
        assert!(
            !contains(bytes, b"AGE-SECRET-KEY"),
            "{path} holds a plaintext identity"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["encryption"]["passphrase"], true);
    assert_eq!(manifest["encryption"]["recipients"], serde_json::json!([]));
    assert!(repo.verify(&id).await.unwrap().is_ok());

    let keyed = repo
        .clone()
        .with_decryption(Decryption::passphrase(SecretString::from(passphrase)));
    read_back(&keyed, &id).await;

    let wrong = repo
        .clone()
        .with_decryption(Decryption::passphrase(SecretString::from("wrong horse")));
    let err = encryption_error(wrong.open_backup(&id).await);
    assert!(err.contains(&id) && err.contains("passphrase"), "{err}");
    assert!(!err.contains("wrong horse") && !err.contains(passphrase));
    let err = encryption_error(repo.open_backup(&id).await);
    assert!(err.contains(&id) && err.contains("a passphrase"), "{err}");
}

/// An artifact decrypts with the age format alone (what `age -d -i key.txt | zstd -d` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_plain_age_files_of_zstd_streams() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let identity = x25519::Identity::generate();
    let id = backup_with(&repo, Encryption::recipients(vec![identity.to_public()])).await;
    let stored = std::fs::read(dir.path().join(&id).join("s2").join("text.copy")).unwrap();
    let compressed =
        sourcegraph_backup_core::repository::encryption::age::decrypt(&identity, &stored).unwrap();
    let plain = zstd::decode_all(&compressed[..]).unwrap();
    assert_eq!(plain, contents()[2].3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unencrypted_backup_reads_as_before_with_or_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BackupRepository::local(dir.path()).unwrap();
    let backup = repo.start_backup(BackupOption::AllData);
    write(
        &backup,
        "s1",
        "a.txt",
        ArtifactOptions::plain("text/plain"),
        MARKER,
    )
    .await;
    let manifest = backup
        .commit(vec![section("s1")], None, Default::default(), vec![])
        .await
        .unwrap();
    assert!(manifest.encryption.is_none());
    let text = std::fs::read_to_string(dir.path().join(backup.id()).join("manifest.json")).unwrap();
    assert!(
        !text.contains("encryption"),
        "an unencrypted manifest is unchanged"
    );
    for repo in [
        repo.clone(),
        repo.clone()
            .with_decryption(Decryption::identities(vec![x25519::Identity::generate()])),
    ] {
        let reader = repo.open_backup(backup.id()).await.unwrap();
        assert!(!reader.is_encrypted());
        let record = reader.manifest().stores[0].artifacts[0].clone();
        assert_eq!(
            &reader.open_artifact(&record).read_to_end().await.unwrap()[..],
            MARKER
        );
    }
}

/// A manifest written before encryption existed (no `encryption` field) still reads.
#[test]
fn an_old_manifest_without_encryption_reads() {
    let json = serde_json::json!({
        "format_version": 1,
        "backup_id": "20260101T000000.000Z-0001",
        "created_at": "2026-01-01T00:00:00Z",
        "completed_at": "2026-01-01T00:00:01Z",
        "library_version": "0.1.0",
        "option": "config-only",
        "source": {"sourcegraph_version": null},
        "plan": null,
        "stores": [{"id": "config", "kind": "config", "artifacts": [{
            "path": "config/site.json", "size": 2, "sha256": "00", "content_type": "application/json",
            "compression": {"codec": "none"}, "uncompressed_size": 2}]}],
        "warnings": [],
    });
    let manifest = sourcegraph_backup_core::BackupManifest::from_json(
        "20260101T000000.000Z-0001",
        &serde_json::to_vec(&json).unwrap(),
    )
    .unwrap();
    assert!(manifest.encryption.is_none());
}

#[test]
fn encryption_needs_a_recipient_or_a_passphrase() {
    let repo = BackupRepository::in_memory();
    let err = repo
        .start_backup_with(
            BackupOption::AllData,
            &BackupOptions::default().encryption(Encryption::recipients(vec![])),
        )
        .unwrap_err();
    assert!(err.to_string().contains("recipient"), "{err}");
}
