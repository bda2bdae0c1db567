//! The table files a compaction or an optimize writes, whatever they are written from.
//!
//! Both read whole Parquet files (staged fragments, or small table files) and turn their rows
//! into target-sized table files. Each file is either copied row group by row group, byte for
//! byte ([`CopiedFiles`]), or, when it cannot be (an older encoding or schema, rows to drop,
//! a table whose statistics the copier does not cover), decoded, given the table's shape and
//! written again through delta-rs' writer ([`DataFiles`]). [`TableFiles`] owns both writers and
//! makes that choice in one place, so compaction and optimize copy by the same rules, fall back
//! the same way and return one list of Add actions; only what they read differs ([`Input`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{Add, StructType};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::commit::copy::{CopiedFiles, CopyPlan};
use crate::commit::evolution::conform;
use crate::commit::table::DataFiles;
use crate::error::{Error, Result};
use crate::lineage::SourceId;
use crate::schema::{SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN};
use crate::stage::fragment::parquet_rows;

/// A file whose rows go into the table files, as [`TableFiles::write`] reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// A staged fragment, its partition column included: all of its rows (`keep: None`, and then
    /// it may be copied), or only those of the sources in `keep`.
    Fragment { keep: Option<&'a HashSet<SourceId>> },
    /// A table file, which stores no partition columns: their values are `partition`.
    TableFile { partition: &'a BTreeMap<String, Option<String>> },
}

/// What writing one file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Rows written.
    pub rows: u64,
    /// Whether its row groups were copied as they were encoded (else it was decoded).
    pub copied: bool,
}

/// Table files being written for `table` in one schema, rolled at the target size, from files
/// copied where they can be and decoded where they cannot.
pub(crate) struct TableFiles {
    /// The table files' Arrow schema, partition columns included.
    target: SchemaRef,
    /// Files written from decoded rows.
    decoded: DataFiles,
    /// Files assembled from copied row groups; `None` when the table's files cannot be copied.
    copied: Option<CopiedFiles>,
}

impl TableFiles {
    /// Writers for `table` with `schema` (its own, or an evolved one); nothing is written yet.
    pub fn new(table: &DeltaTable, schema: &StructType, target_file_bytes: u64) -> Result<Self> {
        let target: SchemaRef = Arc::new(schema.try_into_arrow()?);
        let decoded = DataFiles::new(table, target.clone(), target_file_bytes)?;
        let copied = CopiedFiles::new(table, target.clone(), target_file_bytes)?;
        Ok(Self { target, decoded, copied })
    }

    /// Writes the rows of the Parquet file `data` that `input` asks for: its row groups copied
    /// when the copier has a plan for them, else its rows decoded and written again.
    pub async fn write(&mut self, data: Bytes, input: Input<'_>) -> Result<Written> {
        if let Some((metadata, plan)) = self.copy_plan(&data, input)? {
            let copier = self.copied.as_mut().expect("a copy plan comes from the copier");
            let rows = copier.copy(&data, &metadata, &plan).await?;
            return Ok(Written { rows, copied: true });
        }
        let rows = self.decode(data, input).await?;
        Ok(Written { rows, copied: false })
    }

    /// The file's footer and how its row groups are copied, or `None` when they are not: no
    /// copier, only some of a fragment's rows wanted, or a file the copier cannot take as it is.
    fn copy_plan(&self, data: &Bytes, input: Input<'_>) -> Result<Option<(ParquetMetaData, CopyPlan)>> {
        let Some(copier) = &self.copied else { return Ok(None) };
        let plan = match input {
            Input::Fragment { keep: Some(_) } => None,
            Input::Fragment { keep: None } => {
                let metadata = ParquetMetaDataReader::new().parse_and_finish(data)?;
                copier.plan(&metadata).map(|plan| (metadata, plan))
            }
            Input::TableFile { partition } => {
                let metadata = ParquetMetaDataReader::new().parse_and_finish(data)?;
                copier.plan_table_file(&metadata, partition).map(|plan| (metadata, plan))
            }
        };
        Ok(plan)
    }

    /// Decodes the file's rows, gives them the table's shape and writes those `input` asks for;
    /// returns how many. A batch left with no rows is not written (a Parquet reader yields none
    /// empty, so only a fragment's filtered batch can be).
    async fn decode(&mut self, data: Bytes, input: Input<'_>) -> Result<u64> {
        let mut rows = 0;
        for batch in parquet_rows(data)? {
            let batch = match input {
                Input::Fragment { keep } => {
                    let batch = conform(&batch?, &self.target)?;
                    match keep {
                        Some(keep) => only_sources(&batch, keep)?,
                        None => batch,
                    }
                }
                Input::TableFile { partition } => conform(&with_partition_values(batch?, partition)?, &self.target)?,
            };
            if batch.num_rows() > 0 {
                rows += batch.num_rows() as u64;
                self.decoded.write(&batch).await?;
            }
        }
        Ok(rows)
    }

    /// Finishes every open file; the Add actions of all files written, decoded ones first.
    pub async fn close(self) -> Result<Vec<Add>> {
        let mut adds = self.decoded.close().await?;
        if let Some(copied) = self.copied {
            adds.extend(copied.close().await?);
        }
        Ok(adds)
    }
}

/// The rows of `batch` that come from one of `sources`.
fn only_sources(batch: &RecordBatch, sources: &HashSet<SourceId>) -> Result<RecordBatch> {
    let files = batch.column_by_name(SOURCE_FILE_COLUMN).ok_or_else(|| lineage_missing(SOURCE_FILE_COLUMN))?;
    let etags = batch.column_by_name(SOURCE_ETAG_COLUMN).ok_or_else(|| lineage_missing(SOURCE_ETAG_COLUMN))?;
    let (files, etags) = (files.as_string::<i32>(), etags.as_string::<i32>());
    let wanted: BTreeSet<(&str, Option<&str>)> =
        sources.iter().map(|id| (id.uri.as_str(), id.etag.as_deref())).collect();
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let etag = (!etags.is_null(row)).then(|| etags.value(row));
            Some(wanted.contains(&(files.value(row), etag)))
        })
        .collect();
    Ok(arrow_select::filter::filter_record_batch(batch, &mask)?)
}

fn lineage_missing(column: &str) -> Error {
    Error::Integrity(format!("fragment has no {column} column: it was not written by this version of Inlet"))
}

/// Data files do not store partition columns; put them back (as strings, which `conform` casts
/// to the table's type) so the batch has the table's shape.
fn with_partition_values(batch: RecordBatch, partition: &BTreeMap<String, Option<String>>) -> Result<RecordBatch> {
    if partition.is_empty() {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (column, value) in partition {
        fields.push(Arc::new(Field::new(column, DataType::Utf8, true)));
        columns.push(match value {
            Some(value) => Arc::new(StringArray::from(vec![value.as_str(); rows])),
            None => new_null_array(&DataType::Utf8, rows),
        });
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
