//! The pipeline file as read: what it asks of its datastores file and of
//! its source's catalog before it is validated.

use std::path::Path;

use super::stage_form::endpoint_stage;
use crate::config::{PipelineFile, StageEndpoint};
use crate::connection::ConnectorTypes;
use crate::datastores::Datastores;
use crate::error::Result;
use crate::yaml;

impl PipelineFile {
    pub fn read(file: &Path) -> Result<PipelineFile> {
        let text = yaml::read_file(file)?;
        yaml::parse(file, &text)
    }

    /// Reads the pipeline `file` first (its own YAML errors come before any
    /// about datastores), then finds its datastores file (`explicit`, else
    /// beside it or above) and resolves the datastores it names only.
    pub fn read_resolving(
        file: &Path,
        explicit: Option<&Path>,
        types: &ConnectorTypes,
    ) -> Result<(PipelineFile, Datastores)> {
        let raw = PipelineFile::read(file)?;
        let ds_file = Datastores::locate(file, explicit)?;
        let datastores = Datastores::load_only(&ds_file, types, &raw.datastore_names())?;
        Ok((raw, datastores))
    }

    /// What must be read from the source's catalog: the destination columns
    /// of the stage form written without `data_type` (the spec's
    /// audit-columns example), with the source's datastore and tables.
    /// `None` when every column has its type.
    pub fn catalog_request(&self) -> Option<CatalogRequest> {
        let (_, stage) = endpoint_stage(self)?;
        let backend = |e: &Option<StageEndpoint>| {
            let name = &e.as_ref()?.name;
            self.backends.iter().find(|b| &b.name == name)
        };
        let (src, dst) = (backend(&stage.source)?, backend(&stage.destination)?);
        let columns: Vec<String> = dst
            .columns
            .iter()
            .filter(|c| {
                c.data_type.is_none() && c.hash_key != Some(true) && c.is_virtual != Some(true)
            })
            .map(|c| c.name.clone())
            .collect();
        if columns.is_empty() {
            return None;
        }
        let tables = std::iter::once((src.schema.clone(), src.table.clone()))
            .chain(src.join.iter().map(|j| (j.schema.clone(), j.table.clone())))
            .collect();
        Some(CatalogRequest {
            datastore_name: src.datastore_name.clone(),
            tables,
            columns,
        })
    }

    /// Every datastore the pipeline names (providers, backends, enrichment
    /// sources): the ones its datastores file must resolve.
    pub fn datastore_names(&self) -> std::collections::BTreeSet<String> {
        let providers = [&self.source_provider, &self.destination_provider]
            .into_iter()
            .flatten()
            .map(|p| p.data_backend.datastore_name.clone());
        let backends = self.backends.iter().map(|b| b.datastore_name.clone());
        let dimensions = self
            .enrichment
            .iter()
            .flat_map(|e| &e.dimensions)
            .map(|d| d.source.config.datastore_name.clone());
        providers.chain(backends).chain(dimensions).collect()
    }
}

/// Columns whose types a source's catalog must give, and where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRequest {
    pub datastore_name: String,
    /// (schema, table): the source's main table, then its joined tables.
    pub tables: Vec<(Option<String>, String)>,
    pub columns: Vec<String>,
}
