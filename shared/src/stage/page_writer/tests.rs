//! The page writer held to the parquet crate: files its reader reads back as written.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::levels::*;
use super::*;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_buffer::NullBuffer;
use bytes::Bytes;
use parquet::column::page::Page;

/// A file's rows as one batch, with the Arrow schema its footer gives.
fn read_back(file: Vec<u8>) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap().build().unwrap();
    let schema = reader.schema();
    concat(&schema, &reader.collect::<Result<Vec<_>, _>>().unwrap())
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).unwrap()
}

/// Pages without dictionaries or statistics: every value PLAIN.
fn plain_layout(page_bytes: usize, row_group_rows: usize) -> PageLayout {
    PageLayout { page_bytes, row_group_rows, row_group_bytes: usize::MAX, statistics: false, dictionary: false }
}

/// Pages as fragments keep them: dictionaries while values repeat, and statistics.
fn table_layout(page_bytes: usize, row_group_rows: usize) -> PageLayout {
    PageLayout { statistics: true, dictionary: true, ..plain_layout(page_bytes, row_group_rows) }
}

/// The codec fragments are written with.
fn zstd() -> PageCodec {
    PageCodec::Zstd(ZstdLevel::default())
}

fn write(batches: &[RecordBatch], codec: PageCodec, limits: PageLayout) -> Vec<u8> {
    let mut writer = PageFileWriter::try_new(&batches[0].schema(), codec, limits).unwrap().expect("supported");
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap()
}

/// Every way a value can be absent, in every type, nested every way the schema allows.
fn nested_schema() -> SchemaRef {
    let tag = Field::new("item", DataType::Utf8, true);
    let item = DataType::Struct(
        vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, true),
            Field::new("tags", DataType::List(Arc::new(tag.clone())), true),
        ]
        .into(),
    );
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Int64, true)].into(),
        ),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("small", DataType::Int32, true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "device",
            DataType::Struct(
                vec![
                    Field::new("os", DataType::Utf8, false),
                    Field::new("flags", DataType::List(Arc::new(tag.clone())), true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new("tags", DataType::List(Arc::new(tag)), true),
        Field::new("items", DataType::List(Arc::new(Field::new("item", item, true))), true),
        Field::new("attributes", DataType::Map(Arc::new(entries), false), true),
    ]))
}

/// `value`, or null one time in ten.
fn maybe(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> Value) -> Value {
    if rng.random_range(0..10) == 0 { Value::Null } else { value(rng) }
}

fn strings(rng: &mut StdRng) -> Value {
    let count = rng.random_range(0..4);
    Value::Array((0..count).map(|i| maybe(rng, |_| json!(format!("s{i}")))).collect())
}

fn random_row(rng: &mut StdRng, id: i64) -> Value {
    let item = |rng: &mut StdRng, i: usize| json!({"sku": format!("k{i}"), "qty": maybe(rng, |_| json!(i)), "tags": maybe(rng, strings)});
    json!({
        "id": id,
        "flag": maybe(rng, |rng| json!(rng.random_bool(0.5))),
        "small": maybe(rng, |rng| json!(rng.random_range(-5..5))),
        "ratio": maybe(rng, |rng| json!(rng.random::<f64>())),
        "at": maybe(rng, |_| json!("2026-05-16T10:00:00.123456Z")),
        "name": maybe(rng, |rng| json!("x".repeat(rng.random_range(0..20)))),
        "device": maybe(rng, |rng| json!({"os": "linux", "flags": maybe(rng, strings)})),
        "tags": maybe(rng, strings),
        "items": maybe(rng, |rng| {
            Value::Array((0..rng.random_range(0..4)).map(|i| maybe(rng, |rng| item(rng, i))).collect())
        }),
        "attributes": maybe(rng, |rng| {
            Value::Object((0..rng.random_range(0..3)).map(|i| (format!("a{i}"), maybe(rng, |_| json!(i * 10)))).collect())
        }),
    })
}

fn random_batch(seed: u64, rows: usize) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let lines: String = (0..rows).map(|id| random_row(&mut rng, id as i64).to_string() + "\n").collect();
    let mut reader =
        arrow_json::ReaderBuilder::new(nested_schema()).with_batch_size(rows.max(1)).build(lines.as_bytes()).unwrap();
    reader.next().unwrap().unwrap()
}

#[test]
fn nested_nullable_columns_read_back_as_written() {
    let unlimited = plain_layout(usize::MAX, usize::MAX);
    let tiny = plain_layout(64, 7);
    for seed in 0..40 {
        let batch = random_batch(seed, 1 + seed as usize * 5);
        // Slices start mid-buffer, as batches split by partition or by size do.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < batch.num_rows() {
            let length = rng.random_range(1..=batch.num_rows() - start);
            pieces.push(batch.slice(start, length));
            start += length;
        }
        let table = |layout: PageLayout| PageLayout { statistics: true, dictionary: true, ..layout };
        for (codec, limits) in [
            (zstd(), unlimited),
            (PageCodec::Uncompressed, tiny),
            (zstd(), tiny),
            (zstd(), table(tiny)),
            (zstd(), table(unlimited)),
        ] {
            assert_eq!(read_back(write(&pieces, codec, limits)), batch, "seed {seed} {codec:?}");
        }
    }
}

#[test]
fn the_reference_workload_reads_back_as_decoded() {
    use crate::lineage::FragmentSource;
    use crate::stage::fragment::{FragmentEncoding, FragmentWriter};
    let schema = crate::testing::schemas::events();
    let object =
        crate::lineage::SourceObject { bucket: "raw".into(), key: "k.json".into(), etag: None, ..Default::default() };
    let data = crate::testing::sample::ndjson_object(3, 0, 256 * 1024);
    let batches = crate::ingest::decode::JsonDecoder::new(schema.clone(), 100).decode(&object, &data).unwrap().batches;
    let mut read = Vec::new();
    for direct_pages in [true, false] {
        let encoding = FragmentEncoding { direct_pages, ..FragmentEncoding::default() };
        let mut writer = FragmentWriter::with_encoding(&schema.table, &encoding).unwrap();
        assert_eq!(writer.writes_pages_directly(), direct_pages);
        let source = FragmentSource::new(&object, 0, None);
        writer.write(source, &batches).unwrap();
        let fragment = crate::stage::fragment::decode("f".into(), Bytes::from(writer.finish("b").unwrap())).unwrap();
        read.push(concat(&schema.table, &fragment.batches));
    }
    assert_eq!(read[0], concat(&schema.table, &batches));
    assert_eq!(read[0], read[1]);
}

#[test]
fn pages_and_row_groups_close_at_their_limits() {
    let batch = random_batch(99, 300);
    let pieces: Vec<_> = (0..30).map(|i| batch.slice(i * 10, 10)).collect();
    let file = write(&pieces, zstd(), plain_layout(200, 64));
    let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.clone())).unwrap().metadata().clone();
    // 64 rows is reached after 7 batches of 10: 4 groups of 70 rows, then 20.
    let rows: Vec<i64> = metadata.row_groups().iter().map(|group| group.num_rows()).collect();
    assert_eq!(rows, [70, 70, 70, 70, 20]);
    assert_eq!(read_back(file), batch);
}

#[test]
fn narrow_and_binary_types_are_widened_as_parquet_stores_them() {
    let base = random_batch(5, 50);
    let cast = |column: &str, to: DataType| -> (Field, ArrayRef) {
        let array = base.column_by_name(column).unwrap();
        (Field::new(column, to.clone(), true), arrow_cast::cast(array, &to).unwrap())
    };
    let columns = [
        cast("small", DataType::Int8),
        cast("small", DataType::Int16),
        cast("small", DataType::Date32),
        cast("ratio", DataType::Float32),
        cast("name", DataType::Binary),
        cast("name", DataType::LargeUtf8),
        cast("name", DataType::LargeBinary),
        cast("at", DataType::Timestamp(TimeUnit::Millisecond, None)),
        cast("at", DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()))),
    ];
    let fields: Vec<Field> =
        columns.iter().enumerate().map(|(i, (field, _))| field.clone().with_name(format!("c{i}"))).collect();
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, array)| array).collect())
            .unwrap();
    let limits = plain_layout(100, 1000);
    assert_eq!(read_back(write(std::slice::from_ref(&batch), zstd(), limits)), batch);
}

#[test]
fn long_batches_are_paged_and_grouped_within_themselves() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let batch = random_batch(11, 5000);
    let file = write(std::slice::from_ref(&batch), zstd(), plain_layout(1, 2048));
    let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
    let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|group| group.num_rows()).collect();
    assert_eq!(groups, [2048, 2048, 904]);
    let pages = reader.get_row_group(0).unwrap().get_column_page_reader(0).unwrap().count();
    assert_eq!(pages, 2);
    assert_eq!(read_back(file), batch);
}

#[test]
fn a_batch_of_another_schema_is_refused() {
    let limits = plain_layout(100, 100);
    let mut writer = PageFileWriter::try_new(&nested_schema(), zstd(), limits).unwrap().unwrap();
    let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(other, vec![Arc::new(arrow_array::StringArray::from(vec!["a"]))]).unwrap();
    let err = writer.write(&batch).unwrap_err();
    assert!(err.to_string().contains("is not the fragment schema"), "{err}");
}

#[test]
fn unknown_types_are_left_to_arrow_writer() {
    for data_type in [
        DataType::UInt32,
        DataType::Decimal128(10, 2),
        DataType::Timestamp(TimeUnit::Second, None),
        DataType::LargeList(Arc::new(Field::new("item", DataType::Int64, true))),
        DataType::Utf8View,
    ] {
        let schema = Schema::new(vec![Field::new("x", data_type.clone(), true)]);
        let limits = plain_layout(100, 100);
        assert!(PageFileWriter::try_new(&schema, zstd(), limits).unwrap().is_none(), "{data_type}");
    }
}

#[test]
fn levels_use_runs_and_bit_packing_as_parquet_defines_them() {
    let mut out = Vec::new();
    assert_eq!(encode_levels(&[1; 20], 1, &mut out), 2);
    // One repeated run: header 20 << 1, value 1.
    assert_eq!(out, [40, 1]);
    out.clear();
    encode_levels(&[0, 1, 1, 0, 1], 1, &mut out);
    // One bit-packed group, padded: header (1 << 1) | 1, bits 0b10110.
    assert_eq!(out, [3, 0b10110]);
    out.clear();
    // Three literals borrow five from the run to fill their group; 10 remain to repeat.
    let mut levels = vec![2, 0, 3];
    levels.extend([1; 15]);
    encode_levels(&levels, 3, &mut out);
    // Width 2: levels 2, 0, 3, 1 fill the first byte, four 1s the second.
    assert_eq!(out, [3, 0b01_11_00_10, 0b01_01_01_01, 20, 1]);
}

#[test]
fn one_bit_levels_pack_as_the_general_packer_packs_them() {
    for pattern in 0..=255u8 {
        let bytes: Vec<u8> = (0..8).map(|bit| (pattern >> bit) & 1).collect();
        assert_eq!(gather_low_bits(u64::from_le_bytes(bytes.try_into().unwrap())), pattern);
    }
    let mut rng = StdRng::seed_from_u64(5);
    for length in [1usize, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000] {
        let levels: Vec<u8> = (0..length).map(|_| rng.random_range(0..2)).collect();
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        bit_pack(&levels, 1, &mut fast);
        varint((length.div_ceil(8) << 1) | 1, &mut general);
        pack_bits(levels.iter().map(|&level| u64::from(level)), 1, &mut general);
        assert_eq!(fast, general, "{length} levels");
    }
}

#[test]
fn runs_are_measured_across_words() {
    for length in [1, 7, 8, 9, 16, 17, 100] {
        let mut levels = vec![3; length];
        assert_eq!(run_length(&levels), length);
        levels.push(2);
        levels.extend([3; 9]);
        assert_eq!(run_length(&levels), length);
    }
}

#[test]
fn values_behind_a_null_list_are_skipped() {
    // Arrow lets a null list cover values; they are not part of any row.
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let values = arrow_array::Int64Array::from(vec![1, 2, 3, 4, 5]);
    let offsets = arrow_buffer::OffsetBuffer::new(vec![0, 2, 4, 4, 5].into());
    let nulls = NullBuffer::from(vec![true, false, true, true]);
    let list = arrow_array::ListArray::new(item.clone(), offsets, Arc::new(values), Some(nulls));
    let schema = Arc::new(Schema::new(vec![Field::new("l", DataType::List(item), true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(list)]).unwrap();
    let limits = plain_layout(100, 100);
    let read = read_back(write(std::slice::from_ref(&batch), zstd(), limits));
    let read = read.column(0).as_list::<i32>();
    assert!(read.is_null(1));
    assert_eq!(read.value(0).as_primitive::<Int64Type>().values(), &[1, 2]);
    assert_eq!(read.value(2).len(), 0);
    assert_eq!(read.value(3).as_primitive::<Int64Type>().values(), &[5]);
}

#[test]
fn pages_that_barely_compress_read_back() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut rng = StdRng::seed_from_u64(1);
    let schema = Arc::new(Schema::new(vec![
        Field::new("random", DataType::Int64, false),
        Field::new("constant", DataType::Int64, false),
    ]));
    let batches: Vec<RecordBatch> = (0..40)
        .map(|_| {
            let random = arrow_array::Int64Array::from_iter_values((0..64).map(|_| rng.random::<i64>()));
            let constant = arrow_array::Int64Array::from(vec![7; 64]);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(random), Arc::new(constant)]).unwrap()
        })
        .collect();
    let limits = plain_layout(256, usize::MAX);
    let file = write(&batches, zstd(), limits);
    let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
    // A page per batch, each compressed whatever that saves: V1 pages of a compressed chunk
    // have no other way.
    let pages = |column| reader.get_row_group(0).unwrap().get_column_page_reader(column).unwrap().count();
    assert_eq!(pages(0), 40);
    let chunk = |column| reader.metadata().row_group(0).column(column).clone();
    let constant = chunk(1);
    assert!(
        constant.compressed_size() < constant.uncompressed_size() / 4,
        "the constant column's pages are compressed: {} of {} bytes",
        constant.compressed_size(),
        constant.uncompressed_size()
    );
    assert_eq!(read_back(file), concat(&schema, &batches));
}

#[test]
fn strings_of_every_length_read_back() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let mut rng = StdRng::seed_from_u64(3);
    for count in [1, 2, 31, 32, 33, 127, 128, 129, 130, 300, 1000] {
        // Lengths from 0 to 70,000 bytes, in one page and in a page per piece of 7 values.
        let values: Vec<Option<String>> = (0..count)
            .map(|i| match rng.random_range(0..8) {
                0 => None,
                1 => Some("y".repeat(rng.random_range(0..70_000))),
                2 => Some(String::new()),
                _ => Some(format!("{i}").repeat(rng.random_range(1..4))),
            })
            .collect();
        let column = arrow_array::StringArray::from(values);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        for limits in [plain_layout(usize::MAX, usize::MAX), plain_layout(1, 50)] {
            let pieces: Vec<_> = (0..count).step_by(7).map(|at| batch.slice(at, 7.min(count - at))).collect();
            assert_eq!(read_back(write(&pieces, zstd(), limits)), batch, "{count} values");
        }
    }
    // Pages with no value at all: definition levels alone.
    let nulls = arrow_array::StringArray::from(vec![None::<&str>; 40]);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(nulls)]).unwrap();
    let limits = plain_layout(1, 100);
    assert_eq!(read_back(write(std::slice::from_ref(&batch), zstd(), limits)), batch);
}

#[test]
fn files_match_what_arrow_writer_reads_back() {
    let batch = random_batch(7, 500);
    let mut arrow = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
    arrow.write(&batch).unwrap();
    let expected = read_back(arrow.into_inner().unwrap());
    let limits = plain_layout(1024, 128);
    assert_eq!(read_back(write(std::slice::from_ref(&batch), zstd(), limits)), expected);
}

/// Values whose bounds take the format's special cases: NaN, signed zeros, long and multi-byte
/// strings, nulls, and a column with no value at all.
fn edge_batch(rows: usize) -> RecordBatch {
    let floats: arrow_array::Float64Array = (0..rows)
        .map(|i| match i % 7 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-0.0),
            3 => Some(0.0),
            _ => Some(i as f64 / 3.0),
        })
        .collect();
    let only_nan: arrow_array::Float32Array = (0..rows).map(|i| (i % 2 == 0).then_some(f32::NAN)).collect();
    let texts: arrow_array::StringArray = (0..rows)
        .map(|i| match i % 5 {
            0 => None,
            1 => Some(format!("{}{i}", "é".repeat(40))),
            2 => Some(format!("{}{i}", "\u{10FFFF}".repeat(20))),
            _ => Some(format!("kind-{}", i % 3)),
        })
        .collect();
    let nothing = arrow_array::Int64Array::from(vec![None::<i64>; rows]);
    let times =
        arrow_array::TimestampMicrosecondArray::from((0..rows as i64).map(|i| i * 1_000_123).collect::<Vec<_>>())
            .with_timezone("UTC");
    let flags: arrow_array::BooleanArray = (0..rows).map(|i| (i % 3 != 0).then_some(i % 2 == 0)).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("floats", Arc::new(floats)),
        ("only_nan", Arc::new(only_nan)),
        ("texts", Arc::new(texts)),
        ("nothing", Arc::new(nothing)),
        ("times", Arc::new(times)),
        ("flags", Arc::new(flags)),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn chunk_statistics_are_those_arrow_writer_writes() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    // Row groups close every 1,024 rows on both sides.
    for batch in [edge_batch(2500), random_batch(11, 2100)] {
        let rows = 1024;
        let properties =
            parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(rows)).build();
        let mut arrow = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).unwrap();
        arrow.write(&batch).unwrap();
        let expected = SerializedFileReader::new(Bytes::from(arrow.into_inner().unwrap())).unwrap();
        let layout = table_layout(512, rows);
        let ours = SerializedFileReader::new(Bytes::from(write(std::slice::from_ref(&batch), zstd(), layout))).unwrap();
        let (expected, ours) = (expected.metadata(), ours.metadata());
        assert_eq!(ours.num_row_groups(), expected.num_row_groups());
        for (group, (theirs, mine)) in expected.row_groups().iter().zip(ours.row_groups()).enumerate() {
            for (theirs, mine) in theirs.columns().iter().zip(mine.columns()) {
                let (theirs, mine) = (theirs.statistics().unwrap(), mine.statistics().expect("statistics written"));
                let column = mine.physical_type();
                assert_eq!(mine.min_bytes_opt(), theirs.min_bytes_opt(), "min, group {group} {column}");
                assert_eq!(mine.max_bytes_opt(), theirs.max_bytes_opt(), "max, group {group} {column}");
                assert_eq!(mine.null_count_opt(), theirs.null_count_opt(), "nulls, group {group} {column}");
                assert_eq!(mine.min_is_exact(), theirs.min_is_exact(), "exact min, group {group} {column}");
                assert_eq!(mine.max_is_exact(), theirs.max_is_exact(), "exact max, group {group} {column}");
            }
        }
    }
}

#[test]
fn dictionary_pages_read_back_and_give_way_to_plain_ones() {
    // Repeats first, then distinct values of 1 KiB each: the dictionary outgrows its limit
    // mid-chunk, and the chunk goes on PLAIN.
    let values: arrow_array::StringArray =
        (0..2500).map(|i| if i < 400 { Some(format!("kind-{}", i % 4)) } else { Some(format!("{i:01024}")) }).collect();
    let ids = arrow_array::Int64Array::from((0..2500).collect::<Vec<i64>>());
    let columns: Vec<(&str, ArrayRef)> = vec![("value", Arc::new(values)), ("id", Arc::new(ids))];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let plain = parquet::basic::Encoding::PLAIN;
    let layout = table_layout(64 * 1024, usize::MAX);
    let file = write(std::slice::from_ref(&batch), zstd(), layout);
    let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.clone())).unwrap().metadata().clone();
    let value = metadata.row_group(0).column(0);
    assert!(value.dictionary_page_offset().is_some(), "repeated values start a dictionary");
    assert!(value.encodings().any(|encoding| encoding == parquet::basic::Encoding::RLE_DICTIONARY));
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
    let pages: Vec<Page> =
        reader.get_row_group(0).unwrap().get_column_page_reader(0).unwrap().map(Result::unwrap).collect();
    let encodings: Vec<_> = pages
        .iter()
        .filter(|page| page.page_type() != parquet::basic::PageType::DICTIONARY_PAGE)
        .map(Page::encoding)
        .collect();
    assert_eq!(encodings.first(), Some(&parquet::basic::Encoding::RLE_DICTIONARY));
    assert_eq!(encodings.last(), Some(&plain), "pages after the dictionary's limit are {plain}");
    let id = metadata.row_group(0).column(1);
    assert!(id.dictionary_page_offset().is_none(), "distinct ids get no dictionary");
    assert_eq!(read_back(file), batch);
}

#[test]
fn row_groups_lie_back_to_back_at_the_offsets_the_footer_names() {
    // Several row groups, columns with and without a dictionary, nested leaves.
    let batch = random_batch(21, 600);
    let pieces: Vec<_> = (0..6).map(|i| batch.slice(i * 100, 100)).collect();
    let layout = table_layout(2048, 150);
    let file = write(&pieces, zstd(), layout);
    assert_eq!(&file[..4], b"PAR1");
    assert_eq!(&file[file.len() - 4..], b"PAR1");
    let footer = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap()) as usize;
    let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.clone())).unwrap().metadata().clone();
    assert_eq!(metadata.num_row_groups(), 3);
    let mut dictionaries = 0;
    let mut next = 4;
    for (ordinal, group) in metadata.row_groups().iter().enumerate() {
        assert_eq!(group.ordinal(), Some(ordinal as i16));
        assert_eq!(group.file_offset(), Some(next as i64), "a row group starts where the last one ended");
        assert_eq!(group.total_byte_size(), group.columns().iter().map(|c| c.uncompressed_size()).sum::<i64>());
        for column in group.columns() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            assert_eq!(start, next as i64, "{} starts where the chunk before it ended", column.column_path());
            if let Some(dictionary) = column.dictionary_page_offset() {
                dictionaries += 1;
                assert!(column.data_page_offset() > dictionary, "the dictionary page comes first");
            }
            next += column.compressed_size() as usize;
        }
    }
    assert!(dictionaries > 0, "some chunks keep a dictionary");
    assert_eq!(next, file.len() - 8 - footer, "the footer follows the last chunk");
    let footer_metadata = metadata.file_metadata();
    assert_eq!(footer_metadata.num_rows(), 600);
    assert!(footer_metadata.created_by().is_some_and(|by| by.starts_with("parquet-rs")));
    assert_eq!(footer_metadata.column_orders().map(Vec::len), Some(footer_metadata.schema_descr().num_columns()));
    // Every page reads from where the footer says, dictionary first.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
    for (index, group) in metadata.row_groups().iter().enumerate() {
        for (column, chunk) in group.columns().iter().enumerate() {
            let pages: Vec<Page> = reader
                .get_row_group(index)
                .unwrap()
                .get_column_page_reader(column)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let dictionary_first = pages[0].page_type() == parquet::basic::PageType::DICTIONARY_PAGE;
            assert_eq!(dictionary_first, chunk.dictionary_page_offset().is_some());
        }
    }
    assert_eq!(read_back(file), batch);
}

#[test]
fn row_groups_also_close_at_their_byte_limit() {
    // Text that repeats nowhere, in batches of 300 rows: the first page's 300 distinct values
    // end the dictionary, so the limit is reached by compressed pages of about 180 KB a batch.
    let mut rng = StdRng::seed_from_u64(5);
    let values: arrow_array::StringArray =
        (0..2400).map(|_| Some((0..1000).map(|_| rng.random_range('a'..='z')).collect::<String>())).collect();
    let ids = arrow_array::Int64Array::from((0..2400).collect::<Vec<i64>>());
    let columns: Vec<(&str, ArrayRef)> = vec![("id", Arc::new(ids)), ("text", Arc::new(values))];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let pieces: Vec<_> = (0..8).map(|i| batch.slice(i * 300, 300)).collect();
    let limit = 300 * 1024;
    let layout = PageLayout { row_group_bytes: limit, ..table_layout(16 * 1024, usize::MAX) };
    let file = write(&pieces, zstd(), layout);
    let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.clone())).unwrap().metadata().clone();
    let groups = metadata.row_groups();
    let sizes: Vec<_> = groups.iter().map(|g| (g.num_rows(), g.compressed_size())).collect();
    assert!(groups.len() >= 3, "row groups {sizes:?} for about 1.4 MB of pages");
    for group in groups {
        assert!(group.column(1).dictionary_page_offset().is_none(), "no dictionary: {sizes:?}");
    }
    for group in &groups[..groups.len() - 1] {
        // Closed after the step that takes its pages past the limit: by at most a step's
        // 300 KB of values, and not before the limit.
        let bytes = group.compressed_size() as usize;
        assert!(bytes >= limit && bytes < limit + 300 * 1000, "a row group of {bytes} bytes: {sizes:?}");
    }
    assert_eq!(groups.iter().map(|group| group.num_rows()).sum::<i64>(), 2400);
    assert_eq!(read_back(file), batch);
}
