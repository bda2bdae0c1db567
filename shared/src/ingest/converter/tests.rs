use arrow_array::Array;
use arrow_array::cast::AsArray;
use object_store::memory::InMemory;

use std::collections::HashSet;

use super::*;
use crate::framing::Framing;
use crate::lineage::content_digest;
use crate::schema::Layout;
use crate::stage::fragment::Fragment;
use crate::testing::sources::MemorySource;
use crate::testing::{events, schemas};

fn notification(bucket: &str, key: &str, event: &str) -> String {
    events::S3Notification::created(bucket, key).event(event).body()
}

fn created(key: &str) -> String {
    events::created("raw", key)
}

fn sqs(bodies: Vec<String>) -> SqsEvent {
    events::sqs_event(bodies)
}

struct Fixture {
    source: Arc<MemorySource>,
    fragments: FragmentStore,
    quarantine: Quarantine,
    converter: Converter,
}

fn fixture(layout: Layout, options: ConverterOptions) -> Fixture {
    let schema = schemas::ID_AT.parse_with(layout);
    let source = Arc::new(MemorySource::default());
    let lake = Arc::new(InMemory::new());
    let fragments = FragmentStore::new(lake.clone());
    let quarantine = Quarantine::new(lake);
    let converter = Converter::new(source.clone(), fragments.clone(), quarantine.clone(), schema, options);
    Fixture { source, fragments, quarantine, converter }
}

fn small() -> ConverterOptions {
    ConverterOptions { concurrency: 4, ..ConverterOptions::default() }
}

fn lines(ids: std::ops::Range<i64>) -> Vec<u8> {
    ids.map(|i| format!("{{\"id\":{i},\"at\":\"2026-05-16T10:00:00Z\"}}\n")).collect::<String>().into_bytes()
}

async fn staged(fixture: &Fixture) -> Vec<Fragment> {
    let mut fragments = Vec::new();
    for meta in fixture.fragments.list().await.unwrap() {
        fragments.push(fixture.fragments.read(&meta.location).await.unwrap());
    }
    fragments
}

fn staged_rows(fragments: &[Fragment]) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> =
        fragments.iter().flat_map(|f| f.sources.iter().map(|s| (s.id.uri.clone(), s.rows))).collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn an_object_whose_every_line_is_refused_is_quarantined_and_staged_as_a_source_of_no_rows() {
    let f = fixture(Layout::default(), ConverterOptions { max_line_bytes: 200, ..small() });
    let long = |i: u64| format!("{{\"id\":{i},\"at\":\"2026-05-16T10:00:00Z\",\"pad\":\"{}\"}}\n", "x".repeat(300));
    f.source.put("raw", "a.json", format!("{}not json\n{}", long(1), long(2)).into_bytes());
    let report = f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    assert!(report.failed_messages.is_empty(), "answered: every line has its record");
    assert_eq!(f.quarantine.lines().await.unwrap().len(), 3);
    // The compactor commits it as a source of none, so a later conversion of the same
    // version (a raised line limit, a backfill) is a duplicate, never rows beside the record.
    let staged = staged(&f).await;
    assert_eq!(staged_rows(&staged), vec![("s3://raw/a.json".to_string(), 0)]);
    assert_eq!(staged[0].sources[0].total_rows, Some(0));
}

#[tokio::test]
async fn every_bad_input_fails_or_quarantines_alone_and_good_rows_stage() {
    let f = fixture(Layout::default(), ConverterOptions { max_line_bytes: 200, ..small() });
    f.source.put("raw", "good one.json.zst", zstd::bulk::compress(&lines(0..2), 3).unwrap());
    f.source.put("raw", "plain.ndjson", lines(2..3));
    f.source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
    let truncated = zstd::bulk::compress(&lines(0..500), 3).unwrap();
    f.source.put("raw", "truncated.json.zst", truncated[..truncated.len() / 2].to_vec());
    f.source.put("raw", "binary.json", &b"\x00\x01\x02 PNG not json\n\xff\xfe\n"[..]);
    f.source.put("raw", "empty.json", &b""[..]);
    let mut mixed = lines(10..11);
    mixed.extend_from_slice(b"{\"id\":\"eleven\"}\n{\"id\":12,\n");
    mixed.extend_from_slice(format!("{{\"id\":13,\"pad\":\"{}\"}}\n", "x".repeat(300)).as_bytes());
    mixed.extend(lines(14..15));
    f.source.put("raw", "mixed.json", mixed);
    let event = sqs(vec![
        created("good one.json.zst"),
        created("corrupt.json.zst"),
        created("missing.json"),
        created("plain.ndjson"),
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
        created("truncated.json.zst"),
        created("binary.json"),
        created("empty.json"),
        created("mixed.json"),
        notification("raw", "gone.json", "ObjectRemoved:Delete"),
        "not even json".to_string(),
    ]);
    let report = f.converter.convert(&event).await.unwrap();

    // Object-level failures fail only their own messages: SQS retries them, then dead-letters.
    assert_eq!(report.failed_messages, vec!["m1", "m10", "m2", "m5", "m6"]);
    assert_eq!(
        staged_rows(&staged(&f).await),
        vec![
            ("s3://raw/good one.json.zst".to_string(), 2),
            ("s3://raw/mixed.json".to_string(), 2),
            ("s3://raw/plain.ndjson".to_string(), 1),
        ]
    );
    // Line-level failures are quarantined with source, line number, reason and raw text.
    let refused = f.quarantine.lines().await.unwrap();
    let summary: Vec<(&str, u64)> = refused.iter().map(|q| (q.source.as_str(), q.line)).collect();
    assert_eq!(
        summary,
        vec![
            ("s3://raw/empty.json", 0),
            ("s3://raw/mixed.json", 2),
            ("s3://raw/mixed.json", 3),
            ("s3://raw/mixed.json", 4)
        ]
    );
    assert!(refused[0].error.contains("object is empty"), "{}", refused[0].error);
    assert_eq!(refused[1].raw, r#"{"id":"eleven"}"#);
    assert!(refused[3].error.contains("over the limit of 200 (INLET_MAX_LINE_BYTES)"), "{}", refused[3].error);
    assert_eq!((report.rows, report.quarantined), (5, 4));
}

#[tokio::test]
async fn an_object_named_twice_in_a_batch_is_staged_once() {
    let f = fixture(Layout::default(), small());
    f.source.put("raw", "a.json", lines(0..3));
    let report = f.converter.convert(&sqs(vec![created("a.json"), created("a.json")])).await.unwrap();
    assert!(report.failed_messages.is_empty());
    assert_eq!(staged_rows(&staged(&f).await), vec![("s3://raw/a.json".to_string(), 3)]);
}

/// A notification of one version of `key`, as S3 sends it for a (versioned) bucket.
fn created_version(key: &str, etag: &str, version: Option<&str>) -> String {
    let notification = events::S3Notification::created("raw", key).etag(etag);
    match version {
        Some(version) => notification.version(version).body(),
        None => notification.body(),
    }
}

#[tokio::test]
async fn a_version_overwritten_before_it_is_read_is_recorded_as_superseded_never_read_as_the_new_one() {
    let f = fixture(Layout::default(), small());
    f.source.put_version("raw", "a.json", "e1", None, lines(0..3));
    f.source.put_version("raw", "a.json", "e2", None, lines(100..105));
    let report = f
        .converter
        .convert(&sqs(vec![created_version("a.json", "e1", None), created_version("a.json", "e2", None)]))
        .await
        .unwrap();
    assert!(report.failed_messages.is_empty(), "a superseded version is answered, not retried");
    assert_eq!(report.superseded, vec!["s3://raw/a.json (ETag e1)".to_string()]);
    assert!(report.metrics().iter().any(|m| m.name == "SupersededVersions" && m.value == 1.0));
    let fragments = staged(&f).await;
    assert_eq!(staged_rows(&fragments), vec![("s3://raw/a.json".to_string(), 5)], "only e2's rows");
    assert_eq!(fragments[0].sources[0].id.etag.as_deref(), Some("e2"));
    let recorded = crate::ingest::SupersededLog::new(f.fragments.store()).versions().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].uri.as_str(), recorded[0].etag.as_deref()), ("s3://raw/a.json", Some("e1")));
    assert!(recorded[0].reason.contains("overwritten"), "{}", recorded[0].reason);
}

#[tokio::test]
async fn on_a_versioned_bucket_each_notified_version_is_read_by_its_id() {
    let f = fixture(Layout::default(), small());
    f.source.put_version("raw", "a.json", "e1", Some("v1"), lines(0..3));
    f.source.put_version("raw", "a.json", "e2", Some("v2"), lines(100..105));
    let report = f
        .converter
        .convert(&sqs(vec![
            created_version("a.json", "e1", Some("v1")),
            created_version("a.json", "e2", Some("v2")),
            created_version("a.json", "e3", Some("v3-deleted")),
        ]))
        .await
        .unwrap();
    assert!(report.failed_messages.is_empty());
    assert_eq!(report.superseded, vec!["s3://raw/a.json (version v3-deleted)".to_string()]);
    let mut read: Vec<(Option<String>, u64)> =
        staged(&f).await.iter().flat_map(|f| f.sources.iter().map(|s| (s.id.etag.clone(), s.rows))).collect();
    read.sort();
    assert_eq!(read, vec![(Some("e1".into()), 3), (Some("e2".into()), 5)], "two versions, two sources");
}

#[tokio::test]
async fn the_same_bytes_under_two_etags_are_one_source() {
    let f = fixture(Layout::default(), small());
    // A multipart re-upload of the same content: a new version and ETag, the same bytes.
    f.source.put_version("raw", "a.json", "e1", Some("v1"), lines(0..3));
    f.source.put_version("raw", "a.json", "e2-2", Some("v2"), lines(0..3));
    let report = f
        .converter
        .convert(&sqs(vec![created_version("a.json", "e1", Some("v1")), created_version("a.json", "e2-2", Some("v2"))]))
        .await
        .unwrap();
    assert!(report.failed_messages.is_empty());
    let fragments = staged(&f).await;
    assert_eq!(staged_rows(&fragments), vec![("s3://raw/a.json".to_string(), 3)], "staged once");
    let id = &fragments[0].sources[0].id;
    assert_eq!(id.digest.as_deref(), Some(crate::lineage::content_digest(&lines(0..3)).as_str()));
}

#[tokio::test]
async fn an_object_over_the_limits_fails_alone_and_the_rest_of_its_batch_ingests() {
    let limits = ObjectLimits { max_bytes: 64 << 10, max_lines: 1000 };
    let f = fixture(Layout::default(), ConverterOptions { limits, ..small() });
    // A few hundred bytes that decompress to 8 MiB, and a file of more lines than allowed.
    let bomb: Vec<u8> = lines(0..1).into_iter().cycle().take(8 << 20).collect();
    f.source.put("raw", "bomb.json.zst", zstd::bulk::compress(&bomb, 19).unwrap());
    f.source.put("raw", "long.json", "{}\n".repeat(1001));
    f.source.put("raw", "good.json.zst", zstd::bulk::compress(&lines(0..5), 3).unwrap());
    let report = f
        .converter
        .convert(&sqs(vec![created("bomb.json.zst"), created("good.json.zst"), created("long.json")]))
        .await
        .unwrap();
    assert_eq!(report.failed_messages, vec!["m0", "m2"]);
    assert_eq!(staged_rows(&staged(&f).await), vec![("s3://raw/good.json.zst".to_string(), 5)]);
}

/// A source whose `slow*` objects take longer to read than any test waits.
struct SlowSource(Arc<MemorySource>);

#[async_trait::async_trait]
impl ObjectSource for SlowSource {
    async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
        if object.key.starts_with("slow") {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        self.0.fetch(object).await
    }
}

/// A fixture whose store holds `a.json`, `b.json` and `slow.json` (which never arrives),
/// and a converter reading from it.
fn with_a_slow_object() -> (Fixture, Converter) {
    let f = fixture(Layout::default(), small());
    let schema = schemas::ID_AT.parse();
    let converter = Converter::new(
        Arc::new(SlowSource(f.source.clone())),
        f.fragments.clone(),
        f.quarantine.clone(),
        schema,
        small(),
    );
    for key in ["a.json", "b.json", "slow.json"] {
        f.source.put("raw", key, lines(0..4));
    }
    (f, converter)
}

#[tokio::test]
async fn near_the_deadline_finished_objects_are_sealed_and_the_rest_fail_for_redelivery() {
    let (f, converter) = with_a_slow_object();
    let event = sqs(vec![created("a.json"), created("slow.json"), created("b.json")]);
    let stop = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    // The slow object never arrives: only stopping at `stop` lets the batch answer.
    let report = tokio::time::timeout(std::time::Duration::from_secs(600), converter.convert_until(&event, Some(stop)))
        .await
        .expect("the batch answers at its stop, without the slow object")
        .unwrap();
    assert_eq!(report.failed_messages, vec!["m1"], "only the unfinished object is redelivered");
    assert_eq!(
        staged_rows(&staged(&f).await),
        vec![("s3://raw/a.json".to_string(), 4), ("s3://raw/b.json".to_string(), 4)]
    );
    assert_eq!(f.fragments.batches().await.unwrap().len(), 1, "what was staged is sealed");
}

#[tokio::test]
async fn a_message_naming_several_objects_is_redelivered_while_one_of_them_is_unread() {
    let (_store, converter) = with_a_slow_object();
    // One message with two records (as an SNS fan-out or a hand-made body may carry).
    let mut both: serde_json::Value = serde_json::from_str(&created("a.json")).unwrap();
    let slow: serde_json::Value = serde_json::from_str(&created("slow.json")).unwrap();
    both["Records"].as_array_mut().unwrap().push(slow["Records"][0].clone());
    let event = sqs(vec![both.to_string(), created("b.json")]);
    let stop = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    let report = tokio::time::timeout(std::time::Duration::from_secs(600), converter.convert_until(&event, Some(stop)))
        .await
        .expect("the batch answers at its stop")
        .unwrap();
    assert_eq!(report.failed_messages, vec!["m0"], "its slow object was never read");
}

/// A store that streams `big*` objects slowly once their digest is taken: 4 KiB chunks,
/// `pace` apart (their first opening starts late, so the other objects are read first).
struct PacedSource {
    objects: Arc<MemorySource>,
    opened: std::sync::Mutex<HashSet<String>>,
    pace: std::time::Duration,
}

#[async_trait::async_trait]
impl ObjectSource for PacedSource {
    async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
        self.objects.fetch(object).await
    }

    async fn open(&self, object: &SourceObject) -> Result<crate::ingest::Opened> {
        let fetched = self.objects.fetch(object).await?;
        let length = fetched.data.len() as u64;
        let opened = |body| crate::ingest::Opened { body, length, etag: fetched.etag.clone() };
        if !object.key.starts_with("big") {
            return Ok(opened(fetched.data.clone().into()));
        }
        if self.opened.lock().unwrap().insert(object.key.clone()) {
            tokio::time::sleep(self.pace * 4).await;
            return Ok(opened(fetched.data.clone().into()));
        }
        let (data, pace) = (fetched.data.clone(), self.pace);
        let chunks = futures::stream::iter((0..data.len()).step_by(4096)).then(move |at| {
            let chunk = data.slice(at..(at + 4096).min(data.len()));
            async move {
                tokio::time::sleep(pace).await;
                Ok::<_, std::io::Error>(http_body::Frame::data(chunk))
            }
        });
        let body = aws_sdk_s3::primitives::SdkBody::from_body_1_x(http_body_util::StreamBody::new(chunks));
        Ok(opened(aws_sdk_s3::primitives::ByteStream::new(body)))
    }
}

#[tokio::test]
async fn a_large_object_cut_off_by_the_deadline_fails_alone_and_what_it_staged_is_marked() {
    let options = ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() };
    let mut f = fixture(Layout::default(), options);
    let pace = std::time::Duration::from_millis(10);
    let source = Arc::new(PacedSource { objects: f.source.clone(), opened: Default::default(), pace });
    let schema = schemas::ID_AT.parse();
    f.converter = Converter::new(source, f.fragments.clone(), f.quarantine.clone(), schema, options);
    // Lines that barely compress: the stored object is many zstd blocks (each decoded
    // only once whole) and many chunks, read over seconds.
    let text: String = (0..20_000)
        .map(|i: u64| {
            format!("{{\"id\":{i},\"pad\":\"{:032x}\"}}\n", twox_hash::XxHash3_128::oneshot(&i.to_le_bytes()))
        })
        .collect();
    let data = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
    assert!(data.len() / 4096 > 100, "{} bytes", data.len());
    f.source.put("raw", "big.json.zst", data);
    f.source.put("raw", "small.json", lines(0..3));
    // About half way through the object (its first zstd block arrives after ~110 ms).
    let stop = tokio::time::Instant::now() + pace * 50;
    let event = sqs(vec![created("big.json.zst"), created("small.json")]);
    let report = f.converter.convert_until(&event, Some(stop));
    let report = tokio::time::timeout(std::time::Duration::from_secs(600), report)
        .await
        .expect("the batch answers at its stop")
        .unwrap();
    assert_eq!(report.failed_messages, vec!["m0"], "only the unfinished object is redelivered");
    assert_eq!((report.objects, report.rows), (1, 3));
    let totals = staged_totals(&staged(&f).await);
    let big = totals["s3://raw/big.json.zst"];
    assert!(big.0 > 0 && big.1.is_none() && big.2, "cut off part way, what it staged is marked failed: {big:?}");
    assert_eq!(totals["s3://raw/small.json"], (3, Some(3), false));
    assert_eq!(f.fragments.batches().await.unwrap().len(), 1, "what was staged is sealed");
}

#[tokio::test]
async fn the_stop_leaves_the_margin_or_a_quarter_of_the_time() {
    let f =
        fixture(Layout::default(), ConverterOptions { deadline_margin: std::time::Duration::from_secs(20), ..small() });
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let left = |deadline_ms: u64| f.converter.stop_before(deadline_ms) - tokio::time::Instant::now();
    let long = left(now_ms + 300_000);
    assert!(long > std::time::Duration::from_secs(279) && long <= std::time::Duration::from_secs(280), "{long:?}");
    let short = left(now_ms + 8_000);
    assert!(short > std::time::Duration::from_millis(5_900) && short <= std::time::Duration::from_secs(6), "{short:?}");
}

#[tokio::test]
async fn unknown_fields_are_ignored_by_default_and_rescued_on_request() {
    let data = b"{\"id\":1,\"extra\":{\"k\":[1,2]},\"more\":\"x\"}\n{\"id\":2}\n".to_vec();
    let ignoring = fixture(Layout::default(), small());
    ignoring.source.put("raw", "a.json", data.clone());
    ignoring.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    let batches = &staged(&ignoring).await[0].batches;
    assert!(batches[0].column_by_name("_rescued").is_none());
    assert_eq!(batches[0].num_rows(), 2);

    let rescuing = fixture(Layout { rescue_unknown_fields: true, ..Layout::default() }, small());
    rescuing.source.put("raw", "a.json", data);
    rescuing.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    let batches = &staged(&rescuing).await[0].batches;
    let rescued = batches[0].column_by_name("_rescued").unwrap().as_string::<i32>();
    assert_eq!(rescued.value(0), r#"{"extra":{"k":[1,2]},"more":"x"}"#);
    assert!(rescued.is_null(1));
}

#[tokio::test]
async fn rows_carry_their_ingestion_time_when_configured() {
    let f = fixture(Layout { ingested_at: true, ..Layout::default() }, small());
    f.source.put("raw", "a.json", lines(0..2));
    let before = chrono::Utc::now().timestamp_micros();
    f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    let after = chrono::Utc::now().timestamp_micros();
    let batch = &staged(&f).await[0].batches[0];
    let at = batch.column_by_name("_ingested_at").unwrap();
    let at = at.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    assert!(at.iter().all(|t| t.is_some_and(|t| (before..=after).contains(&t))));
}

#[tokio::test]
async fn rows_carry_the_key_and_etag_of_their_object() {
    let f = fixture(Layout::default(), small());
    f.source.put("raw", "dir/a b.json", lines(0..2));
    f.converter.convert(&sqs(vec![created("dir/a b.json")])).await.unwrap();
    let batch = &staged(&f).await[0].batches[0];
    let files = batch.column_by_name("_source_file").unwrap().as_string::<i32>();
    let etags = batch.column_by_name("_source_etag").unwrap().as_string::<i32>();
    assert_eq!((files.value(1), etags.value(1)), ("s3://raw/dir/a b.json", "etag-dir/a b.json"));
}

#[tokio::test]
async fn fragments_roll_at_the_configured_size_between_objects() {
    let f = fixture(Layout::default(), ConverterOptions { fragment_bytes: 1, concurrency: 2, ..small() });
    for i in 0..5 {
        f.source.put("raw", &format!("o{i}.json"), lines(i * 10..i * 10 + 10));
    }
    let report = f.converter.convert(&sqs((0..5).map(|i| created(&format!("o{i}.json"))).collect())).await.unwrap();
    let fragments = staged(&f).await;
    assert_eq!(fragments.len(), 5, "a fragment per object when every object fills one");
    assert!(fragments.iter().all(|fragment| fragment.sources.len() == 1));
    assert!(fragments.iter().all(|fragment| fragment.batch.as_deref() == Some(report.batch.as_str())));
    assert_eq!(report.fragments.len(), 5);
    assert_eq!(report.rows, 50);
    // Sealed once all five are staged, so a compactor may take them.
    let batches = f.fragments.batches().await.unwrap();
    assert_eq!(batches.get(&report.batch), Some(&crate::stage::fragment::BatchState::Sealed));
    assert_eq!(batches.len(), 1);
}

#[tokio::test]
async fn a_fragment_that_cannot_be_staged_fails_the_batch() {
    // A file where the staging directory should be: every fragment upload fails.
    let lake_dir = tempfile::tempdir().unwrap();
    std::fs::write(lake_dir.path().join("_inlet"), b"not a directory").unwrap();
    let lake = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(lake_dir.path()).unwrap());
    let schema = schemas::ID_AT.parse();
    let source = Arc::new(MemorySource::default());
    for i in 0..3 {
        source.put("raw", &format!("o{i}.json"), lines(i * 10..i * 10 + 10));
    }
    let options = ConverterOptions { fragment_bytes: 1, concurrency: 2, ..small() };
    let converter = Converter::new(source, FragmentStore::new(lake.clone()), Quarantine::new(lake), schema, options);
    let event = sqs((0..3).map(|i| created(&format!("o{i}.json"))).collect());
    let err = converter.convert(&event).await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err}");
}

#[tokio::test]
async fn key_partitions_stage_fragments_per_partition_and_keys_without_one_fail() {
    let layout = Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() };
    let f = fixture(layout, small());
    f.source.put("raw", "web/date=2026-05-16/a.json", lines(0..2));
    f.source.put("raw", "web/date=2026-05-17/b.json", lines(2..5));
    f.source.put("raw", "web/undated/c.json", lines(5..6));
    let event = sqs(vec![
        created("web/date=2026-05-16/a.json"),
        created("web/date=2026-05-17/b.json"),
        created("web/undated/c.json"),
    ]);
    let report = f.converter.convert(&event).await.unwrap();
    assert_eq!(report.failed_messages, vec!["m2"]);
    let mut paths = report.fragments.clone();
    paths.sort();
    assert!(paths[0].starts_with("_inlet/fragments/date=2026-05-16/"), "{paths:?}");
    assert!(paths[1].starts_with("_inlet/fragments/date=2026-05-17/"), "{paths:?}");
    for fragment in staged(&f).await {
        let dates = fragment.batches[0].column_by_name("date").unwrap().as_string::<i32>();
        assert!(fragment.path.as_ref().contains(&format!("date={}", dates.value(0))));
    }
}

#[tokio::test]
async fn field_partitions_split_one_object_across_dates() {
    let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
    let f = fixture(layout, small());
    f.source.put(
        "raw",
        "a.json",
        &b"{\"id\":1,\"at\":\"2026-05-15T23:59:59Z\"}\n{\"id\":2,\"at\":\"2026-05-16T00:00:01Z\"}\n"[..],
    );
    let report = f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    assert_eq!(report.fragments.len(), 2);
    let fragments = staged(&f).await;
    let per_fragment: Vec<(String, u64)> = fragments.iter().map(|f| (f.path.to_string(), f.sources[0].rows)).collect();
    assert!(per_fragment[0].0.contains("day=2026-05-15") && per_fragment[0].1 == 1, "{per_fragment:?}");
    assert!(per_fragment[1].0.contains("day=2026-05-16") && per_fragment[1].1 == 1, "{per_fragment:?}");
}

/// An object of `count` lines over two dates, every 97th line refused by the schema.
fn dated_lines(count: i64) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..count {
        let day = if i % 3 == 0 { 15 } else { 16 };
        if i % 97 == 5 {
            text.push_str(&format!("{{\"id\":\"not a number {i}\",\"at\":\"2026-05-{day}T10:00:00Z\"}}\n"));
        } else {
            text.push_str(&format!("{{\"id\":{i},\"at\":\"2026-05-{day}T10:00:00Z\"}}\n"));
        }
    }
    text.into_bytes()
}

/// Per staged source: rows, the total some fragment states, and whether any entry failed.
fn staged_totals(fragments: &[Fragment]) -> BTreeMap<String, (u64, Option<u64>, bool)> {
    let mut totals: BTreeMap<String, (u64, Option<u64>, bool)> = BTreeMap::new();
    for source in fragments.iter().flat_map(|f| &f.sources) {
        let entry = totals.entry(source.id.uri.clone()).or_default();
        entry.0 += source.rows;
        entry.1 = source.total_rows.or(entry.1);
        entry.2 |= source.failed;
    }
    totals
}

/// What a conversion staged, to compare two ways of reading the same objects.
#[derive(Debug)]
struct StagedOutcome {
    landed: Landed,
    totals: BTreeMap<String, (u64, Option<u64>, bool)>,
    fragments: usize,
}

/// Rows and refusals, however they were read.
#[derive(Debug, PartialEq)]
struct Landed {
    /// Every staged row's `id`, sorted.
    ids: Vec<i64>,
    /// Quarantined lines: number and reason.
    refused: Vec<(u64, String)>,
    /// Rows and quarantined lines, as reported.
    counts: (u64, u64),
}

async fn staged_outcome(f: &Fixture, report: &ConversionReport) -> StagedOutcome {
    let fragments = staged(f).await;
    let mut ids: Vec<i64> = fragments
        .iter()
        .flat_map(|f| &f.batches)
        .flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>().values().to_vec())
        .collect();
    ids.sort();
    let refused = f.quarantine.lines().await.unwrap().into_iter().map(|q| (q.line, q.error)).collect();
    StagedOutcome {
        landed: Landed { ids, refused, counts: (report.rows, report.quarantined) },
        totals: staged_totals(&fragments),
        fragments: fragments.len(),
    }
}

#[tokio::test]
async fn a_large_object_is_read_in_pieces_and_lands_as_it_would_whole() {
    let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
    let data = zstd::bulk::compress(&dated_lines(3000), 3).unwrap();
    let whole = fixture(layout.clone(), small());
    let in_pieces = fixture(layout, ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() });
    let mut outcomes = Vec::new();
    for f in [&whole, &in_pieces] {
        f.source.put("raw", "big.json.zst", data.clone());
        f.source.put("raw", "small.json", lines(0..3));
        let report = f.converter.convert(&sqs(vec![created("big.json.zst"), created("small.json")])).await.unwrap();
        assert!(report.failed_messages.is_empty());
        outcomes.push(staged_outcome(f, &report).await);
    }
    let (pieces, whole) = (outcomes.pop().unwrap(), outcomes.pop().unwrap());
    assert!(pieces.fragments > whole.fragments + 2, "fragments rolled inside the object: {pieces:?} vs {whole:?}");
    assert_eq!(pieces.landed, whole.landed, "the same rows and refusals");
    let big = pieces.totals["s3://raw/big.json.zst"];
    assert_eq!((big.1, big.2), (Some(big.0), false), "its total is stated once it is read to the end");
    assert_eq!(whole.landed.refused.len(), 31);
}

#[tokio::test]
async fn an_object_decoding_to_more_than_a_piece_holds_is_read_in_steps_and_lands_as_it_would_whole() {
    // 40,000 short lines: 0.5 MiB of text, several MiB of rows and lineage.
    let mut text = Vec::new();
    for i in 0..40_000i64 {
        match i % 1000 {
            7 => text.extend_from_slice(b"{\"id\":\"seven\"}\n"),
            _ => text.extend_from_slice(format!("{{\"id\":{i}}}\n").as_bytes()),
        }
    }
    let data = zstd::bulk::compress(&text, 3).unwrap();
    let whole = fixture(Layout::default(), small());
    let stepped =
        fixture(Layout::default(), ConverterOptions { piece_bytes: 1 << 20, fragment_bytes: 256 << 10, ..small() });
    let mut outcomes = Vec::new();
    for f in [&whole, &stepped] {
        f.source.put("raw", "tiny.json.zst", data.clone());
        let report = f.converter.convert(&sqs(vec![created("tiny.json.zst")])).await.unwrap();
        assert!(report.failed_messages.is_empty());
        outcomes.push(staged_outcome(f, &report).await);
    }
    let (stepped, whole) = (outcomes.pop().unwrap(), outcomes.pop().unwrap());
    assert_eq!(whole.fragments, 1, "read whole: one fragment");
    assert!(stepped.fragments > 2, "read in steps, fragments rolled inside the object: {}", stepped.fragments);
    assert_eq!(stepped.landed, whole.landed, "the same rows and refusals");
    assert_eq!(stepped.landed.counts, (39_960, 40));
    let tiny = stepped.totals["s3://raw/tiny.json.zst"];
    assert_eq!((tiny.1, tiny.2), (Some(tiny.0), false), "its total is stated once it is read to the end");
}

#[tokio::test]
async fn the_open_writers_together_hold_at_most_a_fragments_worth() {
    let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
    let f = fixture(layout, ConverterOptions { fragment_bytes: 64 << 10, ..small() });
    for key in ["days-1.json", "days-2.json"] {
        let mut text = String::new();
        for i in 0..20_000i64 {
            text.push_str(&format!("{{\"id\":{i},\"at\":{}}}\n", 1_778_900_000 + (i % 200) * 86_400));
        }
        f.source.put("raw", key, text.into_bytes());
    }
    let report = f.converter.convert(&sqs(vec![created("days-1.json"), created("days-2.json")])).await.unwrap();
    assert_eq!(report.rows, 40_000);
    let fragments = staged(&f).await;
    // Each of the 200 partitions' writers would stay under 64 KiB with both objects' rows,
    // one fragment per partition; together they pass it, and the fullest are staged as
    // they do, so the second object's rows go to new writers.
    assert!(fragments.len() > 300, "{} fragments", fragments.len());
    let totals = staged_totals(&fragments);
    assert_eq!((totals["s3://raw/days-1.json"].0, totals["s3://raw/days-2.json"].0), (20_000, 20_000));
    assert!(
        fragments
            .iter()
            .all(|fragment| fragment.batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>() < 2 * (64 << 10))
    );
}

#[tokio::test]
async fn a_large_object_failing_part_way_fails_alone_and_what_it_staged_is_marked() {
    let f = fixture(Layout::default(), ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() });
    // Lines that barely compress, so the first blocks of the cut frame are whole.
    let text: String = (0..5000)
        .map(|i: u64| {
            format!("{{\"id\":{i},\"pad\":\"{:032x}\"}}\n", twox_hash::XxHash3_128::oneshot(&i.to_le_bytes()))
        })
        .collect();
    let data = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
    f.source.put("raw", "cut.json.zst", data[..data.len() * 3 / 4].to_vec());
    f.source.put("raw", "good.json", lines(0..3));
    let report = f.converter.convert(&sqs(vec![created("cut.json.zst"), created("good.json")])).await.unwrap();
    assert_eq!(report.failed_messages, vec!["m0"]);
    assert_eq!((report.objects, report.rows), (1, 3), "only the good object is counted");
    let totals = staged_totals(&staged(&f).await);
    let cut = totals["s3://raw/cut.json.zst"];
    assert!(cut.0 > 0 && cut.1.is_none() && cut.2, "rows staged before the damage, marked failed: {cut:?}");
    assert_eq!(totals["s3://raw/good.json"], (3, Some(3), false));
}

/// A store that only streams (a whole read is refused), counting opens; with `overwrite`
/// set, a key is overwritten with other bytes right after its first opening.
struct StreamingSource {
    objects: Arc<MemorySource>,
    opens: std::sync::atomic::AtomicUsize,
    overwrite: bool,
}

#[async_trait::async_trait]
impl ObjectSource for StreamingSource {
    async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
        panic!("{} was downloaded whole", object.uri());
    }

    async fn open(&self, object: &SourceObject) -> Result<crate::ingest::Opened> {
        let fetched = self.objects.fetch(object).await?;
        if self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 && self.overwrite {
            self.objects.put_version(&object.bucket, &object.key, "etag-new", None, lines(0..1));
        }
        let length = fetched.data.len() as u64;
        Ok(crate::ingest::Opened { body: fetched.data.into(), length, etag: fetched.etag })
    }
}

fn streaming_fixture(overwrite: bool) -> (Fixture, Arc<StreamingSource>) {
    let options = ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() };
    let mut f = fixture(Layout::default(), options);
    let source = Arc::new(StreamingSource { objects: f.source.clone(), opens: Default::default(), overwrite });
    let schema = schemas::ID_AT.parse();
    f.converter = Converter::new(source.clone(), f.fragments.clone(), f.quarantine.clone(), schema, options);
    (f, source)
}

#[tokio::test]
async fn an_object_stored_larger_than_a_piece_is_streamed_twice_never_held_whole() {
    let (f, source) = streaming_fixture(false);
    let text = dated_lines(3000);
    let data = zstd::bulk::compress(&text, 3).unwrap();
    assert!(data.len() > 4096, "stored larger than a piece");
    f.source.put_version("raw", "big.json.zst", "etag-big.json.zst", None, data.clone());
    let report = f.converter.convert(&sqs(vec![created("big.json.zst")])).await.unwrap();
    assert!(report.failed_messages.is_empty(), "{report:?}");
    assert_eq!(source.opens.load(std::sync::atomic::Ordering::SeqCst), 2, "once for the digest, once to read");
    assert_eq!((report.rows, report.quarantined), (3000 - 31, 31));
    let fragments = staged(&f).await;
    assert!(fragments.len() > 2, "fragments rolled inside the object");
    let ids: BTreeSet<Option<String>> =
        fragments.iter().flat_map(|f| &f.sources).map(|source| source.id.digest.clone()).collect();
    assert_eq!(ids, BTreeSet::from([Some(content_digest(&data))]), "the digest of the stored bytes");
    assert_eq!(staged_totals(&fragments)["s3://raw/big.json.zst"], (3000 - 31, Some(3000 - 31), false));
}

#[tokio::test]
async fn a_streamed_object_overwritten_between_its_two_reads_is_recorded_as_superseded() {
    let (f, _) = streaming_fixture(true);
    let data = zstd::bulk::compress(&dated_lines(3000), 3).unwrap();
    f.source.put_version("raw", "big.json.zst", "etag-big.json.zst", None, data);
    let report = f.converter.convert(&sqs(vec![created("big.json.zst")])).await.unwrap();
    assert!(report.failed_messages.is_empty(), "answered: the new version has its own notification");
    assert_eq!(report.superseded.len(), 1, "{report:?}");
    assert_eq!((report.objects, report.rows), (0, 0));
    assert!(staged(&f).await.is_empty(), "nothing of either version staged");
    let recorded = crate::ingest::SupersededLog::new(f.fragments.store()).versions().await.unwrap();
    assert_eq!(recorded.len(), 1);
}

#[derive(Default)]
struct CountingTrigger(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl CompactionTrigger for CountingTrigger {
    async fn request(&self, _reason: &str) -> Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_compaction_is_requested_once_a_file_worth_is_staged() {
    let trigger = Arc::new(CountingTrigger::default());
    let mut f = fixture(Layout::default(), small());
    f.converter = f.converter.with_trigger(trigger.clone(), 4000);
    f.source.put("raw", "a.json", lines(0..10));
    f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
    assert_eq!(trigger.0.load(std::sync::atomic::Ordering::SeqCst), 0, "one small fragment is not enough");
    for i in 1..4 {
        f.source.put("raw", &format!("b{i}.json"), lines(i * 100..i * 100 + 100));
        f.converter.convert(&sqs(vec![created(&format!("b{i}.json"))])).await.unwrap();
    }
    assert!(trigger.0.load(std::sync::atomic::Ordering::SeqCst) >= 1, "staged bytes crossed the threshold");
}

#[derive(Default)]
struct Announcements(std::sync::Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl crate::ingest::SealedBatches for Announcements {
    async fn sealed(&self, table: &str, batch: &str) -> Result<()> {
        self.0.lock().unwrap().push((table.to_string(), batch.to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn each_sealed_batch_is_announced_with_its_table_and_nothing_else_is() {
    let announcements = Arc::new(Announcements::default());
    let mut f = fixture(Layout::default(), small());
    f.converter = f.converter.with_announcements(announcements.clone(), "web".into());
    f.source.put("raw", "a.json", lines(0..10));
    f.source.put("raw", "b.json", lines(10..20));
    let report = f.converter.convert(&sqs(vec![created("a.json"), created("b.json")])).await.unwrap();
    assert_eq!(*announcements.0.lock().unwrap(), [("web".to_string(), report.batch.clone())]);
    // A batch that staged nothing seals nothing, and announces nothing.
    f.source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
    f.converter.convert(&sqs(vec![created("corrupt.json.zst")])).await.unwrap();
    assert_eq!(announcements.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_batch_response_names_failed_messages_as_batch_item_failures() {
    let f = fixture(Layout::default(), small());
    f.source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
    let response = f.converter.convert(&sqs(vec![created("corrupt.json.zst")])).await.unwrap().batch_response();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m0");
}

/// Records `ids` framed as `framing` lays them out, record `bad` (1-based) not JSON.
fn framed(framing: &Framing, ids: std::ops::Range<i64>, bad: i64) -> Vec<u8> {
    let records: Vec<String> = ids
        .enumerate()
        .map(|(index, id)| match index as i64 + 1 {
            n if n == bad => "{\"id\": tru}".to_string(),
            _ => format!("{{\"id\":{id},\n \"at\":\"2026-05-16T10:00:00Z\"}}"),
        })
        .collect();
    let text = match framing {
        Framing::Lines => records.join("\n"),
        Framing::Concatenated => records.concat(),
        Framing::Array => format!("[\n{}\n]", records.join(",\n")),
        Framing::NamedArray(key) => format!("{{\"version\":\"1.0\",\"{key}\":[{}]}}", records.join(",")),
    };
    text.into_bytes()
}

#[tokio::test]
async fn framed_objects_ingest_record_by_record_whole_and_in_pieces_with_positions_for_lines() {
    for framing in [Framing::Concatenated, Framing::Array, Framing::NamedArray("Records".into())] {
        // Whole objects, and objects read in pieces of about 4 KiB.
        for piece_bytes in [16 << 20, 4096] {
            let options = ConverterOptions { piece_bytes, ..small() };
            let mut f = fixture(Layout::default(), options);
            f.converter = f.converter.with_framing(framing.clone());
            f.source.put("raw", "a.json", framed(&framing, 0..500, 250));
            f.source.put("raw", "b.json.zst", zstd::encode_all(&framed(&framing, 500..600, 0)[..], 3).unwrap());
            f.source.put("raw", "not-framed.json", b"{\"id\":1}\n{\"id\":2}\n[".to_vec());
            let event = sqs(vec![created("a.json"), created("b.json.zst"), created("not-framed.json")]);
            let report = f.converter.convert(&event).await.unwrap();
            let context = format!("{framing} in pieces of {piece_bytes}");
            let staged = staged(&f).await;
            let mut rows = staged_rows(&staged);
            rows.dedup_by(|a, b| {
                a.0 == b.0 && {
                    b.1 += a.1;
                    true
                }
            });
            let mut expected = vec![("s3://raw/a.json".to_string(), 499), ("s3://raw/b.json.zst".to_string(), 100)];
            let mut refused = vec![("s3://raw/a.json".to_string(), 250)];
            if framing == Framing::Concatenated {
                // Lines are concatenated objects too; the `[` left over is a record refused.
                expected.push(("s3://raw/not-framed.json".to_string(), 2));
                refused.push(("s3://raw/not-framed.json".to_string(), 3));
                assert!(report.failed_messages.is_empty(), "{context}");
            } else {
                assert_eq!(report.failed_messages.len(), 1, "{context}: the unframed object fails alone");
            }
            assert_eq!(rows, expected, "{context}");
            let quarantined = f.quarantine.lines().await.unwrap();
            let positions: Vec<(String, u64)> = quarantined.iter().map(|q| (q.source.clone(), q.line)).collect();
            assert_eq!(positions, refused, "{context}");
            assert_eq!(quarantined[0].raw, "{\"id\": tru}", "{context}");
        }
    }
}

#[tokio::test]
async fn the_line_limit_counts_a_framed_objects_records_not_its_raw_lines() {
    for piece_bytes in [16 << 20, 1024] {
        let limits = ObjectLimits { max_bytes: 64 << 10, max_lines: 40 };
        let mut f = fixture(Layout::default(), ConverterOptions { limits, piece_bytes, ..small() });
        f.converter = f.converter.with_framing(Framing::Array);
        // 30 records over 62 raw lines are within 40; 41 records are not, on any number of lines.
        f.source.put("raw", "thirty.json", framed(&Framing::Array, 0..30, 0));
        let one_line = String::from_utf8(framed(&Framing::Array, 100..141, 0)).unwrap().replace('\n', "");
        f.source.put("raw", "forty-one.json", one_line.into_bytes());
        let report = f.converter.convert(&sqs(vec![created("thirty.json"), created("forty-one.json")])).await.unwrap();
        let context = format!("in pieces of {piece_bytes}");
        // In pieces, what the refused object staged before its limit is marked failed: never committed.
        let fragments = staged(&f).await;
        let sources: Vec<_> = fragments.iter().flat_map(|fragment| fragment.sources.iter()).collect();
        let kept: Vec<_> = sources.iter().filter(|s| !s.failed).map(|s| (s.id.uri.as_str(), s.rows)).collect();
        assert_eq!(kept, vec![("s3://raw/thirty.json", 30)], "{context}");
        let refused = sources.iter().filter(|s| s.id.uri.ends_with("forty-one.json"));
        assert!(refused.clone().all(|s| s.failed) && refused.count() <= 1, "{context}: {sources:?}");
        assert_eq!(report.failed_messages, vec!["m1"], "{context}: the one-line array of 41 records fails");
    }
}
