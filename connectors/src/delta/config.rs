//! A Delta Lake datastore's `connection:`: where its tables live.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use planner::datastores::{EnvString, Secret};
use planner::{Connection, ConnectionSpec, Problem, SqlDialect};
use serde::Deserialize;

/// `connection:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaConnectionConfig {
    /// The folder holding the tables: `file:///abs/path`, or a path relative
    /// to the datastores file.
    #[serde(default)]
    pub uri: Option<EnvString>,
    /// Passed to the object store as they are (endpoint, region, keys);
    /// every value is treated as a secret in messages and `config show`.
    #[serde(default)]
    pub storage_options: BTreeMap<String, Secret>,
}

/// A resolved Delta Lake connection.
#[derive(Debug, Clone)]
pub struct DeltaConnection {
    /// The tables' folder, as a URL ending in `/`.
    pub root: url::Url,
    pub storage_options: BTreeMap<String, Secret>,
}

impl ConnectionSpec for DeltaConnectionConfig {
    fn resolve(&self, datastore: &str, base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        let problem = |message: String| {
            vec![Problem {
                path: format!("datastores.{datastore}.connection.uri"),
                message,
            }]
        };
        let Some(uri) = self.uri.as_ref().and_then(EnvString::non_empty) else {
            return Err(problem(
                "a delta datastore needs uri: the folder of its tables (file:///path, or a path \
                 relative to the datastores file)"
                    .into(),
            ));
        };
        let root = match root_url(uri, base) {
            Ok(root) => root,
            Err(message) => return Err(problem(message)),
        };
        let problems = option_problems(&root, self.storage_options.keys(), datastore);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Arc::new(DeltaConnection {
            root,
            storage_options: self.storage_options.clone(),
        }))
    }
}

/// A storage option the store would not understand is named here, when the
/// config is read: object_store drops keys it does not know, so a misspelt
/// `secret_access_key` would otherwise surface as an anonymous request.
fn option_problems<'a>(
    root: &url::Url,
    keys: impl Iterator<Item = &'a String>,
    datastore: &str,
) -> Vec<Problem> {
    let s3 = super::s3::SCHEMES.contains(&root.scheme());
    keys.filter(|key| if s3 { !super::s3::is_option(key) } else { true })
        .map(|key| Problem {
            path: format!("datastores.{datastore}.connection.storage_options.{key}"),
            message: if s3 {
                format!(
                    "\"{key}\" is not an S3 storage option; use endpoint, region, \
                     access_key_id, secret_access_key, session_token, allow_http or another \
                     of object_store's S3 keys"
                )
            } else {
                format!(
                    "\"{key}\": a {} uri takes no storage options",
                    root.scheme()
                )
            },
        })
        .collect()
}

/// `uri` as the URL of a folder: a `file://` or `s3://` URL as it is, a path
/// made absolute against `base`; other schemes are refused by name rather
/// than failing at the first read.
fn root_url(uri: &str, base: &Path) -> Result<url::Url, String> {
    let url = match url::Url::parse(uri) {
        Ok(url) if url.scheme() == "file" => url,
        Ok(url) if super::s3::SCHEMES.contains(&url.scheme()) => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "uri \"{uri}\" names no bucket; write s3://bucket/prefix"
                ));
            }
            url
        }
        Ok(url) if url.scheme().len() > 1 => {
            return Err(format!(
                "uri \"{uri}\": scheme \"{}\" is not supported; use s3://bucket/prefix, a \
                 file:// uri or a path",
                url.scheme()
            ))
        }
        // No scheme (or a Windows drive letter): a path.
        _ => {
            // A datastores file named by a relative path has a relative
            // folder; a URL needs an absolute one.
            let path = std::path::absolute(planner::datastores::relative_to(base, uri))
                .map_err(|e| format!("uri \"{uri}\" is not a usable path: {e}"))?;
            url::Url::from_directory_path(&path)
                .map_err(|()| format!("uri \"{uri}\" is not a usable path"))?
        }
    };
    let mut url = url;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl DeltaConnection {
    /// The folder of `table` (in `schema`, one more folder level), as a URL
    /// ending in `/`. Names are percent-encoded path segments, so `..` or a
    /// `/` inside a name cannot leave the datastore's folder.
    pub fn table_url(&self, schema: Option<&str>, table: &str) -> Result<url::Url, String> {
        let mut url = self.root.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| format!("uri {} cannot hold tables", self.root))?;
            segments.pop_if_empty();
            for name in schema.into_iter().chain([table]) {
                if name.is_empty() || name == "." || name == ".." {
                    return Err(format!(
                        "table name \"{name}\" cannot name a folder under {}",
                        self.root
                    ));
                }
                segments.push(name);
            }
            segments.push("");
        }
        Ok(url)
    }

    /// The options in clear, for the object store only.
    pub fn options(&self) -> std::collections::HashMap<String, String> {
        self.storage_options
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }
}

impl Connection for DeltaConnection {
    fn kind(&self) -> &'static str {
        "delta"
    }

    /// Filters are not evaluated by this connector yet; the dialect only
    /// decides how they would print.
    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn describe(&self) -> serde_json::Value {
        let options: serde_json::Map<String, serde_json::Value> = self
            .storage_options
            .keys()
            .map(|k| (k.clone(), serde_json::Value::from("***")))
            .collect();
        serde_json::json!({ "uri": self.root.as_str(), "storage_options": options })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(uri: &str) -> DeltaConnection {
        DeltaConnection {
            root: root_url(uri, Path::new("/base")).unwrap(),
            storage_options: BTreeMap::new(),
        }
    }

    #[test]
    fn tables_are_folders_under_the_uri() {
        let c = connection("file:///data/lake");
        assert_eq!(
            c.table_url(None, "items").unwrap().as_str(),
            "file:///data/lake/items/"
        );
        assert_eq!(
            c.table_url(Some("sales"), "Order Items").unwrap().as_str(),
            "file:///data/lake/sales/Order%20Items/"
        );
        assert_eq!(
            connection("lake").table_url(None, "t").unwrap().as_str(),
            "file:///base/lake/t/"
        );
        let relative = root_url("lake", Path::new("conf")).unwrap();
        let here = std::env::current_dir().unwrap().join("conf/lake/");
        assert_eq!(relative.to_file_path().unwrap(), here);
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        let c = connection("file:///data/lake/");
        assert_eq!(
            c.table_url(None, "a/../b").unwrap().as_str(),
            "file:///data/lake/a%2F..%2Fb/"
        );
        assert!(c.table_url(Some(".."), "t").is_err());
    }

    #[test]
    fn s3_uris_are_folders_in_a_bucket() {
        let c = connection("s3://bucket/lake");
        assert_eq!(
            c.table_url(Some("sales"), "items").unwrap().as_str(),
            "s3://bucket/lake/sales/items/"
        );
        assert_eq!(
            root_url("s3:///lake", Path::new("/")).unwrap_err(),
            "uri \"s3:///lake\" names no bucket; write s3://bucket/prefix"
        );
        let e = root_url("gs://bucket/prefix", Path::new("/")).unwrap_err();
        assert_eq!(
            e,
            "uri \"gs://bucket/prefix\": scheme \"gs\" is not supported; use s3://bucket/prefix, a file:// uri or a path"
        );
    }

    #[test]
    fn unknown_storage_options_are_named() {
        let keys = ["endpoint".to_string(), "secret_acess_key".to_string()];
        let s3 = root_url("s3://b/p", Path::new("/")).unwrap();
        let problems = option_problems(&s3, keys.iter(), "lake");
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].path,
            "datastores.lake.connection.storage_options.secret_acess_key"
        );
        let local = root_url("file:///data", Path::new("/")).unwrap();
        assert_eq!(option_problems(&local, keys.iter(), "lake").len(), 2);
    }
}
