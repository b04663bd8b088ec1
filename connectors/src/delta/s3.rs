//! S3 for Delta tables (and file folders) through object_store's own S3
//! client, registered with deltalake for `s3://` and `s3a://` URIs.
//!
//! deltalake's `s3` feature would bring the AWS SDK (and a DynamoDB lock
//! for writers on stores without conditional writes); object_store's S3
//! client is already built for the Delta kernel, and S3 (like every
//! S3-compatible store that honours `If-None-Match`) refuses a second
//! writer of a log entry by itself. Figures in docs/decisions.md.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use deltalake::logstore::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use url::Url;

/// The URI schemes served by S3.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

/// Whether `key` is a storage option of an S3 datastore: object_store's S3
/// keys, in either case, with or without their `aws_` prefix.
pub fn is_option(key: &str) -> bool {
    key.to_ascii_lowercase()
        .parse::<AmazonS3ConfigKey>()
        .is_ok()
}

/// An S3 store at `url`'s bucket, configured by `options` only: nothing is
/// taken from the environment, so what a datastore says is what it uses.
pub fn store(url: &Url, options: &HashMap<String, String>) -> DeltaResult<ObjectStoreRef> {
    let mut builder = AmazonS3Builder::new().with_url(url.as_str());
    for (key, value) in options {
        // Keys that are not S3's are deltalake's own (retries, limits);
        // a datastore's keys were checked when its config was read.
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    Ok(Arc::new(builder.build().map_err(DeltaTableError::from)?))
}

struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let path = Path::from_url_path(url.path()).map_err(DeltaTableError::from)?;
        Ok((store(url, &config.raw)?, path))
    }
}

/// Log entries written with `If-None-Match: *` (deltalake's default log
/// store on a store with conditional puts): two writers of one version
/// cannot both succeed.
struct S3Logs;

impl LogStoreFactory for S3Logs {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers the S3 schemes with deltalake, once per process.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
            object_store_factories().insert(url.clone(), Arc::new(S3Stores));
            logstore_factories().insert(url, Arc::new(S3Logs));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_s3_keys_in_any_case() {
        for key in [
            "endpoint",
            "AWS_ENDPOINT_URL",
            "region",
            "access_key_id",
            "secret_access_key",
            "allow_http",
            "aws_allow_http",
        ] {
            assert!(is_option(key), "{key}");
        }
        assert!(!is_option("secret_acess_key"));
    }
}
