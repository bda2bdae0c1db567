//! Source identity: which version of which object a row, a fragment or a commit came from.
//!
//! One idea seen at four stages. A notification names a [`SourceObject`] (bucket, key, and the
//! version id and ETag it announced); the version actually read is a [`SourceId`]
//! (`s3://bucket/key`, its ETag and a digest of its bytes), the unit of exactly-once; a
//! fragment records each [`FragmentSource`] it holds with its row counts; a commit records
//! each [`CommittedSource`] it added. The last two embed a `SourceId`, so every stage compares
//! sources the same way.
//!
//! A source is a key and its content: two versions of one key with the same bytes are one
//! source, whatever their ETags (a multipart re-upload, a copy onto itself, SSE-KMS all change
//! the ETag, never the bytes). So a `SourceId` read by this version is identified by its
//! digest; one recorded before digests existed, by its ETag, and the load history files every
//! new source under both so that either finds it.

use serde::{Deserialize, Serialize};

/// One source object, as named by an S3 notification or a backfill listing; once read, also
/// the digest of the bytes that were read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key, URL-decoded.
    pub key: String,
    /// ETag from the notification, when present (quotes removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Version id from the notification (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Digest of the bytes read ([`content_digest`]); unknown until the object is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl SourceObject {
    /// `s3://bucket/key`, the lineage value of its rows.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The identity of the version this names.
    pub fn id(&self) -> SourceId {
        SourceId { uri: self.uri(), etag: self.etag.clone(), digest: self.digest.clone() }
    }

    /// How logs and records name this version: the key, and the version id or ETag.
    pub fn describe(&self) -> String {
        match (&self.version, &self.etag) {
            (Some(version), _) => format!("{} (version {version})", self.uri()),
            (None, Some(etag)) => format!("{} (ETag {etag})", self.uri()),
            (None, None) => self.uri(),
        }
    }
}

/// The digest naming an object's content: xxh3-128 of the bytes as stored, which reads at
/// memory speed beside the decompression that follows.
pub fn content_digest(data: &[u8]) -> String {
    format!("xxh3-128:{:032x}", twox_hash::XxHash3_128::oneshot(data))
}

/// [`content_digest`] of bytes that arrive in pieces: the same digest as of the whole.
#[derive(Default)]
pub struct ContentDigest(twox_hash::XxHash3_128);

impl ContentDigest {
    /// Adds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    /// The digest of every byte added.
    pub fn finish(&self) -> String {
        format!("xxh3-128:{:032x}", self.0.finish_128())
    }
}

/// One version of one source object: what the load history remembers.
///
/// Equality, hashing and order follow the identity: the URI and the digest when known, else
/// the URI and the ETag. Two reads of the same bytes under different ETags are one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceId {
    /// `s3://bucket/key`
    pub uri: String,
    /// ETag of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// [`content_digest`] of the bytes read; absent in records written before digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Which part of a [`SourceId`] tells versions apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Tag<'a> {
    Unknown,
    Etag(&'a str),
    Digest(&'a str),
}

impl SourceId {
    /// How logs and reports name this source: its key, and its ETag when known.
    pub fn describe(&self) -> String {
        match &self.etag {
            Some(etag) => format!("{} (ETag {etag})", self.uri),
            None => self.uri.clone(),
        }
    }

    fn tag(&self) -> Tag<'_> {
        match (&self.digest, &self.etag) {
            (Some(digest), _) => Tag::Digest(digest),
            (None, Some(etag)) => Tag::Etag(etag),
            (None, None) => Tag::Unknown,
        }
    }

    /// The fixed-width key the load history index stores for this identity.
    pub fn key(&self) -> SourceKey {
        self.key_in(KeyLayout::CURRENT)
    }

    /// Every key this source is filed under in the load history: its identity, and for a
    /// source with a digest also its ETag, so that a record made before digests (ETag only)
    /// and one made after (both) find each other.
    pub fn keys(&self) -> impl Iterator<Item = SourceKey> + '_ {
        self.keys_in(KeyLayout::CURRENT)
    }

    /// [`SourceId::key`] as an index written in `layout` stores it.
    pub fn key_in(&self, layout: KeyLayout) -> SourceKey {
        key_of(&self.uri, self.tag(), layout)
    }

    /// [`SourceId::keys`] as an index written in `layout` stores them.
    pub fn keys_in(&self, layout: KeyLayout) -> impl Iterator<Item = SourceKey> + '_ {
        let by_etag = match (self.tag(), &self.etag) {
            (Tag::Digest(_), Some(etag)) => Some(key_of(&self.uri, Tag::Etag(etag), layout)),
            _ => None,
        };
        std::iter::once(self.key_in(layout)).chain(by_etag)
    }
}

/// How an identity becomes a [`SourceKey`]. Each run of the load history index says which
/// layout its keys follow, so an index written before a change of layout still answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyLayout {
    /// 128 bits of the identity's hash: keys spread evenly, so every source looked up falls in
    /// a block of its own.
    Scattered,
    /// 32 bits of the hash of the object's folder (its key up to the last `/`), then 96 bits of
    /// the identity's hash: the sources of one folder (a day, an hour) sit together in a run,
    /// so a compaction's sources, which mostly share a few folders, fall in a few blocks, and
    /// a run without a folder is passed over without a read.
    ByFolder,
}

impl KeyLayout {
    /// The layout new runs are written in.
    pub const CURRENT: KeyLayout = KeyLayout::ByFolder;
}

impl SourceKey {
    /// The folder part of a key written [`KeyLayout::ByFolder`].
    pub fn folder(&self) -> u32 {
        u32::from_be_bytes(self.0[..4].try_into().expect("4 bytes"))
    }
}

fn key_of(uri: &str, tag: Tag<'_>, layout: KeyLayout) -> SourceKey {
    let mut identity = Vec::with_capacity(uri.len() + 48);
    identity.extend_from_slice(uri.as_bytes());
    // A separator no URI holds, then which kind of tag follows: no two identities share bytes.
    identity.push(0);
    match tag {
        Tag::Unknown => identity.push(0),
        Tag::Etag(etag) => {
            identity.push(1);
            identity.extend_from_slice(etag.as_bytes());
        }
        Tag::Digest(digest) => {
            identity.push(2);
            identity.extend_from_slice(digest.as_bytes());
        }
    }
    let mut key = twox_hash::XxHash3_128::oneshot(&identity).to_be_bytes();
    if layout == KeyLayout::ByFolder {
        let folder = uri.rsplit_once('/').map_or(uri, |(folder, _)| folder);
        let folder = twox_hash::XxHash3_64::oneshot(folder.as_bytes()).to_be_bytes();
        key[..4].copy_from_slice(&folder[..4]);
    }
    SourceKey(key)
}

impl PartialEq for SourceId {
    fn eq(&self, other: &Self) -> bool {
        self.uri == other.uri && self.tag() == other.tag()
    }
}

impl Eq for SourceId {}

impl std::hash::Hash for SourceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uri.hash(state);
        self.tag().hash(state);
    }
}

impl PartialOrd for SourceId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SourceId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.uri.as_str(), self.tag()).cmp(&(other.uri.as_str(), other.tag()))
    }
}

/// A source identity as 128 hashed bits (xxh3-128; in [`KeyLayout::ByFolder`], its first 32
/// bits are the folder's): big-endian, so byte order is numeric order. Two of ten billion
/// identities share a key with odds below 10⁻⁹ even when all share one folder.
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
    /// when one batch's fragments hold this many. Absent in a fragment written before batches
    /// were sealed means `rows`; in a sealed batch, some fragment of the copy states it once
    /// the object has been read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<u64>,
    /// The object failed after some of its rows were staged (read piece by piece, it turned
    /// out corrupt or over a limit): this batch's copy of it must never be committed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

impl FragmentSource {
    /// `rows` of `object`, out of `total_rows` for the whole object when it spans fragments.
    pub fn new(object: &SourceObject, rows: u64, total_rows: Option<u64>) -> Self {
        Self { id: object.id(), rows, total_rows, failed: false }
    }

    /// Adds a later entry for the same source (more rows, its total, a failure) to this one.
    pub fn absorb(&mut self, later: FragmentSource) {
        self.rows += later.rows;
        self.total_rows = later.total_rows.or(self.total_rows);
        self.failed |= later.failed;
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
    fn keys_of_one_folder_share_their_first_bits_and_older_keys_keep_their_value() {
        let source = |uri: &str, digest: &str| SourceId { uri: uri.into(), etag: None, digest: Some(digest.into()) };
        let a = source("s3://raw/svc/date=2026-05-16/a.json.zst", "xxh3-128:01");
        let b = source("s3://raw/svc/date=2026-05-16/b.json.zst", "xxh3-128:01");
        let c = source("s3://raw/svc/date=2026-05-17/a.json.zst", "xxh3-128:01");
        assert_eq!(a.key().folder(), b.key().folder());
        assert_ne!(a.key().folder(), c.key().folder());
        assert_ne!(a.key(), b.key());
        // The last 96 bits are the identity's, in both layouts.
        assert_eq!(a.key().0[4..], a.key_in(KeyLayout::Scattered).0[4..]);
        // Runs written before folders hold keys of this value: it must never change.
        assert_eq!(
            format!("{:032x}", u128::from_be_bytes(a.key_in(KeyLayout::Scattered).0)),
            "af4e1c1712b87bd4eafb521ade8ba282"
        );
    }

    #[test]
    fn a_digest_taken_in_pieces_is_the_digest_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for cut in [0, 1, 63, 64, 240, 1024, 99_999, data.len()] {
            let mut digest = ContentDigest::default();
            for piece in [&data[..cut], &data[cut..]] {
                for chunk in piece.chunks(777) {
                    digest.update(chunk);
                }
            }
            assert_eq!(digest.finish(), content_digest(&data), "cut at {cut}");
        }
    }

    #[test]
    fn keys_tell_identities_apart() {
        let id = |uri: &str, etag: Option<&str>| SourceId { uri: uri.into(), etag: etag.map(Into::into), digest: None };
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
    fn a_source_is_its_key_and_content_whatever_its_etag() {
        let with = |etag: &str, digest: Option<&str>| SourceId {
            uri: "s3://raw/a".into(),
            etag: Some(etag.into()),
            digest: digest.map(Into::into),
        };
        let (first, reupload) = (with("e1", Some("xxh3-128:aa")), with("e2-2", Some("xxh3-128:aa")));
        assert_eq!(first, reupload, "same bytes under a new ETag: one source");
        assert_eq!(first.key(), reupload.key());
        assert_ne!(first, with("e1", Some("xxh3-128:bb")), "new bytes: a new source");
        // Filed under its ETag too, so a record made before digests finds it, and only that way.
        let legacy = with("e1", None);
        assert_ne!(legacy, first);
        assert!(first.keys().any(|key| key == legacy.key()));
        assert!(!reupload.keys().any(|key| key == legacy.key()));
        assert_eq!(legacy.keys().collect::<Vec<_>>(), vec![legacy.key()]);
        // Keys of ETag identities are unchanged in the layout existing indexes were written
        // in, so they stay valid.
        let scattered = legacy.key_in(KeyLayout::Scattered).0;
        assert_eq!(scattered, twox_hash::XxHash3_128::oneshot(b"s3://raw/a\0\x01e1").to_be_bytes());
    }

    #[test]
    fn fragment_and_commit_records_keep_their_json_shape() {
        let object = SourceObject {
            bucket: "raw".into(),
            key: "a/b.json".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
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
