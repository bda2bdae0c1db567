use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions, PutOptions,
    PutResult,
};

use super::*;

fn id(uri: &str, etag: &str) -> SourceId {
    SourceId { uri: uri.into(), etag: Some(etag.into()), digest: None }
}

fn committed(ids: &[SourceId]) -> Vec<CommittedSource> {
    ids.iter().map(|id| CommittedSource { id: id.clone(), rows: 1 }).collect()
}

/// Writes commit `version` adding `ids`, as a compactor would.
async fn commit(store: &Arc<dyn ObjectStore>, version: u64, ids: &[SourceId]) {
    let info = serde_json::json!({"commitInfo": {"timestamp": version, SOURCES_KEY: committed(ids)}});
    let add = serde_json::json!({"add": {"path": "x.parquet"}});
    store.put(&commit_file(version), PutPayload::from(format!("{info}\n{add}\n").into_bytes())).await.unwrap();
}

async fn found(store: &Arc<dyn ObjectStore>, version: u64, ids: &[SourceId]) -> Option<Vec<SourceId>> {
    let (_, held) = LoadHistory::lookup(store, version, ids).await.unwrap()?;
    let mut held: Vec<SourceId> = held.into_iter().collect();
    held.sort();
    Some(held)
}

/// Commits `0..versions`, one source each (`s3://r/<version>`), recording each in the index.
async fn indexed_table(store: &Arc<dyn ObjectStore>, versions: u64) -> Vec<SourceId> {
    let ids: Vec<SourceId> = (0..versions).map(|v| id(&format!("s3://r/{v}"), "1")).collect();
    let mut history = LoadHistory::default();
    for version in 0..versions {
        commit(store, version, &ids[version as usize..=version as usize]).await;
        history = history.record(store, version, &committed(&ids[version as usize..=version as usize])).await.unwrap();
    }
    ids
}

#[tokio::test]
async fn history_is_read_from_commits_and_the_index_and_forgets_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    commit(&store, 0, &[]).await;
    commit(&store, 1, &[id("s3://r/a", "1")]).await;
    commit(&store, 2, &[id("s3://r/b", "1"), id("s3://r/a", "2")]).await;
    let asked = [id("s3://r/a", "1"), id("s3://r/a", "2"), id("s3://r/b", "1"), id("s3://r/b", "2")];
    let held = found(&store, 2, &asked).await.unwrap();
    assert_eq!(held, asked[..3].to_vec(), "a new version of an object is a new source");

    // Index what the log says as of version 2, then the log is cleaned.
    let (history, _) = LoadHistory::lookup(&store, 2, &[]).await.unwrap().unwrap();
    let history = history.record(&store, 2, &[]).await.unwrap();
    assert_eq!(history.indexed, Some(2));
    for version in 0..=2 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    commit(&store, 3, &[id("s3://r/c", "1")]).await;
    let asked =
        [id("s3://r/a", "1"), id("s3://r/a", "2"), id("s3://r/b", "1"), id("s3://r/c", "1"), id("s3://r/d", "1")];
    assert_eq!(found(&store, 3, &asked).await.unwrap(), asked[..4].to_vec(), "the oldest entry too");
}

#[tokio::test]
async fn sources_committed_years_ago_are_still_known() {
    // Old snapshots dropped entries after a retention window; the index keeps every one.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let ids = indexed_table(&store, 120).await;
    for version in 0..119 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    assert_eq!(found(&store, 119, &ids).await.unwrap().len(), 120);
}

#[test]
fn runs_merge_into_geometrically_growing_sizes() {
    assert_eq!(runs_to_merge(&[]), 0);
    assert_eq!(runs_to_merge(&[10]), 0);
    assert_eq!(runs_to_merge(&[1000, 10]), 0, "a much bigger run waits");
    assert_eq!(runs_to_merge(&[30, 10]), 2);
    assert_eq!(runs_to_merge(&[1000, 100, 30, 10]), 3, "the merged run grows and takes the next one");
    // Appending many equal runs keeps the count small.
    let mut runs: Vec<u64> = Vec::new();
    for _ in 0..20_000 {
        runs.push(500);
        let merging = runs_to_merge(&runs);
        if merging >= 2 {
            let merged = runs.split_off(runs.len() - merging).iter().sum();
            runs.push(merged);
        }
        assert!(runs.len() <= 8, "{runs:?}");
    }
    assert_eq!(runs.iter().sum::<u64>(), 10_000_000);
}

#[tokio::test]
async fn many_compactions_keep_few_runs_and_find_every_source() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let ids = indexed_table(&store, 200).await;
    let (history, held) = LoadHistory::lookup(&store, 199, &ids).await.unwrap().unwrap();
    assert_eq!(held.len(), 200);
    assert!(history.runs.len() <= 8, "{} runs", history.runs.len());
    assert_eq!(history.indexed_entries(), 200);
    let manifests = manifests(&store).await.unwrap();
    assert_eq!(manifests.len(), MANIFESTS_KEPT);
    let listed: Vec<Path> =
        store.list(Some(&Path::from(HISTORY_RUNS_PREFIX))).map_ok(|m| m.location).try_collect().await.unwrap();
    assert!(listed.len() <= 3 * 8, "merged runs are removed: {} left", listed.len());
}

#[tokio::test]
async fn a_gap_in_the_log_with_no_index_asks_for_a_rebuild() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    commit(&store, 1, &[id("s3://r/a", "1")]).await;
    assert!(LoadHistory::lookup(&store, 1, &[id("s3://r/a", "1")]).await.unwrap().is_none());
}

#[tokio::test]
async fn damaged_manifests_and_runs_fall_back_to_older_ones() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let ids = indexed_table(&store, 3).await;
    // The newest manifest is damaged.
    store.put(&history_manifest(2), PutPayload::from(b"{not json".to_vec())).await.unwrap();
    assert_eq!(found(&store, 2, &ids).await.unwrap(), ids);
    // So is every run the next one names, and what they were merged from: the oldest kept
    // manifest and the log answer.
    let manifest: Manifest =
        serde_json::from_slice(&store.get(&history_manifest(1)).await.unwrap().bytes().await.unwrap()).unwrap();
    for run in manifest.runs.iter().flat_map(|run| run.replaces.iter().chain([run])) {
        store.put(&Path::from(run.path.as_str()), PutPayload::from(vec![0u8; 64])).await.unwrap();
    }
    assert_eq!(found(&store, 2, &ids).await.unwrap(), ids);
    let (history, _) = LoadHistory::lookup(&store, 2, &ids).await.unwrap().unwrap();
    assert!(
        matches!(history.indexed, Some(0) | None),
        "answered by an older manifest or the log: {:?}",
        history.indexed
    );
    // With the log cleaned too, only a rebuild can answer.
    for version in 0..=2 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    for (_, path) in manifests(&store).await.unwrap() {
        store.put(&path, PutPayload::from(b"".to_vec())).await.unwrap();
    }
    assert!(found(&store, 2, &ids).await.is_none());
}

/// A merged run the newest manifest names.
async fn newest_merged_run(store: &Arc<dyn ObjectStore>) -> ManifestRun {
    let (_, newest) = manifests(store).await.unwrap().pop().unwrap();
    let manifest: Manifest = serde_json::from_slice(&store.get(&newest).await.unwrap().bytes().await.unwrap()).unwrap();
    manifest.runs.into_iter().find(|run| !run.replaces.is_empty()).expect("a merged run")
}

#[tokio::test]
async fn losing_the_newest_merged_run_needs_no_rebuild() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut ids = indexed_table(&store, 40).await;
    ids.sort();
    // The newest manifest's merged run is lost, and log cleanup took every commit.
    let merged = newest_merged_run(&store).await;
    store.delete(&Path::from(merged.path.as_str())).await.unwrap();
    for version in 0..40 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    assert_eq!(found(&store, 39, &ids).await.unwrap(), ids, "the runs it was merged from answer in its place");
    let never = id("s3://r/99", "1");
    assert!(found(&store, 39, std::slice::from_ref(&never)).await.unwrap().is_empty(), "and only for what it held");
    // The next commit's manifest no longer names the lost run, and knows everything.
    let (history, _) = LoadHistory::lookup(&store, 39, &[]).await.unwrap().unwrap();
    let added = id("s3://r/40", "1");
    commit(&store, 40, std::slice::from_ref(&added)).await;
    history.record(&store, 40, &committed(std::slice::from_ref(&added))).await.unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&store.get(&history_manifest(40)).await.unwrap().bytes().await.unwrap()).unwrap();
    assert!(manifest.runs.iter().all(|run| run.path != merged.path));
    store.delete(&commit_file(40)).await.unwrap();
    let mut all = ids.clone();
    all.push(added);
    all.sort();
    assert_eq!(found(&store, 40, &all).await.unwrap(), all);
}

#[tokio::test]
async fn a_damaged_block_of_a_merged_run_is_read_from_the_runs_it_was_merged_from() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut ids = indexed_table(&store, 40).await;
    ids.sort();
    let merged = newest_merged_run(&store).await;
    // A flipped bit in its keys: it opens, and its block fails its digest when read.
    let path = Path::from(merged.path.as_str());
    let mut bytes = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    bytes[3] ^= 1;
    store.put(&path, PutPayload::from(bytes)).await.unwrap();
    for version in 0..40 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    assert_eq!(found(&store, 39, &ids).await.unwrap(), ids);
}

/// A store that counts the bytes it was asked to read, and the reads.
#[derive(Debug, Default)]
struct CountingStore {
    inner: InMemory,
    read: AtomicU64,
    gets: AtomicU64,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountingStore")
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await?;
        self.read.fetch_add(result.range.end - result.range.start, Ordering::Relaxed);
        self.gets.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_lookup_reads_what_its_sources_need_not_the_whole_history() {
    let counting = Arc::new(CountingStore::default());
    let store: Arc<dyn ObjectStore> = counting.clone();
    // 400,000 committed sources in one run (6.4 MB of keys), then a compaction's worth.
    let keys: HashSet<SourceKey> = (0..400_000).map(|n| id(&format!("s3://r/old/{n}"), "1").key()).collect();
    let run = write_run(&store, 0, keys).await.unwrap();
    let manifest = Manifest {
        covers: 0,
        runs: vec![ManifestRun { path: run.path.to_string(), entries: run.entries, replaces: Vec::new() }],
        etag_only: true,
    };
    store.put(&history_manifest(0), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();
    commit(&store, 0, &[]).await;
    let asked: Vec<SourceId> = (0..500)
        .map(|n| id(&format!("s3://r/old/{}", n * 700), "1"))
        .chain((0..500).map(|n| id(&format!("s3://r/new/{n}"), "1")))
        .collect();
    counting.read.store(0, Ordering::Relaxed);
    let held = found(&store, 0, &asked).await.unwrap();
    assert_eq!(held.len(), 500, "the old ones, not the new ones");
    let read = counting.read.load(Ordering::Relaxed);
    // Fences (24 bytes per 1,024 keys) and at most one 16 KiB block per source asked about.
    assert!(read <= 10_000 + 1000 * 16_384, "read {read} bytes");
    assert!(read < 6_400_000, "read {read} bytes: less than the run itself");
}

#[tokio::test]
async fn a_source_is_found_by_its_content_and_records_made_before_digests_by_their_etag() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let with = |uri: &str, etag: &str, digest: &str| SourceId {
        uri: uri.into(),
        etag: Some(etag.into()),
        digest: Some(digest.into()),
    };
    // Commit 0 was made before digests; commit 1 after.
    commit(&store, 0, &[id("s3://r/old", "e1")]).await;
    commit(&store, 1, &[with("s3://r/new", "e1", "xxh3-128:01")]).await;
    let asked = [
        with("s3://r/old", "e1", "xxh3-128:02"), // the same version, read again: found by ETag
        with("s3://r/new", "e9-2", "xxh3-128:01"), // same bytes re-uploaded: found by digest
        with("s3://r/new", "e3", "xxh3-128:03"), // new bytes: not found
    ];
    let mut expect_sorted = vec![asked[0].clone(), asked[1].clone()];
    expect_sorted.sort();
    assert_eq!(found(&store, 1, &asked).await.unwrap(), expect_sorted, "read from the log");
    // The same answers from the index once the log is gone.
    let (history, _) = LoadHistory::lookup(&store, 1, &[]).await.unwrap().unwrap();
    history.record(&store, 1, &[]).await.unwrap();
    for version in 0..=1 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    assert_eq!(found(&store, 1, &asked).await.unwrap(), expect_sorted, "read from the index");
}

#[tokio::test]
async fn a_history_of_digests_only_looks_sources_up_by_their_content_alone() {
    let counting = Arc::new(CountingStore::default());
    let store: Arc<dyn ObjectStore> = counting.clone();
    let with = |n: u64| SourceId {
        uri: format!("s3://r/svc/{n}"),
        etag: Some(format!("e{n}")),
        digest: Some(crate::lineage::content_digest(&n.to_le_bytes())),
    };
    let added: Vec<CommittedSource> = (0..200_000).map(|n| CommittedSource { id: with(n), rows: 1 }).collect();
    commit(&store, 0, &[]).await;
    LoadHistory::default().record(&store, 0, &added).await.unwrap();
    let asked: Vec<SourceId> = (0..20).map(|n| with(n * 9_973)).chain((0..20).map(|n| with(1_000_000 + n))).collect();
    let reads = |etag_only: bool| {
        let (store, counting, asked) = (store.clone(), counting.clone(), asked.clone());
        async move {
            let path = history_manifest(0);
            let mut manifest: Manifest =
                serde_json::from_slice(&store.get(&path).await.unwrap().bytes().await.unwrap()).unwrap();
            manifest.etag_only = etag_only;
            store.put(&path, PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();
            counting.read.store(0, Ordering::Relaxed);
            let held = found(&store, 0, &asked).await.unwrap();
            assert_eq!(held.len(), 20, "the committed ones, whichever way they are looked up");
            counting.read.load(Ordering::Relaxed)
        }
    };
    let (by_content, by_both) = (reads(false).await, reads(true).await);
    assert!(by_content * 10 < by_both * 7, "by content alone {by_content} bytes, by content and ETag {by_both}");
}

/// A source of day `day` of a busy table, with a digest as the converter records it.
fn daily(day: u64, n: u64) -> SourceId {
    SourceId {
        uri: format!("s3://raw/svc/date=2026-{:02}-{:02}/{n:06}.json.zst", 1 + day / 28, 1 + day % 28),
        etag: Some(format!("e{day}-{n}")),
        digest: Some(crate::lineage::content_digest(&(day * 1_000_000 + n).to_le_bytes())),
    }
}

#[tokio::test]
async fn a_compaction_of_one_folder_reads_a_few_blocks_of_a_large_index() {
    let counting = Arc::new(CountingStore::default());
    let store: Arc<dyn ObjectStore> = counting.clone();
    // Thirty days of 10,000 sources each, indexed day by day (merges included).
    let mut history = LoadHistory::default();
    for day in 0..30 {
        let added: Vec<CommittedSource> = (0..10_000).map(|n| CommittedSource { id: daily(day, n), rows: 1 }).collect();
        commit(&store, day, &[]).await;
        history = history.record(&store, day, &added).await.unwrap();
    }
    // A compaction of the last day: half redelivered, half new.
    let asked: Vec<SourceId> =
        (0..250).map(|n| daily(29, n * 40)).chain((0..250).map(|n| daily(29, 10_000 + n))).collect();
    counting.read.store(0, Ordering::Relaxed);
    counting.gets.store(0, Ordering::Relaxed);
    let held = found(&store, 29, &asked).await.unwrap();
    assert_eq!(held.len(), 250, "the redelivered ones");
    let (read, gets) = (counting.read.load(Ordering::Relaxed), counting.gets.load(Ordering::Relaxed));
    // The day's 10,000 keys are 10 blocks of a run: spread evenly over 300,000, the 500 keys
    // would fall in some 250 blocks of 16 KiB.
    assert!(read < 20 * 16_384 + 50_000, "read {read} bytes");
    assert!(gets <= 4 * history.runs() as u64 + 10, "{gets} reads for {} runs", history.runs());
    // A backfill of an older day reads that day's blocks alone.
    let asked: Vec<SourceId> = (0..500).map(|n| daily(3, n * 20)).collect();
    counting.read.store(0, Ordering::Relaxed);
    assert_eq!(found(&store, 29, &asked).await.unwrap().len(), 500);
    let read = counting.read.load(Ordering::Relaxed);
    assert!(read < 20 * 16_384 + 50_000, "read {read} bytes");
}

#[tokio::test]
async fn an_index_written_before_keys_were_grouped_by_folder_still_answers_and_is_kept() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // An index of 3,000 sources in one run of the older layout, as an earlier release wrote it.
    let old: Vec<SourceId> = (0..3000).map(|n| daily(0, n)).collect();
    let mut keys: Vec<SourceKey> =
        old.iter().flat_map(|id| id.keys_in(KeyLayout::Scattered).collect::<Vec<_>>()).collect();
    keys.sort_unstable();
    keys.dedup();
    let run_path = history_run(0);
    store.put(&run_path, PutPayload::from(run::scattered_run_bytes(&keys))).await.unwrap();
    let manifest = Manifest {
        covers: 0,
        runs: vec![ManifestRun { path: run_path.to_string(), entries: keys.len() as u64, replaces: Vec::new() }],
        etag_only: false,
    };
    store.put(&history_manifest(0), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();
    commit(&store, 0, &[]).await;
    assert_eq!(found(&store, 0, &old).await.unwrap().len(), 3000, "the older run answers");
    // Many commits later (the newer runs merging among themselves), every source is known,
    // the older run among the manifest's runs, and the log is cleaned.
    let mut added = Vec::new();
    let (mut history, _) = LoadHistory::lookup(&store, 0, &[]).await.unwrap().unwrap();
    for version in 1..=40 {
        let ids: Vec<SourceId> = (0..100).map(|n| daily(version, n)).collect();
        commit(&store, version, &ids).await;
        history = history.record(&store, version, &committed(&ids)).await.unwrap();
        added.extend(ids);
    }
    assert!(history.runs() <= 8, "{} runs", history.runs());
    for version in 0..40 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    let manifest: Manifest =
        serde_json::from_slice(&store.get(&history_manifest(40)).await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(manifest.runs[0].path, run_path.to_string(), "kept as it is, first");
    let asked: Vec<SourceId> = old.iter().chain(&added).cloned().chain([daily(0, 5000), daily(7, 5000)]).collect();
    assert_eq!(found(&store, 40, &asked).await.unwrap().len(), 3000 + 4000);
}

#[tokio::test]
async fn runs_written_before_keys_were_grouped_by_folder_merge_among_themselves() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // Four small runs of the older layout (a rebuild's saves, the deleted ledger), as an
    // earlier release wrote them.
    let old: Vec<SourceId> = (0..400).map(|n| daily(0, n)).collect();
    let mut runs = Vec::new();
    for chunk in old.chunks(100) {
        let mut keys: Vec<SourceKey> = chunk.iter().map(|id| id.key_in(KeyLayout::Scattered)).collect();
        keys.sort_unstable();
        let path = history_run(0);
        store.put(&path, PutPayload::from(run::scattered_run_bytes(&keys))).await.unwrap();
        runs.push(ManifestRun { path: path.to_string(), entries: 100, replaces: Vec::new() });
    }
    let manifest = Manifest { covers: 0, runs, etag_only: false };
    store.put(&history_manifest(0), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();
    commit(&store, 0, &[]).await;
    commit(&store, 1, &[daily(1, 0)]).await;
    let (history, _) = LoadHistory::lookup(&store, 1, &[]).await.unwrap().unwrap();
    let history = history.record(&store, 1, &committed(&[daily(1, 0)])).await.unwrap();
    let layouts: Vec<(KeyLayout, u64)> = history.runs.iter().map(|run| (run.layout, run.entries)).collect();
    // The new source is filed under its content and its ETag.
    assert_eq!(layouts, [(KeyLayout::Scattered, 400), (KeyLayout::ByFolder, 2)]);
    for version in 0..=1 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    let asked: Vec<SourceId> = old.iter().cloned().chain([daily(1, 0), daily(1, 1)]).collect();
    assert_eq!(found(&store, 1, &asked).await.unwrap().len(), 401);
}

#[test]
fn a_manifest_with_fields_a_later_version_adds_still_reads() {
    let text = r#"{"covers": 7, "runs": [{"path": "_inlet/history/runs/a.run", "entries": 3, "filter": "f"}],
        "etag_only": false, "written_by": "0.2.0"}"#;
    let manifest: Manifest = serde_json::from_str(text).unwrap();
    let run = ManifestRun { path: "_inlet/history/runs/a.run".into(), entries: 3, replaces: Vec::new() };
    assert_eq!(manifest, Manifest { covers: 7, runs: vec![run], etag_only: false });
}

#[test]
fn a_commit_info_with_keys_and_source_fields_a_later_version_adds_still_lists_its_sources() {
    let sources = serde_json::json!([{"uri": "s3://r/a", "etag": "1", "rows": 2, "bytes": 10}]);
    let info = serde_json::json!({"commitInfo": {"timestamp": 1, SOURCES_KEY: sources, "inlet.later": {"x": 1}}});
    let listed = sources_in_commit(format!("{info}\n").as_bytes()).unwrap();
    assert_eq!(listed, vec![CommittedSource { id: id("s3://r/a", "1"), rows: 2 }]);
}

#[tokio::test]
async fn runs_of_a_format_this_release_does_not_know_are_passed_over_for_the_log_then_a_rebuild() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let ids = indexed_table(&store, 3).await;
    // Every run given a footer magic this release has never written, as a later one might.
    let runs: Vec<Path> =
        store.list(Some(&Path::from(HISTORY_RUNS_PREFIX))).map_ok(|m| m.location).try_collect().await.unwrap();
    for path in &runs {
        let mut bytes = store.get(path).await.unwrap().bytes().await.unwrap().to_vec();
        let magic = bytes.len() - 8;
        bytes[magic..].copy_from_slice(b"INLETHI9");
        store.put(path, PutPayload::from(bytes)).await.unwrap();
    }
    let err = Run::open(&store, &runs[0]).await.unwrap_err();
    assert!(is_damage(&err), "damage to pass over, not a failure: {err}");
    assert_eq!(found(&store, 2, &ids).await.unwrap(), ids, "the log answers");
    for version in 0..=2 {
        store.delete(&commit_file(version)).await.unwrap();
    }
    assert!(found(&store, 2, &ids).await.is_none(), "with the log cleaned, a rebuild is asked for");
}
