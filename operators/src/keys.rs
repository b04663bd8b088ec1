//! Sets of row keys, compared by their Arrow row encoding so any key type
//! (and composite keys) work the same.

use std::collections::HashSet;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};

pub struct KeySet {
    converter: RowConverter,
    keys: HashSet<Box<[u8]>>,
}

impl KeySet {
    /// The keys in `columns` (one array per key column).
    pub fn new(columns: &[ArrayRef]) -> Result<KeySet, ArrowError> {
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let rows = converter.convert_columns(columns)?;
        let keys = rows.iter().map(|r| r.as_ref().into()).collect();
        Ok(KeySet { converter, keys })
    }

    /// An empty set for keys of these types.
    pub fn empty(types: &[DataType]) -> Result<KeySet, ArrowError> {
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(KeySet {
            converter: RowConverter::new(fields)?,
            keys: HashSet::new(),
        })
    }

    /// Adds the keys in `columns` (of the set's key types).
    pub fn insert(&mut self, columns: &[ArrayRef]) -> Result<(), ArrowError> {
        let rows = self.converter.convert_columns(columns)?;
        self.keys.extend(rows.iter().map(|r| r.as_ref().into()));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Which rows of `columns` have a key in the set.
    pub fn mask(&self, columns: &[ArrayRef]) -> Result<BooleanArray, ArrowError> {
        let rows = self.converter.convert_columns(columns)?;
        Ok(rows
            .iter()
            .map(|r| Some(self.keys.contains(r.as_ref())))
            .collect())
    }
}
