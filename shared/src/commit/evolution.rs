//! Schema evolution: new nullable columns reach the table in the same commit as the first data
//! that has them, whether the compactor's declared schema names them or only the staged
//! fragments do (converters that read a newer schema first, during a rollout); anything else
//! (a type change, a dropped required column, a new required column, a nullability change) is
//! refused with the column named, and a fragment that carries such a column is held back
//! rather than committed without it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{RecordBatch, new_null_array};
use arrow_schema::{DataType as ArrowType, Fields, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use deltalake::kernel::{DataType, StructField, StructType};
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::schema::{TableSchema, refused_column_name};
use crate::stage::fragment::FragmentInfo;

/// The table schema to commit: `None` when the table already has every declared column,
/// otherwise the table's columns followed by the new declared ones.
pub fn plan_evolution(table: &StructType, declared: &StructType) -> Result<Option<StructType>> {
    let refuse = |reason: String| Error::Schema { location: "declared schema vs Delta table".into(), reason };
    for column in table.fields() {
        let Some(wanted) = declared.field(column.name()) else {
            // Added from the fragments of converters with a newer schema, while this compactor
            // still has the older one: kept, null in rows without it. Only a required column
            // cannot be left out of new rows.
            if column.is_nullable() {
                continue;
            }
            return Err(refuse(format!(
                "column {:?} is in the table but not in the declared schema: dropping columns is not supported",
                column.name()
            )));
        };
        if wanted.data_type() != column.data_type() {
            return Err(refuse(format!(
                "column {:?} changes type from {} to {}: only new nullable columns can be added",
                column.name(),
                column.data_type(),
                wanted.data_type()
            )));
        }
        if wanted.is_nullable() != column.is_nullable() {
            return Err(refuse(format!("column {:?} changes nullability: not supported", column.name())));
        }
    }
    let added: Vec<_> = declared.fields().filter(|field| table.field(field.name()).is_none()).cloned().collect();
    if added.is_empty() {
        return Ok(None);
    }
    if let Some(problem) = added.iter().find_map(refused_column_name) {
        return Err(refuse(problem));
    }
    if let Some(required) = added.iter().find(|field| !field.is_nullable()) {
        return Err(refuse(format!(
            "new column {:?} is not nullable: rows already in the table could not have it",
            required.name()
        )));
    }
    let evolved = StructType::try_new(table.fields().cloned().chain(added)).map_err(|err| refuse(err.to_string()))?;
    Ok(Some(evolved))
}

/// Reshapes a fragment's batch to `target`, by column name: columns a fragment written under
/// an older schema lacks become nulls. A column `target` lacks is refused, never dropped.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
    }
    if let Some(extra) = batch.schema().fields().iter().find(|field| target.field_with_name(field.name()).is_err()) {
        return Err(Error::Schema {
            location: "fragment vs table schema".into(),
            reason: format!("column {:?} is not in the table schema: its values would be dropped", extra.name()),
        });
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => Ok(arrow_cast::cast(column, field.data_type())?),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(target), columns)?)
}

/// What the staged fragments' own columns ask of a table whose schema would be `base`.
#[derive(Debug, Default)]
pub struct FragmentColumns {
    /// Per fragment, the nullable columns it adds to `base` (one type per name across them).
    pub additions: HashMap<Path, Vec<StructField>>,
    /// Fragments held back, with why: a column they carry cannot join the table.
    pub held: BTreeMap<Path, String>,
}

impl FragmentColumns {
    /// Judges each of `staged` against `base`.
    pub fn of(base: &StructType, staged: &[FragmentInfo]) -> Self {
        let mut columns = Self::default();
        for fragment in staged {
            match fragment_additions(base, &fragment.fields) {
                Ok(added) if added.is_empty() => {}
                Ok(added) => {
                    columns.additions.insert(fragment.path.clone(), added);
                }
                Err(reason) => {
                    columns.held.insert(fragment.path.clone(), reason);
                }
            }
        }
        // Two fragments adding one name with two types: neither is committed under a guess.
        let mut types: BTreeMap<&str, Vec<&DataType>> = BTreeMap::new();
        for field in columns.additions.values().flatten() {
            let seen = types.entry(field.name().as_str()).or_default();
            if !seen.contains(&field.data_type()) {
                seen.push(field.data_type());
            }
        }
        let disputed: BTreeMap<String, String> = types
            .into_iter()
            .filter(|(_, types)| types.len() > 1)
            .map(|(name, types)| {
                (name.to_string(), types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" vs "))
            })
            .collect();
        let mut held = std::mem::take(&mut columns.held);
        columns.additions.retain(|path, added| match added.iter().find(|f| disputed.contains_key(f.name())) {
            Some(field) => {
                let reason = format!(
                    "staged fragments disagree on the type of new column {:?} ({})",
                    field.name(),
                    disputed[field.name()]
                );
                held.insert(path.clone(), reason);
                false
            }
            None => true,
        });
        columns.held = held;
        columns
    }

    /// `base` with the columns the fragments at `paths` add, each once, in order of appearance.
    pub fn evolve<'a>(&self, base: &StructType, paths: impl IntoIterator<Item = &'a Path>) -> Result<StructType> {
        let mut fields: Vec<StructField> = base.fields().cloned().collect();
        for field in paths.into_iter().filter_map(|path| self.additions.get(path)).flatten() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(field.clone());
            }
        }
        StructType::try_new(fields).map_err(|err| Error::Schema {
            location: "staged fragments vs Delta table".into(),
            reason: err.to_string(),
        })
    }
}

/// The columns of a fragment with `fields` that `base` lacks, as Delta columns; or why the
/// fragment cannot be committed under `base`: a new column that cannot join it, or a column it
/// has with another type at any depth (a cast would drop a nested field or null a value) or
/// with nulls where the table allows none.
pub fn fragment_additions(base: &StructType, fields: &Fields) -> std::result::Result<Vec<StructField>, String> {
    let mut added = Vec::new();
    for field in fields.iter() {
        let name = field.name();
        let delta = DataType::try_from_arrow(field.data_type())
            .map_err(|err| format!("column {name:?} of type {} has no Delta type: {err}", field.data_type()));
        if let Some(column) = base.field(name) {
            let delta = delta?;
            if delta != *column.data_type() {
                return Err(format!(
                    "column {name:?} is {delta} in the fragment but {} in the table",
                    column.data_type()
                ));
            }
            if field.is_nullable() && !column.is_nullable() {
                return Err(format!("column {name:?} may be null in the fragment but is required in the table"));
            }
            continue;
        }
        if !field.is_nullable() {
            return Err(format!("new column {name:?} is not nullable: rows already in the table could not have it"));
        }
        let delta = delta?;
        let back: ArrowType = (&delta).try_into_arrow().map_err(|err| format!("new column {name:?}: {err}"))?;
        if back != *field.data_type() {
            return Err(format!("new column {name:?}: type {} has no exact Delta equivalent", field.data_type()));
        }
        added.push(StructField::new(name.clone(), delta, true));
    }
    Ok(added)
}

/// Whether a table can take rows of a declared schema, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFit {
    /// Whether it can.
    pub fits: bool,
    /// What was found, and when it cannot, what to do about it.
    pub detail: String,
}

/// Whether the table at `table_uri` can take rows of `schema` (as they are, or with new
/// nullable columns); `Err` when the table cannot be read at all (unreachable, damaged),
/// which says nothing about the schema.
pub async fn schema_fits_table(
    table_uri: &str,
    schema: &TableSchema,
    storage_options: &HashMap<String, String>,
) -> Result<TableFit> {
    let fits = |detail: String| TableFit { fits: true, detail };
    let refused = |detail: String| TableFit { fits: false, detail };
    let no_table_yet = || fits(format!("{table_uri}: no table yet; the first compaction of staged rows creates it"));
    let url = match url::Url::parse(table_uri) {
        Ok(url) => url,
        Err(err) => return Ok(refused(format!("{table_uri} is not a URL: {err}"))),
    };
    if url.scheme() == "file" && url.to_file_path().is_ok_and(|path| !path.exists()) {
        return Ok(no_table_yet());
    }
    let table = crate::commit::table::open_table(&url, storage_options).await?;
    if table.version().is_none() {
        return Ok(no_table_yet());
    }
    let current = table.snapshot()?.metadata().parse_schema().map_err(deltalake::DeltaTableError::from)?;
    Ok(match plan_evolution(&current, &schema.delta) {
        Ok(None) => fits(format!("{table_uri}: version {}, schema matches", table.version().unwrap_or(0))),
        Ok(Some(evolved)) => fits(format!(
            "{table_uri}: the next commit adds {} new nullable columns",
            evolved.fields().count() - current.fields().count()
        )),
        Err(err) => refused(format!("{table_uri}: {err}; change the declared schema back, or write to a new table")),
    })
}

#[cfg(test)]
mod tests {
    use deltalake::kernel::{DataType, StructField};

    use super::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> StructType {
        StructType::try_new(fields.iter().map(|(n, t, null)| StructField::new(*n, t.clone(), *null))).unwrap()
    }

    #[test]
    fn a_new_column_named_as_delta_refuses_is_refused_with_the_from_to_write() {
        let table = schema(&[("id", DataType::LONG, false)]);
        let nested = StructType::try_new([StructField::new("bad key", DataType::STRING, true)]).unwrap();
        for declared in [
            schema(&[("id", DataType::LONG, false), ("user agent", DataType::STRING, true)]),
            schema(&[("id", DataType::LONG, false), ("device", nested.into(), true)]),
        ] {
            let err = plan_evolution(&table, &declared).unwrap_err().to_string();
            assert!(err.contains("\"from\"") && err.contains("cannot hold"), "{err}");
        }
        // A table that already has such a column keeps it.
        let old = schema(&[("id", DataType::LONG, false), ("user agent", DataType::STRING, true)]);
        assert_eq!(plan_evolution(&old, &old).unwrap(), None);
    }

    #[test]
    fn new_nullable_columns_are_appended() {
        let table = schema(&[("id", DataType::LONG, false), ("_source_file", DataType::STRING, false)]);
        let declared = schema(&[
            ("id", DataType::LONG, false),
            ("country", DataType::STRING, true),
            ("_source_file", DataType::STRING, false),
        ]);
        let evolved = plan_evolution(&table, &declared).unwrap().unwrap();
        let names: Vec<&str> = evolved.fields().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["id", "_source_file", "country"]);
        assert_eq!(plan_evolution(&evolved, &declared).unwrap(), None, "column order alone is no change");
    }

    #[test]
    fn incompatible_changes_are_refused_naming_the_column() {
        let table = schema(&[("id", DataType::LONG, false), ("name", DataType::STRING, true)]);
        let retyped = schema(&[("id", DataType::STRING, false), ("name", DataType::STRING, true)]);
        let err = plan_evolution(&table, &retyped).unwrap_err().to_string();
        assert!(err.contains("\"id\" changes type"), "{err}");
        let dropped = schema(&[("name", DataType::STRING, true)]);
        let err = plan_evolution(&table, &dropped).unwrap_err().to_string();
        assert!(err.contains("\"id\" is in the table but not in the declared schema"), "{err}");
        let required =
            schema(&[("id", DataType::LONG, false), ("name", DataType::STRING, true), ("x", DataType::LONG, false)]);
        let err = plan_evolution(&table, &required).unwrap_err().to_string();
        assert!(err.contains("new column \"x\" is not nullable"), "{err}");
    }

    #[test]
    fn a_nullable_table_column_a_stale_declared_schema_lacks_is_kept() {
        let table = schema(&[("id", DataType::LONG, false), ("country", DataType::STRING, true)]);
        let stale = schema(&[("id", DataType::LONG, false)]);
        assert_eq!(plan_evolution(&table, &stale).unwrap(), None, "rows without it get nulls");
    }

    #[test]
    fn fragment_columns_join_only_as_exact_nullable_delta_columns() {
        use arrow_schema::Field;
        let base = schema(&[("id", DataType::LONG, false)]);
        let fields = |extra: Field| Fields::from(vec![Field::new("id", ArrowType::Int64, false), extra]);
        let added = fragment_additions(&base, &fields(Field::new("country", ArrowType::Utf8, true))).unwrap();
        assert_eq!(added, vec![StructField::new("country", DataType::STRING, true)]);
        let err = fragment_additions(&base, &fields(Field::new("code", ArrowType::Utf8, false))).unwrap_err();
        assert!(err.contains("\"code\" is not nullable"), "{err}");
        let err = fragment_additions(&base, &fields(Field::new("n", ArrowType::UInt64, true))).unwrap_err();
        assert!(err.contains("\"n\""), "{err}");
        assert!(
            fragment_additions(&base, &Fields::from(vec![Field::new("id", ArrowType::Int64, false)]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_batch_column_the_target_lacks_is_refused_not_dropped() {
        use arrow_array::{Int64Array, StringArray};
        use arrow_schema::{Field, Schema};
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1])) as arrow_array::ArrayRef),
            ("country", Arc::new(StringArray::from(vec!["DE"])) as arrow_array::ArrayRef),
        ])
        .unwrap();
        let target = Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int64, true)]));
        let err = conform(&batch, &target).unwrap_err().to_string();
        assert!(err.contains("\"country\" is not in the table schema"), "{err}");
    }
}
