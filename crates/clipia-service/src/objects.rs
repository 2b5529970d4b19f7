//! Output files on S3-compatible object storage, for deployments whose nodes share no disk: the
//! node that runs a job writes its files there, and any node serves them.

use std::sync::Arc;

use async_trait::async_trait;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::files::{valid_key, FileStore};

/// Where output files go: `s3://bucket` or `s3://bucket/prefix`, plus an optional endpoint for
/// S3-compatible servers (MinIO, Ceph, moto…). Credentials and region come from the usual
/// `AWS_*` environment variables.
#[derive(Clone, Debug)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`; `None` for anything else.
    pub fn parse(url: &str, endpoint: Option<String>) -> Option<S3Location> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = !bucket.is_empty() && bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        ok.then(|| S3Location { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned(), endpoint })
    }
}

pub struct S3Files {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3Files {
    pub fn new(location: &S3Location) -> Result<S3Files, String> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        if let Some(endpoint) = &location.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| format!("S3 storage: {e}"))?;
        Ok(S3Files { store: Arc::new(store), prefix: location.prefix.clone() })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

fn io_err(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[async_trait]
impl FileStore for S3Files {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        if !valid_key(key) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad file key"));
        }
        // A PUT is atomic on S3: readers see the whole object or none.
        self.store.put(&self.path(key), PutPayload::from(bytes)).await.map(|_| ()).map_err(io_err)
    }

    async fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match self.store.get(&self.path(key)).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(io_err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l = S3Location::parse("s3://outputs/clipia/", None).unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("outputs", "clipia"));
        assert_eq!(S3Location::parse("s3://b", None).unwrap().prefix, "");
        assert!(S3Location::parse("http://b", None).is_none());
        assert!(S3Location::parse("s3://", None).is_none());
    }
}
