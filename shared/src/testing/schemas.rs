//! Schemas that tests share, by name, so a test builds its table schema in one line:
//! `schemas::ID_AT.parse()`, `schemas::events()`, or the text itself for a schema file a test
//! writes (`schemas::ID.text`). A schema that is the subject of its test (a parse error, every
//! type nested every way) stays in that test.

use std::path::PathBuf;
use std::sync::Arc;

use crate::schema::{Layout, TableSchema};

/// A schema file's text, with the name errors give it.
#[derive(Debug, Clone, Copy)]
pub struct NamedSchema {
    /// Where errors say the schema comes from.
    pub name: &'static str,
    /// The schema file's JSON.
    pub text: &'static str,
}

impl NamedSchema {
    /// The schema with no partitioning or rescue.
    pub fn parse(&self) -> Arc<TableSchema> {
        self.parse_with(Layout::default())
    }

    /// The schema with `layout`'s partitioning and rescue.
    pub fn parse_with(&self, layout: Layout) -> Arc<TableSchema> {
        Arc::new(TableSchema::parse_with(self.text, self.name, layout).expect("a valid test schema"))
    }
}

/// One nullable `id` (long): the smallest table.
pub const ID: NamedSchema = NamedSchema { name: "id", text: r#"{"fields":[{"name":"id","type":"long"}]}"# };

/// `id` (long) and `at` (timestamp): rows with a time of their own.
pub const ID_AT: NamedSchema =
    NamedSchema { name: "id_at", text: r#"{"fields":[{"name":"id","type":"long"},{"name":"at","type":"timestamp"}]}"# };

/// `id` (long) and `pad` (string): rows as wide as their padding.
pub const ID_PAD: NamedSchema =
    NamedSchema { name: "id_pad", text: r#"{"fields":[{"name":"id","type":"long"},{"name":"pad","type":"string"}]}"# };

/// `page` (string): the web table of a deployment of several.
pub const PAGE: NamedSchema = NamedSchema { name: "page", text: r#"{"fields":[{"name":"page","type":"string"}]}"# };

/// `status` (long): the api table of a deployment of several.
pub const STATUS: NamedSchema = NamedSchema { name: "status", text: r#"{"fields":[{"name":"status","type":"long"}]}"# };

/// The schema of one nullable column `name` of `data_type`, given as JSON: a quoted type name
/// (`"\"long\""`) or a nested type (`{"list":"string"}`).
pub fn column(name: &str, data_type: &str) -> String {
    format!(r#"{{"fields":[{{"name":"{name}","type":{data_type}}}]}}"#)
}

/// `schemas/events.schema.json`: the declared schema of the reference workload
/// ([`crate::testing::sample`]).
pub fn events_path() -> PathBuf {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    shared.parent().expect("shared/ is in the workspace").join("schemas/events.schema.json")
}

/// The reference workload's schema, with no partitioning or rescue.
pub fn events() -> Arc<TableSchema> {
    events_with(Layout::default())
}

/// The reference workload's schema with `layout`'s partitioning and rescue.
pub fn events_with(layout: Layout) -> Arc<TableSchema> {
    Arc::new(TableSchema::from_path_with(&events_path(), layout).expect("schemas/events.schema.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_schema_parses_with_its_declared_columns() {
        for (schema, columns) in [(ID, 1), (ID_AT, 2), (ID_PAD, 2), (PAGE, 1), (STATUS, 1)] {
            assert_eq!(schema.parse().decoded.fields().len(), columns, "{}", schema.name);
        }
        let nested = TableSchema::parse(&column("v", r#"{"list":"string"}"#), "v").unwrap();
        assert_eq!(nested.decoded.field(0).name(), "v");
        assert!(events().decoded.fields().len() > 30, "the reference workload's 40 fields");
    }
}
