//! Objects whose shape, not size, tests the converter's memory bound: tiny lines that decode to
//! far more than their text, refused lines, lines past the line limit, wide and deep rows, rows
//! over many partitions. Built as zstd streams, never held whole as text; used by
//! `shared/tests/converter_memory.rs` and `make bench` alike.

use std::io::Write;

use crate::partition::PartitionSpec;
use crate::schema::Layout;

/// A shape: a schema, a layout, and objects (key, stored zstd bytes), with what they should give.
pub struct Shape {
    /// What it is, for reports.
    pub label: String,
    /// The declared schema, as JSON.
    pub schema: String,
    /// Partitioning and the rest of the layout.
    pub layout: Layout,
    /// Keys and their stored (zstd) bytes.
    pub objects: Vec<(String, Vec<u8>)>,
    /// Rows the objects hold.
    pub rows: u64,
    /// Lines that must be quarantined.
    pub quarantined: u64,
}

/// A zstd object of `lines` lines, the `index`th written by `line` (without its line break).
pub fn zstd_lines(lines: u64, mut line: impl FnMut(u64, &mut Vec<u8>)) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("a zstd encoder");
    let mut block = Vec::with_capacity(1 << 20);
    for index in 0..lines {
        line(index, &mut block);
        block.push(b'\n');
        if block.len() >= 1 << 20 {
            encoder.write_all(&block).expect("compressing in memory");
            block.clear();
        }
    }
    encoder.write_all(&block).expect("compressing in memory");
    encoder.finish().expect("compressing in memory")
}

/// A schema of `count` nullable columns `c0`, `c1`, ... of four types in turn.
pub fn nullable_columns(count: usize) -> String {
    let types = ["long", "string", "double", "timestamp"];
    let fields: Vec<String> =
        (0..count).map(|i| format!(r#"{{"name":"c{i}","type":"{}"}}"#, types[i % types.len()])).collect();
    format!(r#"{{"fields":[{}]}}"#, fields.join(","))
}

fn one(label: String, schema: String, key: &str, stored: Vec<u8>, rows: u64, quarantined: u64) -> Shape {
    Shape { label, schema, layout: Layout::default(), objects: vec![(key.to_string(), stored)], rows, quarantined }
}

/// One object of `lines` lines `{}` against `columns` nullable columns: three bytes of text
/// per row of nulls and lineage.
pub fn empty_lines(lines: u64, columns: usize) -> Shape {
    let stored = zstd_lines(lines, |_, out| out.extend_from_slice(b"{}"));
    let label = format!("{} lines `{{}}`, {columns} nullable columns", count(lines));
    one(label, nullable_columns(columns), "svc/empty.json.zst", stored, lines, 0)
}

/// `objects` objects of `lines` lines `{}` each, converted in one batch.
pub fn many_objects_of_empty_lines(objects: u64, lines: u64) -> Shape {
    let stored = zstd_lines(lines, |_, out| out.extend_from_slice(b"{}"));
    let objects_list = (0..objects).map(|i| (format!("svc/tiny-{i:04}.json.zst"), stored.clone())).collect();
    Shape {
        label: format!("{objects} objects of {} lines `{{}}`", count(lines)),
        schema: nullable_columns(4),
        layout: Layout::default(),
        objects: objects_list,
        rows: objects * lines,
        quarantined: 0,
    }
}

/// One object of `lines` lines `x`, every one refused.
pub fn refused_lines(lines: u64) -> Shape {
    let stored = zstd_lines(lines, |_, out| out.push(b'x'));
    one(format!("{} refused lines", count(lines)), nullable_columns(4), "svc/refused.json.zst", stored, 0, lines)
}

/// One object of `lines` lines of `bytes` each, refused for their value (a string for a long).
pub fn long_refused_lines(lines: u64, bytes: usize) -> Shape {
    let line = format!(r#"{{"c0":"{}"}}"#, "y".repeat(bytes.saturating_sub(10)));
    let stored = zstd_lines(lines, |_, out| out.extend_from_slice(line.as_bytes()));
    let label = format!("{} refused lines of {} KiB", count(lines), bytes >> 10);
    one(label, nullable_columns(4), "svc/long-refused.json.zst", stored, 0, lines)
}

/// One object of `lines` lines of `bytes` each (past any line limit), but for its eighth line,
/// an ordinary row.
pub fn huge_lines(lines: u64, bytes: usize) -> Shape {
    let line = format!(r#"{{"c1":"{}"}}"#, "z".repeat(bytes.saturating_sub(10)));
    let stored = zstd_lines(lines, |index, out| {
        if index == 7 {
            out.extend_from_slice(br#"{"c0":7}"#);
        } else {
            out.extend_from_slice(line.as_bytes());
        }
    });
    let label = format!("{lines} lines of {} MiB but one", bytes >> 20);
    one(label, nullable_columns(4), "svc/huge-lines.json.zst", stored, 1, lines - 1)
}

/// One object of `lines` rows of `columns` long columns, every field present.
pub fn wide_rows(lines: u64, columns: usize) -> Shape {
    let fields: Vec<String> = (0..columns).map(|i| format!(r#"{{"name":"w{i}","type":"long"}}"#)).collect();
    let schema = format!(r#"{{"fields":[{}]}}"#, fields.join(","));
    let stored = zstd_lines(lines, |index, out| {
        out.push(b'{');
        for column in 0..columns {
            if column > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!(r#""w{column}":{}"#, index * 1000 + column as u64).as_bytes());
        }
        out.push(b'}');
    });
    one(format!("{} rows of {columns} columns", count(lines)), schema, "svc/wide.json.zst", stored, lines, 0)
}

/// One object of `lines` rows holding lists of structs of lists, `levels` list levels deep.
pub fn deeply_nested(lines: u64, levels: usize) -> Shape {
    let mut data_type = r#"{"list":"long"}"#.to_string();
    let mut value = "[1,2,3]".to_string();
    for level in 1..levels {
        data_type = format!(r#"{{"list":{{"struct":[{{"name":"n{level}","type":{data_type}}}]}}}}"#);
        value = format!(r#"[{{"n{level}":{value}}},{{"n{level}":{value}}}]"#);
    }
    let schema = format!(r#"{{"fields":[{{"name":"deep","type":{data_type}}}]}}"#);
    let line = format!(r#"{{"deep":{value}}}"#);
    let stored = zstd_lines(lines, |_, out| out.extend_from_slice(line.as_bytes()));
    one(format!("{} rows nested {levels} lists deep", count(lines)), schema, "svc/deep.json.zst", stored, lines, 0)
}

/// One object of `lines` rows of `columns` one-character string columns.
pub fn short_string_columns(lines: u64, columns: usize) -> Shape {
    let fields: Vec<String> = (0..columns).map(|i| format!(r#"{{"name":"s{i}","type":"string"}}"#)).collect();
    let schema = format!(r#"{{"fields":[{}]}}"#, fields.join(","));
    let values: Vec<String> =
        (0..columns).map(|i| format!(r#""s{i}":"{}""#, char::from(b'a' + (i % 26) as u8))).collect();
    let line = format!("{{{}}}", values.join(","));
    let stored = zstd_lines(lines, |_, out| out.extend_from_slice(line.as_bytes()));
    let label = format!("{} rows of {columns} one-character strings", count(lines));
    one(label, schema, "svc/strings.json.zst", stored, lines, 0)
}

/// One object of `lines` rows whose timestamps fall on `dates` dates in turn, in a table
/// partitioned by date.
pub fn many_partitions(lines: u64, dates: u64) -> Shape {
    let schema = r#"{"fields":[{"name":"at","type":"timestamp","nullable":false},{"name":"v","type":"string"}]}"#;
    let pad = "p".repeat(100);
    let stored = zstd_lines(lines, |index, out| {
        let at = 1_600_000_000 + (index % dates) * 86_400;
        out.extend_from_slice(format!(r#"{{"at":{at},"v":"{pad}{index}"}}"#).as_bytes());
    });
    let partition: PartitionSpec = "date=at".parse().expect("a valid partition spec");
    Shape {
        label: format!("{} rows over {} dates", count(lines), count(dates)),
        schema: schema.to_string(),
        layout: Layout { partition: Some(partition), ..Layout::default() },
        objects: vec![("svc/dates.json.zst".to_string(), stored)],
        rows: lines,
        quarantined: 0,
    }
}

/// `1,234,567` as `1.2 M`, `2,048` as `2,048`.
fn count(n: u64) -> String {
    match n {
        1_000_000.. => format!("{:.0} M", n as f64 / 1e6),
        10_000.. => format!("{} k", n / 1000),
        _ => n.to_string(),
    }
}
