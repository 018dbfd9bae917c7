//! Opening a repository from a path or a URL.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

use super::{BackupRepository, OpenOptions};
use crate::error::CoreError;

pub(super) fn open(location: &str, options: &OpenOptions) -> Result<BackupRepository, CoreError> {
    if !location.contains("://") {
        return local(std::path::Path::new(location));
    }
    let err = |reason: String| CoreError::Location {
        location: redact(location),
        reason,
    };
    let url = Url::parse(location).map_err(|e| err(e.to_string()))?;
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| err("not an absolute local path".into()))?;
            local(&path)
        }
        "memory" => Ok(BackupRepository::in_memory()),
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => {
            let (store, prefix) = cloud(&url, options).map_err(|e| err(crate::redact::redact_text(&e)))?;
            Ok(BackupRepository::from_store(store, prefix, redact(location)))
        }
        other => Err(err(format!(
            "unsupported scheme {other:?}: use a local path, file://, memory://, s3://, gs:// or az://"
        ))),
    }
}

pub(super) fn local(dir: &std::path::Path) -> Result<BackupRepository, CoreError> {
    let err = |reason: String| CoreError::Location {
        location: dir.display().to_string(),
        reason,
    };
    super::private::create_private_dir(dir).map_err(|e| err(e.to_string()))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| err(e.to_string()))?
        .with_automatic_cleanup(true);
    let mut repo = BackupRepository::from_store(Arc::new(store), Path::default(), dir.display().to_string());
    repo.local_root = Some(std::path::absolute(dir).map_err(|e| err(e.to_string()))?);
    Ok(repo)
}

/// Builds a cloud store the way `object_store` reads credentials: from the
/// environment, then the URL.
fn cloud(url: &Url, options: &OpenOptions) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let (_, path) = object_store::ObjectStoreScheme::parse(url).map_err(|e| e.to_string())?;
    #[cfg(not(feature = "cloud"))]
    let _ = options;
    let store: Result<Arc<dyn ObjectStore>, String> = match url.scheme() {
        #[cfg(feature = "s3")]
        "s3" | "s3a" => object_store::aws::AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .with_retry(options.retry.clone())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "gcs")]
        "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_url(url.as_str())
            .with_retry(options.retry.clone())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "azure")]
        "az" | "azure" | "abfs" | "abfss" => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .with_retry(options.retry.clone())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| e.to_string()),
        scheme => Err(format!(
            "this build leaves out {scheme}:// repositories: build sourcegraph-backup with the `{}` \
             feature",
            match scheme {
                "s3" | "s3a" => "s3",
                "gs" => "gcs",
                _ => "azure",
            }
        )),
    };
    Ok((store?, path))
}

/// A location as it may be shown: no userinfo, no query string (see
/// [`redact_location`](crate::redact::redact_location)).
pub(crate) fn redact(location: &str) -> String {
    crate::redact::redact_location(location)
}

#[cfg(test)]
mod tests {
    use super::{open, OpenOptions};

    /// Run by CI with `--no-default-features`: a left-out backend names the feature.
    #[test]
    #[cfg(not(feature = "s3"))]
    fn a_left_out_backend_names_its_feature() {
        let err = open("s3://bucket/prefix", &OpenOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`s3` feature"), "{err}");
    }

    #[test]
    fn local_and_memory_repositories_need_no_feature() {
        assert!(open("memory://", &OpenOptions::default()).is_ok());
        let dir = std::env::temp_dir().join(format!("sgb-location-{}", std::process::id()));
        assert!(open(&dir.display().to_string(), &OpenOptions::default()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
