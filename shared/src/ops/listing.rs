//! Existing objects a page at a time, from a listing of a prefix or from an S3 Inventory
//! report, each page with the position after it so that a reader can stop and continue.

use std::io::{BufRead, BufReader, Cursor, Lines};

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::backfill::{ListedObject, parse_s3_uri};
use crate::error::{Error, Result};
use crate::lineage::SourceObject;

/// Objects per page of an inventory (a listing's pages are S3's, up to 1,000 keys).
const INVENTORY_PAGE: usize = 1000;

/// How far a reader got: after a listing's key, or past rows of an inventory's data files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The last key listed (a listing continues after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_key: Option<String>,
    /// The inventory data file being read (its index in the manifest)...
    #[serde(default)]
    pub file: usize,
    /// ...and the rows of it already read.
    #[serde(default)]
    pub row: u64,
}

/// Objects under a prefix, each with the position just after it; `end` is the position after
/// the whole page (objects outside the prefix included).
#[derive(Debug, Default)]
pub struct Page {
    /// The objects of the prefix.
    pub objects: Vec<(ListedObject, Position)>,
    /// The position after the page.
    pub end: Position,
}

/// Where objects come from.
pub enum Pager {
    /// ListObjectsV2 of `bucket/prefix`, in key order.
    Listing {
        /// Client.
        s3: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
        /// The key prefix.
        prefix: String,
        /// Continue after this key.
        after: Option<String>,
        /// No more pages.
        exhausted: bool,
    },
    /// An S3 Inventory report (CSV), rows of `bucket` under `prefix`.
    Inventory(Box<Inventory>),
}

impl Pager {
    /// A listing of `bucket/prefix`, from `position`.
    pub fn listing(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str, position: &Position) -> Self {
        let after = position.after_key.clone();
        Pager::Listing { s3, bucket: bucket.into(), prefix: prefix.into(), after, exhausted: false }
    }

    /// The inventory report `manifest_uri` (`s3://…/manifest.json`) names, its rows of `bucket`
    /// under `prefix`, from `position`.
    pub async fn inventory(
        s3: aws_sdk_s3::Client,
        manifest_uri: &str,
        bucket: &str,
        prefix: &str,
        position: &Position,
    ) -> Result<Self> {
        let (manifest_bucket, manifest_key) = parse_s3_uri(manifest_uri)?;
        let text = read_all(&s3, &manifest_bucket, &manifest_key).await?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|err| Error::BadRequest(format!("{manifest_uri} is not an S3 Inventory manifest: {err}")))?;
        if !manifest.file_format.eq_ignore_ascii_case("CSV") {
            return Err(Error::BadRequest(format!(
                "{manifest_uri}: inventory format {} is not read here; configure the inventory as CSV",
                manifest.file_format
            )));
        }
        if manifest.source_bucket != bucket {
            return Err(Error::BadRequest(format!(
                "{manifest_uri} inventories bucket {}, not {bucket}",
                manifest.source_bucket
            )));
        }
        let destination = manifest.destination_bucket.rsplit(":::").next().unwrap_or_default().to_string();
        Ok(Pager::Inventory(Box::new(Inventory {
            s3,
            destination,
            files: manifest.files.into_iter().map(|file| file.key).collect(),
            columns: Columns::of(&manifest.file_schema)?,
            bucket: bucket.into(),
            prefix: prefix.into(),
            position: position.clone(),
            lines: None,
        })))
    }

    /// The next page, `None` once every object was read.
    pub async fn next_page(&mut self) -> Result<Option<Page>> {
        match self {
            Pager::Listing { s3, bucket, prefix, after, exhausted } => {
                if *exhausted {
                    return Ok(None);
                }
                let page = s3
                    .list_objects_v2()
                    .bucket(bucket.as_str())
                    .prefix(prefix.as_str())
                    .set_start_after(after.clone())
                    .send()
                    .await
                    .map_err(|err| Error::aws("ListObjectsV2", format!("s3://{bucket}/{prefix}"), err))?;
                *exhausted = page.is_truncated() != Some(true);
                let mut listed = Page::default();
                for entry in page.contents.unwrap_or_default() {
                    let Some(key) = entry.key else { continue };
                    let object = ListedObject {
                        object: SourceObject {
                            bucket: bucket.clone(),
                            key: key.clone(),
                            etag: entry.e_tag.map(|etag| etag.trim_matches('"').to_string()),
                            ..Default::default()
                        },
                        size: entry.size.unwrap_or_default().max(0) as u64,
                        last_modified: entry.last_modified.and_then(|at| DateTime::from_timestamp(at.secs(), 0)),
                    };
                    let position = Position { after_key: Some(key.clone()), ..Position::default() };
                    listed.objects.push((object, position));
                    *after = Some(key);
                }
                listed.end = Position { after_key: after.clone(), ..Position::default() };
                Ok(Some(listed))
            }
            Pager::Inventory(inventory) => inventory.next_page().await,
        }
    }
}

/// The columns of an inventory's `fileSchema` that a backfill reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    bucket: Option<usize>,
    key: usize,
    version: Option<usize>,
    delete_marker: Option<usize>,
    size: Option<usize>,
    last_modified: Option<usize>,
    etag: Option<usize>,
}

impl Columns {
    fn of(schema: &str) -> Result<Self> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let at = |name: &str| names.iter().position(|column| column.eq_ignore_ascii_case(name));
        Ok(Self {
            bucket: at("Bucket"),
            key: at("Key").ok_or_else(|| Error::BadRequest(format!("the inventory has no Key column: {schema}")))?,
            version: at("VersionId"),
            delete_marker: at("IsDeleteMarker"),
            size: at("Size"),
            last_modified: at("LastModifiedDate"),
            etag: at("ETag"),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: String,
    destination_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    key: String,
}

/// An S3 Inventory report being read, one data file at a time.
pub struct Inventory {
    s3: aws_sdk_s3::Client,
    /// The bucket holding the data files.
    destination: String,
    files: Vec<String>,
    columns: Columns,
    bucket: String,
    prefix: String,
    position: Position,
    lines: Option<InventoryLines>,
}

/// The lines of a data file being read (downloaded compressed, decompressed as read).
type InventoryLines = Lines<BufReader<MultiGzDecoder<Cursor<Vec<u8>>>>>;

impl Inventory {
    async fn next_page(&mut self) -> Result<Option<Page>> {
        let mut page = Page::default();
        while page.objects.len() < INVENTORY_PAGE {
            if self.lines.is_none() {
                let Some(key) = self.files.get(self.position.file) else { break };
                let compressed = read_all(&self.s3, &self.destination, key).await?;
                let mut lines = BufReader::new(MultiGzDecoder::new(Cursor::new(compressed))).lines();
                // Rows read before a stop are not sent again.
                for _ in 0..self.position.row {
                    lines.next();
                }
                self.lines = Some(lines);
            }
            let line = self.lines.as_mut().and_then(Iterator::next).transpose().map_err(|err| {
                let file = self.files.get(self.position.file).cloned().unwrap_or_default();
                Error::BadRequest(format!("inventory file s3://{}/{file} does not read: {err}", self.destination))
            })?;
            let Some(line) = line else {
                self.lines = None;
                self.position = Position { file: self.position.file + 1, ..Position::default() };
                continue;
            };
            self.position.row += 1;
            if let Some(object) = self.object_of(&line)? {
                page.objects.push((object, self.position.clone()));
            }
        }
        if page.objects.is_empty() && self.position.file >= self.files.len() {
            return Ok(None);
        }
        page.end = self.position.clone();
        Ok(Some(page))
    }

    /// The row's object when it is one of the bucket and prefix (not a delete marker).
    fn object_of(&self, line: &str) -> Result<Option<ListedObject>> {
        let fields = csv_fields(line);
        let field = |at: Option<usize>| at.and_then(|at| fields.get(at)).map(String::as_str).filter(|f| !f.is_empty());
        let columns = &self.columns;
        if field(columns.bucket).is_some_and(|bucket| bucket != self.bucket)
            || field(columns.delete_marker).is_some_and(|marker| marker.eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        // Keys in CSV inventories are URL-encoded.
        let encoded = field(Some(columns.key)).unwrap_or_default();
        let key = percent_encoding::percent_decode_str(&encoded.replace('+', " "))
            .decode_utf8()
            .map_err(|err| Error::BadRequest(format!("inventory key {encoded:?} does not decode: {err}")))?
            .into_owned();
        if !key.starts_with(&self.prefix) {
            return Ok(None);
        }
        Ok(Some(ListedObject {
            object: SourceObject {
                bucket: self.bucket.clone(),
                key,
                etag: field(columns.etag).map(|etag| etag.trim_matches('"').to_string()),
                version: field(columns.version).map(str::to_string),
                digest: None,
            },
            size: field(columns.size).and_then(|size| size.parse().ok()).unwrap_or(0),
            last_modified: field(columns.last_modified)
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&Utc)),
        }))
    }
}

/// The fields of one CSV line: quoted (`""` inside for a quote) or bare.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

async fn read_all(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let uri = format!("s3://{bucket}/{key}");
    let output =
        s3.get_object().bucket(bucket).key(key).send().await.map_err(|err| Error::aws("GetObject", &uri, err))?;
    let body = output.body.collect().await.map_err(|err| Error::aws("GetObject", &uri, err))?;
    Ok(body.into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_on_commas_outside_quotes() {
        assert_eq!(csv_fields(r#""raw","a%2Cb.json","3","""x""""#), ["raw", "a%2Cb.json", "3", "\"x\""]);
        assert_eq!(csv_fields("raw,,1"), ["raw", "", "1"]);
    }

    #[test]
    fn inventory_columns_come_from_the_file_schema() {
        let columns =
            Columns::of("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag").unwrap();
        assert_eq!((columns.key, columns.version, columns.delete_marker, columns.etag), (1, Some(2), Some(4), Some(7)));
        assert!(Columns::of("Bucket, Size").is_err());
    }

    #[test]
    fn inventory_rows_decode_keys_and_skip_delete_markers_other_buckets_and_prefixes() {
        let inventory = Inventory {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::Config::builder().behavior_version(aws_sdk_s3::config::BehaviorVersion::latest()).build(),
            ),
            destination: "inv".into(),
            files: Vec::new(),
            columns: Columns::of("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag")
                .unwrap(),
            bucket: "raw".into(),
            prefix: "web/".into(),
            position: Position::default(),
            lines: None,
        };
        let row =
            r#""raw","web/date%3D2026-05-16/a+b.json.zst","v1","true","false","42","2026-05-16T10:00:00.000Z","e1""#;
        let object = inventory.object_of(row).unwrap().unwrap();
        assert_eq!(object.object.key, "web/date=2026-05-16/a b.json.zst");
        assert_eq!(
            (object.object.version.as_deref(), object.object.etag.as_deref(), object.size),
            (Some("v1"), Some("e1"), 42)
        );
        assert_eq!(object.last_modified.unwrap().to_rfc3339(), "2026-05-16T10:00:00+00:00");
        for skipped in [
            r#""raw","web/a.json.zst","v2","false","true","0","2026-05-16T10:00:00.000Z","""#,
            r#""other","web/a.json.zst","v1","true","false","1","2026-05-16T10:00:00.000Z","e""#,
            r#""raw","api/a.json.zst","v1","true","false","1","2026-05-16T10:00:00.000Z","e""#,
        ] {
            assert!(inventory.object_of(skipped).unwrap().is_none(), "{skipped}");
        }
    }
}
