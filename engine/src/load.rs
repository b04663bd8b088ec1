//! Loading a pipeline file: the datastores it names, and the types of the
//! columns it leaves to the source's catalog.

use std::path::Path;

use connectors::catalog::{column_types, CatalogTable};
use planner::config::PipelineFile;
use planner::model::{CatalogRequest, SourceCatalog};
use planner::{Datastores, Pipeline};

use crate::EngineError;

/// Reads the pipeline `file` and the datastores it names
/// ([`PipelineFile::read_resolving`]). Columns
/// written without `data_type` take the type the source's catalog declares
/// (a connection only then); one that cannot is listed with every other
/// problem of the file.
pub async fn load_pipeline(file: &Path, explicit: Option<&Path>) -> Result<Pipeline, EngineError> {
    let (raw, datastores) =
        PipelineFile::read_resolving(file, explicit, &connectors::registry::types())?;
    let catalog = match raw.catalog_request() {
        Some(request) => Some(source_catalog(&request, &datastores).await),
        None => None,
    };
    Ok(Pipeline::from_file_with_catalog(
        file,
        raw,
        &datastores,
        catalog.as_ref(),
    )?)
}

/// The catalog's answer for each requested column; when the catalog cannot
/// be read at all, that reason for each.
async fn source_catalog(request: &CatalogRequest, datastores: &Datastores) -> SourceCatalog {
    let tables: Vec<CatalogTable> = request
        .tables
        .iter()
        .map(|(schema, table)| CatalogTable {
            schema: schema.clone(),
            table: table.clone(),
        })
        .collect();
    let answers = match datastores.stores.get(&request.datastore_name) {
        // An undefined datastore is reported on its own field.
        None => Err("the source's datastore is not defined".to_string()),
        Some(ds) => column_types(ds, &tables, &request.columns)
            .await
            .map_err(|e| e.to_string()),
    };
    let types = match answers {
        Ok(types) => types,
        Err(why) => request
            .columns
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    Err(format!(
                        "column \"{c}\" has no data_type, and the source's catalog could not be read ({why}); give data_type"
                    )),
                )
            })
            .collect(),
    };
    SourceCatalog { types }
}
