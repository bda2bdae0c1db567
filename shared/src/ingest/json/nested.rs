//! Nested columns: structs (and the rows themselves), lists and maps.

use std::collections::HashMap;

use arrow_array::ArrayRef;
use arrow_array::builder::NullBufferBuilder;
use arrow_schema::{ArrowError, FieldRef, Fields};

use super::Decoded;
use super::column::Column;
use super::cursor::{Cursor, same_short};
use super::string::Utf8Values;

pub(super) struct StructColumn {
    pub(super) fields: Fields,
    pub(super) children: Vec<Column>,
    /// Which fields the object being read has set.
    pub(super) seen: Vec<bool>,
    pub(super) index: HashMap<Box<[u8]>, usize>,
    /// Each field's key as compact JSON writes it, `name":` after the opening quote, when the
    /// name needs no escape (then the raw bytes can be compared with it).
    pub(super) plain_keys: Vec<Option<Box<[u8]>>>,
    pub(super) nulls: NullBufferBuilder,
}

pub(super) struct ListColumn {
    pub(super) element: FieldRef,
    pub(super) offsets: Vec<i32>,
    pub(super) child: Column,
    pub(super) nulls: NullBufferBuilder,
}

pub(super) struct MapColumn {
    pub(super) entries: FieldRef,
    pub(super) ordered: bool,
    pub(super) offsets: Vec<i32>,
    pub(super) keys: Utf8Values,
    pub(super) values: Column,
    pub(super) nulls: NullBufferBuilder,
}

impl StructColumn {
    pub(super) fn new(fields: &Fields) -> Self {
        Self {
            fields: fields.clone(),
            children: fields.iter().map(|f| Column::new(f.is_nullable(), f.data_type())).collect(),
            seen: vec![false; fields.len()],
            index: fields.iter().enumerate().rev().map(|(i, f)| (f.name().as_bytes().into(), i)).collect(),
            plain_keys: fields
                .iter()
                .map(|f| {
                    let name = f.name().as_bytes();
                    let plain = name.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\');
                    plain.then(|| [name, b"\":"].concat().into())
                })
                .collect(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// The declared field named `key`; `expected` (the one after the last field read) is
    /// tried first, since producers write fields in a steady order.
    #[inline]
    pub(super) fn field(&self, key: &[u8], expected: usize) -> Option<usize> {
        match self.fields.get(expected) {
            Some(field) if field.name().as_bytes() == key => Some(expected),
            _ => self.index.get(key).copied(),
        }
    }

    /// Steps over the key and colon at the cursor if they are exactly the `expected` field's
    /// name and `:` with nothing between (compact JSON); anything else takes the general path.
    #[inline]
    pub(super) fn expected_key(&self, cursor: &mut Cursor<'_>, expected: usize) -> Option<usize> {
        let key = self.plain_keys.get(expected)?.as_deref()?;
        let start = cursor.pos + 1;
        let found = cursor.bytes.get(start..start + key.len())?;
        same_short(found, key).then(|| {
            cursor.pos = start + key.len();
            expected
        })
    }

    /// Reads the object at the cursor as one row (or element) of this struct.
    pub(super) fn parse_object(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        self.seen.fill(false);
        let mut expected = 0;
        let mut present = 0;
        cursor.each(b'{', b'}', |cursor| {
            if cursor.peek() != Some(b'"') {
                return Err(cursor.reject("a field name"));
            }
            let field = match self.expected_key(cursor, expected) {
                Some(index) => {
                    cursor.skip_whitespace();
                    Some(index)
                }
                None => {
                    let key = cursor.raw_string()?;
                    let field = self.field(key, expected);
                    cursor.colon()?;
                    field
                }
            };
            let Some(index) = field else {
                return cursor.skip_value(0);
            };
            // arrow-json keeps the last of duplicate keys; rare enough to leave to it.
            if std::mem::replace(&mut self.seen[index], true) {
                return Err(cursor.reject("no duplicate field"));
            }
            expected = index + 1;
            present += 1;
            self.children[index].parse_value(cursor)
        })?;
        // Producers that write nulls out (serde does) leave no field absent: skip the pass.
        if present < self.children.len() {
            for (child, seen) in self.children.iter_mut().zip(&self.seen) {
                if !seen {
                    child.append_null(false, cursor)?;
                }
            }
        }
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        self.children.iter_mut().map(Column::finish).collect()
    }
}
