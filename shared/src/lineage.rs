//! Source identity: which version of which object a row, a fragment or a commit came from.
//!
//! One idea seen at four stages. A notification names a [`SourceObject`] (bucket, key and the
//! ETag it announced); the version actually read is a [`SourceId`] (`s3://bucket/key` and its
//! ETag), the unit of exactly-once; a fragment records each [`FragmentSource`] it holds with
//! its row counts; a commit records each [`CommittedSource`] it added. The last two embed a
//! `SourceId`, so every stage compares sources the same way.

use serde::{Deserialize, Serialize};

/// One source object, as named by an S3 notification or a backfill listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key, URL-decoded.
    pub key: String,
    /// ETag from the notification, when present (quotes removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl SourceObject {
    /// `s3://bucket/key`, the lineage value of its rows.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The identity of the version this names.
    pub fn id(&self) -> SourceId {
        SourceId { uri: self.uri(), etag: self.etag.clone() }
    }
}

/// One version of one source object: what the load history remembers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceId {
    /// `s3://bucket/key`
    pub uri: String,
    /// ETag of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// One source whose rows a fragment holds, as listed in the fragment's footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentSource {
    /// Which object version.
    #[serde(flatten)]
    pub id: SourceId,
    /// Rows the fragment holds from it.
    pub rows: u64,
    /// Rows the whole object decoded to, across partitions: a copy of a source is complete
    /// when one batch's fragments hold this many. Absent means `rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<u64>,
}

impl FragmentSource {
    /// `rows` of `object`, out of `total_rows` for the whole object when it spans fragments.
    pub fn new(object: &SourceObject, rows: u64, total_rows: Option<u64>) -> Self {
        Self { id: object.id(), rows, total_rows }
    }
}

/// A source as recorded in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedSource {
    /// Which object version.
    #[serde(flatten)]
    pub id: SourceId,
    /// Rows it contributed.
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_and_commit_records_keep_their_json_shape() {
        let object = SourceObject { bucket: "raw".into(), key: "a/b.json".into(), etag: Some("e1".into()) };
        let listed = serde_json::to_value(FragmentSource::new(&object, 3, Some(5))).unwrap();
        assert_eq!(listed, serde_json::json!({"uri": "s3://raw/a/b.json", "etag": "e1", "rows": 3, "total_rows": 5}));
        let unknown = SourceObject { etag: None, ..object };
        let listed = serde_json::to_value(FragmentSource::new(&unknown, 3, None)).unwrap();
        assert_eq!(listed, serde_json::json!({"uri": "s3://raw/a/b.json", "rows": 3}));
        let back: FragmentSource = serde_json::from_value(listed).unwrap();
        assert_eq!(back.id, unknown.id());
        let committed = CommittedSource { id: unknown.id(), rows: 3 };
        assert_eq!(
            serde_json::to_value(&committed).unwrap(),
            serde_json::json!({"uri": "s3://raw/a/b.json", "rows": 3})
        );
    }
}
