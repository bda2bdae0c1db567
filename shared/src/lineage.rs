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

impl SourceId {
    /// The fixed-width key the load history index stores for this identity.
    pub fn key(&self) -> SourceKey {
        let mut identity = Vec::with_capacity(self.uri.len() + 2 + self.etag.as_ref().map_or(0, String::len));
        identity.extend_from_slice(self.uri.as_bytes());
        // A separator no URI holds, then whether an ETag follows: no two identities share bytes.
        identity.push(0);
        match &self.etag {
            Some(etag) => {
                identity.push(1);
                identity.extend_from_slice(etag.as_bytes());
            }
            None => identity.push(0),
        }
        SourceKey(twox_hash::XxHash3_128::oneshot(&identity).to_be_bytes())
    }
}

/// A source identity as 128 hashed bits (xxh3-128): big-endian, so byte order is numeric
/// order. Two of ten billion identities share a key with odds below 10⁻¹⁸.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(pub [u8; 16]);

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
    fn keys_tell_identities_apart() {
        let id = |uri: &str, etag: Option<&str>| SourceId { uri: uri.into(), etag: etag.map(Into::into) };
        let keys = [
            id("s3://raw/a", Some("e1")).key(),
            id("s3://raw/a", Some("e2")).key(),
            id("s3://raw/a", Some("")).key(),
            id("s3://raw/a", None).key(),
            id("s3://raw/ae1", None).key(),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(id("s3://raw/a", Some("e1")).key(), keys[0], "a key is a function of the identity");
    }

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
