//! The converter's memory is bounded by its configuration, not by the size of its input.

use std::sync::Arc;
use std::time::Instant;

use inlet::ingest::ConverterMemory;
use inlet::ingest::Quarantine;
use inlet::ingest::{Converter, ConverterOptions};
use inlet::lineage::SourceObject;
use inlet::schema::TableSchema;
use inlet::stage::FragmentStore;
use inlet::testing::events::objects_event;
use inlet::testing::shapes::{self, Shape};
use inlet::testing::sources::{LocalSource, MemorySource};
use inlet::testing::{sample, schemas};

const OBJECTS: u64 = 200;

/// Peak resident set size of this process so far, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).expect("VmHWM in kB") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_object_batch_stays_within_the_configured_memory() {
    inlet::memory::keep_large_buffers_mapped();
    let schema = schemas::events();
    let source = Arc::new(MemorySource::default());
    let mut objects = Vec::new();
    let mut input_bytes = 0u64;
    let mut lines = 0u64;
    for index in 0..OBJECTS {
        let ndjson = sample::ndjson_object(7, index, sample::OBJECT_BYTES);
        input_bytes += ndjson.len() as u64;
        lines += ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        let key = format!("svc/date=2026-05-16/{index:04}.json.zst");
        source.put("raw", &key, sample::zstd_compress(&ndjson));
        objects.push(SourceObject {
            bucket: "raw".into(),
            key,
            etag: Some(format!("etag-{index}")),
            ..Default::default()
        });
    }
    let event = objects_event(objects);

    let lake = tempfile::tempdir().unwrap();
    let store =
        inlet::stage::table_store(&url::Url::from_directory_path(lake.path()).unwrap(), &Default::default()).unwrap();
    let options = ConverterOptions { concurrency: 4, fragment_bytes: 32 << 20, ..ConverterOptions::default() };
    let converter = Converter::new(source, FragmentStore::new(store.clone()), Quarantine::new(store), schema, options);

    // What the process holds before converting: the compressed input and the runtime.
    let baseline = peak_rss();
    let started = Instant::now();
    let report = converter.convert(&event).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss();

    assert!(report.failed_messages.is_empty());
    assert_eq!((report.objects as u64, report.rows), (OBJECTS, lines));
    // Bound: `concurrency` objects in flight plus as many queued (each ~1 MiB of JSON and a few
    // MiB of Arrow), one fragment writer's buffers and its finished file, and allocator slack.
    // Holding the whole batch would need well over 400 MiB of Arrow data.
    let bound = 160 << 20;
    let what = format!(
        "{OBJECTS} objects, {:.0} MiB of NDJSON in {seconds:.1}s ({:.1} MiB/s, debug build)",
        mib(input_bytes),
        mib(input_bytes) / seconds
    );
    assert!(report.fragments.len() > 1, "fragments roll at the configured size");
    within_bound(&what, report.fragments.len(), baseline, peak, bound);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Prints what a run used and asserts its peak RSS over `baseline` stays under `bound`.
fn within_bound(what: &str, fragments: usize, baseline: u64, peak: u64, bound: u64) {
    println!(
        "converter memory: {what}, {fragments} fragments; peak RSS {:.0} MiB, {:.0} MiB above the {:.0} MiB \
         baseline (bound {:.0} MiB)",
        mib(peak),
        mib(peak.saturating_sub(baseline)),
        mib(baseline),
        mib(bound),
    );
    assert!(peak.saturating_sub(baseline) < bound, "converter used {:.0} MiB over its baseline", mib(peak - baseline));
}

/// Writes `lines` lines of about 1,030 bytes of JSON each to `out`.
fn write_big_object(out: &mut impl std::io::Write, lines: u64) {
    let pad = "x".repeat(1000);
    for id in 0..lines {
        writeln!(out, r#"{{"id":{id},"pad":"{pad}"}}"#).unwrap();
    }
}

/// Converts the one object `key` of `source` (`lines` lines) with 16 MiB pieces and 64 MiB
/// fragments, and asserts the converter's peak memory stays within what those settings allow.
async fn ingest_within_bound(source: Arc<dyn inlet::ingest::ObjectSource>, key: &str, lines: u64, label: &str) {
    let schema = schemas::ID_PAD.parse();
    let event = objects_event([SourceObject { bucket: "raw".into(), key: key.into(), ..Default::default() }]);

    let lake = tempfile::tempdir().unwrap();
    let store =
        inlet::stage::table_store(&url::Url::from_directory_path(lake.path()).unwrap(), &Default::default()).unwrap();
    let options = ConverterOptions { piece_bytes: 16 << 20, fragment_bytes: 64 << 20, ..ConverterOptions::default() };
    let converter = Converter::new(source, FragmentStore::new(store.clone()), Quarantine::new(store), schema, options);

    let baseline = peak_rss();
    let started = Instant::now();
    let report = converter.convert(&event).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss();

    assert!(report.failed_messages.is_empty(), "{report:?}");
    assert_eq!(report.rows, lines);
    assert!(report.bytes_in > 1 << 30, "more than a GiB of JSON: {}", report.bytes_in);
    // Bound: a piece of JSON and its Arrow form (twice 16 MiB), a partition's writer up to its
    // 64 MiB of Arrow data and its encoded pages, one finished fragment uploading, and slack.
    let bound = 320 << 20;
    let what = format!("one object of {:.0} MiB of NDJSON {label} in {seconds:.1}s", mib(report.bytes_in));
    assert!(report.fragments.len() > 4, "fragments roll inside the object");
    within_bound(&what, report.fragments.len(), baseline, peak, bound);
}

/// An object of more than 1 GiB of JSON ingests whole, in memory set by the piece and
/// fragment sizes, not by the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_more_than_a_gibibyte_ingests_within_the_configured_memory() {
    inlet::memory::keep_large_buffers_mapped();
    const LINES: u64 = 1_100_000;
    // 1.06 GiB of JSON, a few MiB compressed: held compressed, decompressed piece by piece.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    write_big_object(&mut encoder, LINES);
    let source = Arc::new(MemorySource::default());
    source.put("raw", "export/big.json.zst", encoder.finish().unwrap());
    ingest_within_bound(source, "export/big.json.zst", LINES, "(a few MiB stored)").await;
}

/// An object stored larger than the converter may hold (here 1.06 GiB of uncompressed JSON)
/// is streamed from the store, not downloaded whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_stored_larger_than_the_bound_is_streamed_from_the_store() {
    // The allocator set up as in the functions (see `inlet::memory`).
    inlet::memory::keep_large_buffers_mapped();
    const LINES: u64 = 1_100_000;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("raw/export")).unwrap();
    let file = std::fs::File::create(root.path().join("raw/export/big.json")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    write_big_object(&mut out, LINES);
    std::io::Write::flush(&mut out).unwrap();
    drop(out);
    let source = Arc::new(LocalSource::new(root.path()));
    ingest_within_bound(source, "export/big.json", LINES, "(stored uncompressed)").await;
}

// Shapes that decode to far more than their text (tiny rows), refuse every line, or hold
// lines past the line limit, and others, each converted with small settings so the model's
// bound is tight and the object many times larger: each must stay within `ConverterMemory`'s
// figure for those settings, the bound `docs/design.md` derives.

/// Settings small enough that each shape is many times what they let the converter hold.
fn small_settings() -> ConverterOptions {
    ConverterOptions { piece_bytes: 4 << 20, fragment_bytes: 16 << 20, concurrency: 4, ..ConverterOptions::default() }
}

/// Converts `shape` with small settings, on the runtime the converter function runs on,
/// asserts its rows and refused lines are what it holds and its peak RSS over the process's
/// baseline stays within the model's figure, and gives the first `shown` quarantined lines.
fn within_model(shape: Shape, shown: usize) -> Vec<inlet::ingest::QuarantinedLine> {
    inlet::memory::keep_large_buffers_mapped();
    let runtime = inlet::ingest::runtime().unwrap();
    let options = small_settings();
    let bound = ConverterMemory::of(&options, inlet::ingest::decode_slots(options.concurrency)).total();
    let Shape { label, schema, layout, objects, rows, quarantined } = shape;
    let schema = Arc::new(TableSchema::parse_with(&schema, "shape", layout).unwrap());
    let source = Arc::new(MemorySource::default());
    let mut named = Vec::new();
    for (key, stored) in objects {
        source.put("raw", &key, stored);
        named.push(SourceObject { bucket: "raw".into(), key, ..Default::default() });
    }
    let event = objects_event(named);
    let lake = tempfile::tempdir().unwrap();
    let store =
        inlet::stage::table_store(&url::Url::from_directory_path(lake.path()).unwrap(), &Default::default()).unwrap();
    let quarantine = Quarantine::new(store.clone());
    let converter = Converter::new(source, FragmentStore::new(store), quarantine.clone(), schema, options);

    // The peak so far includes building the shape: start counting afresh.
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS");
    let baseline = peak_rss();
    let started = Instant::now();
    let report = runtime.block_on(converter.convert(&event)).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss();

    assert!(report.failed_messages.is_empty(), "{label}: {report:?}");
    assert_eq!((report.rows, report.quarantined), (rows, quarantined), "{label}: rows and quarantined lines");
    let what = format!("{label}: {:.0} MiB of NDJSON in {seconds:.1}s", mib(report.bytes_in));
    within_bound(&what, report.fragments.len(), baseline, peak, bound);
    runtime.block_on(quarantine.first_lines(shown)).unwrap()
}

#[test]
fn millions_of_empty_lines_stay_within_the_model() {
    within_model(shapes::empty_lines(4_000_000, 4), 0);
}

/// Memory follows rows times columns: the same lines against twenty columns.
#[test]
fn empty_lines_of_a_wide_schema_stay_within_the_model() {
    within_model(shapes::empty_lines(2_000_000, 20), 0);
}

/// Each decodes to more than a piece's worth of rows, so none is held decoded whole.
#[test]
fn many_objects_of_tiny_rows_at_once_stay_within_the_model() {
    within_model(shapes::many_objects_of_empty_lines(24, 300_000), 0);
}

/// Every line is quarantined, and the record streams out as they come.
#[test]
fn millions_of_refused_lines_are_quarantined_within_the_model() {
    let first = within_model(shapes::refused_lines(3_000_000), 2);
    assert_eq!(first.iter().map(|line| line.line).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(first[0].error, "expected an object");
}

/// The quarantine keeps 64 KiB of each, streamed.
#[test]
fn long_refused_lines_are_quarantined_within_the_model() {
    let first = within_model(shapes::long_refused_lines(2048, 512 << 10), 1);
    assert_eq!((first[0].line, first[0].raw.len()), (1, 64 * 1024));
    assert_eq!(first[0].error, "field c0: expected an integer");
}

/// Skipped to their end, each quarantined as too long, as one such line among ordinary ones is.
#[test]
fn lines_of_64_mib_are_quarantined_as_too_long_within_the_model() {
    let lines = within_model(shapes::huge_lines(16, 64 << 20), 100);
    let numbers: Vec<u64> = lines.iter().map(|line| line.line).collect();
    assert_eq!(numbers, (1..=16).filter(|line| *line != 8).collect::<Vec<_>>());
    for line in &lines {
        assert!(line.error.contains("over the limit of 1048576 (INLET_MAX_LINE_BYTES)"), "{}", line.error);
        assert_eq!(line.raw.len(), 64 * 1024);
    }
}

#[test]
fn very_wide_rows_stay_within_the_model() {
    within_model(shapes::wide_rows(6000, 500), 0);
}

#[test]
fn deeply_nested_values_stay_within_the_model() {
    within_model(shapes::deeply_nested(40_000, 5), 0);
}

#[test]
fn many_short_string_columns_stay_within_the_model() {
    within_model(shapes::short_string_columns(20_000, 200), 0);
}

/// The open writers together hold at most a fragment's worth, however many partitions are open.
#[test]
fn rows_over_thousands_of_partitions_stay_within_the_model() {
    within_model(shapes::many_partitions(400_000, 2000), 0);
}
