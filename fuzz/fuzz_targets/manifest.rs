//! `BackupManifest::from_json` on arbitrary bytes.
//!
//! Invariants: it never panics; a manifest it accepts serializes back to JSON
//! that it accepts again as the same manifest (what `commit` writes is what
//! `open_backup` reads), and every artifact it accepts has a store-prefixed,
//! relative path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sourcegraph_backup_core::BackupManifest;

fuzz_target!(|data: &[u8]| {
    // The backup id a reader would pass is the prefix the manifest was found
    // under; take it from the document itself (when it has one) so that the
    // fuzzer gets past the id check and into the validation below it.
    let id = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("backup_id")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "20260101T000000Z-fuzz".to_owned());
    let Ok(manifest) = BackupManifest::from_json(&id, data) else {
        return;
    };
    assert_eq!(manifest.backup_id, id);
    for store in &manifest.stores {
        for a in &store.artifacts {
            assert_eq!(a.store(), store.id, "artifact {} outside its store", a.path);
            assert!(!a.path.starts_with('/'), "absolute artifact path {}", a.path);
            assert!(
                !a.path.split('/').any(|c| c == ".."),
                "artifact path with .. {}",
                a.path
            );
        }
    }
    let written = serde_json::to_vec_pretty(&manifest).expect("an accepted manifest serializes");
    let back = BackupManifest::from_json(&id, &written)
        .unwrap_or_else(|e| panic!("a manifest written from an accepted one is refused: {e}"));
    assert_eq!(back, manifest, "manifest changes over a write/read round trip");
});
