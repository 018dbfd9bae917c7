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
            let (store, prefix) =
                cloud(&url, options).map_err(|e| err(crate::redact::redact_text(&e.to_string())))?;
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
fn cloud(url: &Url, options: &OpenOptions) -> Result<(Arc<dyn ObjectStore>, Path), object_store::Error> {
    let (_, path) = object_store::ObjectStoreScheme::parse(url)?;
    let retry = options.retry.clone();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()?,
        ),
    };
    Ok((store, path))
}

/// A location as it may be shown: no userinfo, no query string (see
/// [`redact_location`](crate::redact::redact_location)).
pub(crate) fn redact(location: &str) -> String {
    crate::redact::redact_location(location)
}
