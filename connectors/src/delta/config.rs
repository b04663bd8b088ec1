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
        Ok(Arc::new(DeltaConnection {
            root,
            storage_options: self.storage_options.clone(),
        }))
    }
}

/// `uri` as the URL of a folder: a `file://` URL as it is, a path made
/// absolute against `base`. Object stores come later (issue 15's S3 item):
/// their schemes are refused by name rather than failing at the first read.
fn root_url(uri: &str, base: &Path) -> Result<url::Url, String> {
    let url = match url::Url::parse(uri) {
        Ok(url) if url.scheme() == "file" => url,
        Ok(url) if url.scheme().len() > 1 => {
            return Err(format!(
                "uri \"{uri}\": scheme \"{}\" is not supported yet; use a file:// uri or a path",
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
    fn object_stores_are_refused_by_name() {
        let e = root_url("s3://bucket/prefix", Path::new("/")).unwrap_err();
        assert_eq!(
            e,
            "uri \"s3://bucket/prefix\": scheme \"s3\" is not supported yet; use a file:// uri or a path"
        );
    }
}
