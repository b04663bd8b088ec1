//! MySQL values to and from Arrow, through the SQLite codec: both speak in
//! integers, floats, text and bytes, so a MySQL value is handed to the
//! SQLite decoder as the SQLite value it reads the same (a DATETIME as its
//! canonical text), and the SQLite encoder's parameters are bound as MySQL
//! values. One set of conversion and range rules for both connectors.

use std::fmt::Write as _;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use mysql_async::{Row, Value};
use planner::types::ColumnSpec;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::conform::check_fits;
use crate::sqlite::codec::{ColumnDecoder, ColumnEncoder};
use crate::{ConnectorError, Result};

/// `v` as the SQLite value the SQLite decoder reads as the same value;
/// formatted text (dates, times) is written into `scratch`.
pub fn as_sqlite<'a>(v: &'a Value, scratch: &'a mut String) -> ValueRef<'a> {
    match v {
        Value::NULL => ValueRef::Null,
        Value::Bytes(b) => ValueRef::Text(b),
        Value::Int(i) => ValueRef::Integer(*i),
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => ValueRef::Integer(i),
            Err(_) => {
                scratch.clear();
                let _ = write!(scratch, "{u}");
                ValueRef::Text(scratch.as_bytes())
            }
        },
        Value::Float(f) => ValueRef::Real(f64::from(*f)),
        Value::Double(f) => ValueRef::Real(*f),
        Value::Date(y, mo, d, h, mi, s, us) => {
            scratch.clear();
            let _ = write!(
                scratch,
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
            );
            ValueRef::Text(scratch.as_bytes())
        }
        // A TIME beyond a day or negative is not a time of day: the text
        // the decoder then refuses names it.
        Value::Time(negative, days, h, mi, s, us) => {
            scratch.clear();
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *negative { "-" } else { "" };
            let _ = write!(scratch, "{sign}{hours:02}:{mi:02}:{s:02}.{us:06}");
            ValueRef::Text(scratch.as_bytes())
        }
    }
}

/// A SQLite encoder's parameter as the MySQL value stored the same: a
/// timestamptz's `+00:00` dropped (DATETIME holds the UTC wall clock).
pub fn from_sqlite(v: ToSqlOutput<'_>) -> Value {
    let value = match &v {
        ToSqlOutput::Borrowed(r) => *r,
        ToSqlOutput::Owned(o) => ValueRef::from(o),
        _ => ValueRef::Null,
    };
    match value {
        ValueRef::Null => Value::NULL,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Double(f),
        ValueRef::Text(t) => Value::Bytes(t.strip_suffix(b"+00:00").unwrap_or(t).to_vec()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// Encoders of a batch's columns as `specs` type them.
pub fn encoders(batch: &RecordBatch, specs: &[ColumnSpec]) -> Result<Vec<ColumnEncoder>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnEncoder::new(batch.column(i), &c.data_type))
        .collect()
}

/// Decodes MySQL rows into batches of `specs`.
pub struct RowDecoder {
    schema: SchemaRef,
    specs: Vec<ColumnSpec>,
    columns: Vec<ColumnDecoder>,
    scratch: String,
}

impl RowDecoder {
    pub fn new(specs: &[ColumnSpec]) -> RowDecoder {
        RowDecoder {
            schema: planner::types::arrow_schema(specs),
            specs: specs.to_vec(),
            columns: specs
                .iter()
                .map(|c| ColumnDecoder::new(&c.data_type))
                .collect(),
            scratch: String::new(),
        }
    }

    pub fn push(&mut self, row: &Row) -> Result<()> {
        for (i, dec) in self.columns.iter_mut().enumerate() {
            let v = row.as_ref(i).unwrap_or(&Value::NULL);
            if let Err(e) = dec.push(as_sqlite(v, &mut self.scratch)) {
                return Err(ConnectorError::Value(format!(
                    "row {}, column \"{}\": {e}",
                    row_key(row, &self.specs),
                    self.specs[i].name
                )));
            }
        }
        Ok(())
    }

    /// The rows pushed since the last batch, as one.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|d| d.finish()).collect();
        let batch = crate::conform::keyed_batch(self.schema.clone(), arrays, &self.specs)?;
        check_fits(&batch, &self.specs)?;
        Ok(batch)
    }
}

/// `id=42`: the key columns of a row as read.
fn row_key(row: &Row, specs: &[ColumnSpec]) -> String {
    specs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unique)
        .map(|(i, c)| {
            let v = match row.as_ref(i) {
                Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(v) => v.as_sql(true),
                None => "?".into(),
            };
            format!("{}={v}", c.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
