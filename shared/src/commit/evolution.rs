//! Schema evolution: new nullable columns in the declared schema reach the table in the same
//! commit as the first data that has them; anything else (a type change, a dropped column, a
//! new required column, a nullability change) is refused with the column named.

use std::sync::Arc;

use arrow_array::{RecordBatch, new_null_array};
use arrow_schema::SchemaRef;
use deltalake::kernel::StructType;

use crate::error::{Error, Result};

/// The table schema to commit: `None` when the table already has every declared column,
/// otherwise the table's columns followed by the new declared ones.
pub fn plan_evolution(table: &StructType, declared: &StructType) -> Result<Option<StructType>> {
    let refuse = |reason: String| Error::Schema { location: "declared schema vs Delta table".into(), reason };
    for column in table.fields() {
        let Some(wanted) = declared.field(column.name()) else {
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
/// an older schema lacks become nulls.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
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

#[cfg(test)]
mod tests {
    use deltalake::kernel::{DataType, StructField};

    use super::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> StructType {
        StructType::try_new(fields.iter().map(|(n, t, null)| StructField::new(*n, t.clone(), *null))).unwrap()
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
}
