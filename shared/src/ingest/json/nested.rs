//! Nested columns: structs (and the rows themselves), lists and maps.

use rustc_hash::FxHashMap;
use std::ops::Range;

use arrow_array::ArrayRef;
use arrow_array::builder::NullBufferBuilder;
use arrow_schema::{ArrowError, FieldRef, Fields};

use super::column::{Column, offset};
use super::cursor::{Cursor, same_short};
use super::string::Utf8Values;
use super::{Decoded, in_field};
use crate::schema::ValueFormats;

pub(super) struct StructColumn {
    pub(super) fields: Fields,
    pub(super) children: Vec<Column>,
    /// Which fields the object being read has set.
    pub(super) seen: Vec<bool>,
    /// Each field's JSON key: its name, or the key the schema reads it from (`from`).
    pub(super) keys: Vec<Box<[u8]>>,
    /// Field by key, for keys out of the expected order. A fixed set, only looked up: a fast
    /// hash needs no protection from keys chosen to collide.
    pub(super) index: FxHashMap<Box<[u8]>, usize>,
    /// Each field's key as compact JSON writes it, `key":` after the opening quote, when the
    /// key needs no escape (then the raw bytes can be compared with it).
    pub(super) plain_keys: Vec<Option<Box<[u8]>>>,
    pub(super) nulls: NullBufferBuilder,
}

/// Where a member's raw key ends, given where its value starts: at the key's closing quote.
fn raw_key_end(bytes: &[u8], key_start: usize, value: usize) -> usize {
    bytes[key_start..value].iter().rposition(|&byte| byte == b':').map_or(value, |colon| {
        let before_colon = &bytes[key_start..key_start + colon];
        key_start + before_colon.iter().rposition(|&byte| byte == b'"').map_or(colon, |quote| quote + 1)
    })
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

/// What a struct does with the members it cannot take: the rows of a rescuing decoder keep
/// them, every other struct skips unknown fields and refuses values that do not fit.
pub(super) trait Members {
    /// Whether a top-level value that does not fit its column is rescued instead.
    const RESCUES: bool;
    /// Keeps the member whose raw key and value are at `key` and `value`.
    fn keep(&mut self, bytes: &[u8], key: Range<usize>, value: Range<usize>);
}

/// Skips unknown fields; refuses values that do not fit.
pub(super) struct Strict;

impl Members for Strict {
    const RESCUES: bool = false;

    #[inline(always)]
    fn keep(&mut self, _: &[u8], _: Range<usize>, _: Range<usize>) {}
}

/// The current row's rescued members, as raw JSON (`"key":value,...`).
#[derive(Debug, Default)]
pub(super) struct Rescue {
    members: Vec<u8>,
}

impl Rescue {
    /// The row's rescued members as a JSON object, if there were any, and a fresh start.
    pub(super) fn take_row(&mut self) -> Option<String> {
        if self.members.is_empty() {
            return None;
        }
        let mut object = Vec::with_capacity(self.members.len() + 2);
        object.push(b'{');
        object.extend_from_slice(&self.members);
        object.push(b'}');
        self.members.clear();
        // Raw slices of a line that passed the UTF-8 check, cut at ASCII delimiters.
        Some(String::from_utf8(object).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()))
    }
}

impl Members for Rescue {
    const RESCUES: bool = true;

    fn keep(&mut self, bytes: &[u8], key: Range<usize>, value: Range<usize>) {
        if !self.members.is_empty() {
            self.members.push(b',');
        }
        self.members.extend_from_slice(&bytes[key]);
        self.members.push(b':');
        self.members.extend_from_slice(&bytes[value]);
    }
}

impl StructColumn {
    /// The struct of `fields` at column `path`, reading values as `formats` say.
    pub(super) fn new(fields: &Fields, path: &str, formats: &ValueFormats) -> Self {
        let child_path = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
        let keys: Vec<Box<[u8]>> =
            fields.iter().map(|f| formats.key(&child_path(f.name())).unwrap_or(f.name()).as_bytes().into()).collect();
        Self {
            fields: fields.clone(),
            children: fields
                .iter()
                .map(|f| Column::new(f.is_nullable(), f.data_type(), &child_path(f.name()), formats))
                .collect(),
            seen: vec![false; fields.len()],
            index: keys.iter().enumerate().rev().map(|(i, key)| (key.clone(), i)).collect(),
            plain_keys: keys
                .iter()
                .map(|key| {
                    let plain = key.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\');
                    plain.then(|| [key, &b"\":"[..]].concat().into())
                })
                .collect(),
            keys,
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// The declared field read from `key`; `expected` (the one after the last field read) is
    /// tried first, since producers write fields in a steady order.
    #[inline]
    pub(super) fn field(&self, key: &[u8], expected: usize) -> Option<usize> {
        match self.keys.get(expected) {
            Some(field_key) if **field_key == *key => Some(expected),
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
    #[inline]
    pub(super) fn parse_object(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        self.parse_members(cursor, &mut Strict)
    }

    /// Reads the object at the cursor as one row (or element), handing `members` what the
    /// struct does not take.
    pub(super) fn parse_members<M: Members>(&mut self, cursor: &mut Cursor<'_>, members: &mut M) -> Decoded<()> {
        self.seen.fill(false);
        let mut expected = 0;
        let mut present = 0;
        cursor.each(b'{', b'}', |cursor| {
            if cursor.peek() != Some(b'"') {
                return Err(cursor.reject("a field name"));
            }
            let key_start = cursor.pos;
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
                let value = cursor.pos;
                // A refusal inside an undeclared field names it (as written, escapes and all).
                cursor.skip_value(0).map_err(|refused| {
                    let key = raw_key_end(cursor.bytes, key_start, value);
                    let name = cursor.bytes.get(key_start + 1..key.saturating_sub(1)).unwrap_or_default();
                    in_field(refused, &String::from_utf8_lossy(name))
                })?;
                if M::RESCUES {
                    members.keep(
                        cursor.bytes,
                        key_start..raw_key_end(cursor.bytes, key_start, value),
                        value..cursor.pos,
                    );
                }
                return Ok(());
            };
            if std::mem::replace(&mut self.seen[index], true) {
                return Err(in_field(cursor.reject("each field once (no duplicate keys)"), self.fields[index].name()));
            }
            expected = index + 1;
            present += 1;
            let value = cursor.pos;
            let child = &mut self.children[index];
            let before = if M::RESCUES { child.len() } else { 0 };
            match child.parse_value(cursor) {
                Ok(()) => Ok(()),
                Err(refused) if M::RESCUES && child.nullable => {
                    // The value does not fit: keep it as written, and a null in its column.
                    child.truncate(before);
                    cursor.pos = value;
                    cursor.skip_value(0).map_err(|_| in_field(refused, self.fields[index].name()))?;
                    child.append_null(false, cursor)?;
                    let key = key_start..raw_key_end(cursor.bytes, key_start, value);
                    members.keep(cursor.bytes, key, value..cursor.pos);
                    Ok(())
                }
                Err(refused) => Err(in_field(refused, self.fields[index].name())),
            }
        })?;
        // Producers that write nulls out (serde does) leave no field absent: skip the pass.
        if present < self.children.len() {
            for (index, (child, seen)) in self.children.iter_mut().zip(&self.seen).enumerate() {
                if !seen {
                    child.append_null(false, cursor).map_err(|refused| in_field(refused, self.fields[index].name()))?;
                }
            }
        }
        self.nulls.append_non_null();
        Ok(())
    }

    /// Rows (or elements) held.
    pub(super) fn len(&self) -> usize {
        self.nulls.len()
    }

    /// Takes back every row (or element) after the first `len`.
    pub(super) fn truncate(&mut self, len: usize) {
        for child in &mut self.children {
            child.truncate(len);
        }
        self.nulls.truncate(len);
    }

    pub(super) fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        self.children.iter_mut().map(Column::finish).collect()
    }
}

impl ListColumn {
    /// Reads the list at the cursor.
    pub(super) fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        cursor.each(b'[', b']', |cursor| self.child.parse_value(cursor))?;
        self.offsets.push(offset(self.child.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.child.truncate(self.offsets[len] as usize);
        self.nulls.truncate(len);
    }
}

/// Maps with more entries than this find duplicate keys through a hash set, not a scan.
const SCANNED_MAP_ENTRIES: usize = 16;

impl MapColumn {
    /// Reads the map at the cursor; a key given twice refuses it, as no value would be exact.
    pub(super) fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        let first = self.keys.offsets.len() - 1;
        let mut large: Option<std::collections::HashSet<Vec<u8>>> = None;
        cursor.each(b'{', b'}', |cursor| {
            self.keys.parse(cursor)?;
            let entries = self.keys.offsets.len() - 1;
            let key = self.keys.value(entries - 1);
            let repeated = if entries - first <= SCANNED_MAP_ENTRIES {
                (first..entries - 1).any(|entry| self.keys.value(entry) == key)
            } else {
                let seen =
                    large.get_or_insert_with(|| (first..entries - 1).map(|e| self.keys.value(e).to_vec()).collect());
                !seen.insert(key.to_vec())
            };
            if repeated {
                return Err(cursor.reject("each map key once (no duplicate keys)"));
            }
            cursor.colon()?;
            self.values.parse_value(cursor)
        })?;
        self.offsets.push(offset(self.keys.offsets.len() - 1, cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        let entries = self.offsets[len] as usize;
        self.keys.truncate(entries);
        self.values.truncate(entries);
        self.nulls.truncate(len);
    }
}
