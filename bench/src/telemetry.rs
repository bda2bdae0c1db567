//! A second workload, shaped unlike the reference one (`schemas/telemetry.schema.json`): wide
//! rows (63 top-level fields, most of them numbers), long free text with escapes and non-ASCII
//! characters, structs four levels deep and lists of structs holding lists of structs, values
//! that rarely repeat, and every line with its own key order and its own set of fields (absent,
//! null or present, with undeclared ones now and then). Nothing in it comes from the reference
//! generator, so a fast path tuned to that sample shows here.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The declared schema of this workload.
pub const SCHEMA: &str = include_str!("../../schemas/telemetry.schema.json");

/// Where the schema lives, for error messages and the peers.
pub const SCHEMA_PATH: &str = "schemas/telemetry.schema.json";

/// Object number `index`: NDJSON of about `target_bytes`. Same inputs, same bytes.
pub fn ndjson_object(seed: u64, index: u64, target_bytes: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut out = String::with_capacity(target_bytes + (16 << 10));
    while out.len() < target_bytes {
        out.push_str(&line(&mut rng));
        out.push('\n');
    }
    out.into_bytes()
}

/// One record: its members in a random order, each optional one absent or null now and then.
fn line(rng: &mut StdRng) -> String {
    let mut members: Vec<String> = Vec::with_capacity(72);
    let mut member = |rng: &mut StdRng, name: &str, value: String| match rng.random_range(0..20) {
        0..=2 => {}
        3 => members.push(format!("\"{name}\":null")),
        _ => members.push(format!("\"{name}\":{value}")),
    };
    let id = quoted(&hex(rng, 32));
    member(rng, "id", id);
    let ts = timestamp(rng);
    member(rng, "ts", ts);
    let (year, month, day) = (rng.random_range(1970..2100), rng.random_range(1..=12), rng.random_range(1..=28));
    member(rng, "day", format!("\"{year:04}-{month:02}-{day:02}\""));
    let host = quoted(&format!("ip-{}.{}", hex(rng, 12), token(rng, 3, 8)));
    member(rng, "host", host);
    let seq = rng.random::<i64>().to_string();
    member(rng, "seq", seq);
    let shard = rng.random::<i32>().to_string();
    member(rng, "shard", shard);
    for i in 0..24 {
        let value = double(rng);
        member(rng, &format!("m{i:02}"), value);
    }
    for i in 0..12 {
        let bits = rng.random_range(1..63);
        let value = rng.random_range(-(1i64 << bits)..(1i64 << bits)).to_string();
        member(rng, &format!("c{i:02}"), value);
    }
    for i in 0..6 {
        let value = rng.random_bool(0.5).to_string();
        member(rng, &format!("f{i}"), value);
    }
    for i in 0..10 {
        let value = quoted(&token(rng, 4, 24));
        member(rng, &format!("l{i:02}"), value);
    }
    let length = rng.random_range(200..6000);
    let body = quoted(&text(rng, length));
    member(rng, "body", body);
    let path = quoted(&(0..rng.random_range(1..7)).map(|_| format!("/{}", token(rng, 2, 12))).collect::<String>());
    member(rng, "path", path);
    let context = nested(rng);
    member(rng, "ctx", context);
    let spans = list(rng, 0, 6, span);
    member(rng, "spans", spans);
    let tags = list(rng, 0, 8, |rng| quoted(&token(rng, 3, 10)));
    member(rng, "tags", tags);
    if rng.random_bool(0.15) {
        let extra = format!("{{\"{}\":[{}, {}]}}", token(rng, 3, 8), double(rng), quoted(&token(rng, 1, 30)));
        let name = format!("x_{}", token(rng, 2, 6));
        member(rng, &name, extra);
    }
    members.shuffle(rng);
    format!("{{{}}}", members.join(","))
}

/// `ctx`: four structs deep, with a list of numbers at the bottom.
fn nested(rng: &mut StdRng) -> String {
    let f = list(rng, 0, 12, |rng| rng.random::<i64>().to_string());
    let mut bottom =
        [format!("\"d\":{}", quoted(&text(rng, 40))), format!("\"e\":{}", double(rng)), format!("\"f\":{f}")];
    bottom.shuffle(rng);
    format!("{{\"a\":{{\"b\":{{\"c\":{{{}}}}}}}}}", bottom.join(","))
}

/// One span: attributes and events, each a list of structs, the events holding a struct.
fn span(rng: &mut StdRng) -> String {
    let attributes = list(rng, 0, 5, |rng| {
        let length = rng.random_range(1..80);
        format!("{{\"k\":{},\"v\":{}}}", quoted(&token(rng, 2, 16)), quoted(&text(rng, length)))
    });
    let events = list(rng, 0, 3, |rng| {
        let detail = format!("{{\"text\":{},\"code\":{}}}", quoted(&text(rng, 30)), rng.random::<i32>());
        format!("{{\"at\":{},\"name\":{},\"detail\":{detail}}}", timestamp(rng), quoted(&token(rng, 3, 14)))
    });
    let parent = if rng.random_bool(0.3) { "null".to_string() } else { quoted(&hex(rng, 16)) };
    let mut members = [
        format!("\"sid\":{}", quoted(&hex(rng, 16))),
        format!("\"parent\":{parent}"),
        format!("\"start\":{}", timestamp(rng)),
        format!("\"dur\":{}", rng.random_range(0..10_000_000_000i64)),
        format!("\"ok\":{}", rng.random_bool(0.9)),
        format!("\"attrs\":{attributes}"),
        format!("\"events\":{events}"),
    ];
    members.shuffle(rng);
    format!("{{{}}}", members.join(","))
}

fn list(rng: &mut StdRng, min: usize, max: usize, item: impl Fn(&mut StdRng) -> String) -> String {
    let items: Vec<String> = (0..rng.random_range(min..=max)).map(|_| item(rng)).collect();
    format!("[{}]", items.join(","))
}

/// A double of any magnitude and sign, as serde_json writes it (shortest round trip).
fn double(rng: &mut StdRng) -> String {
    let magnitude = 10f64.powi(rng.random_range(-12..15));
    let value: f64 = rng.random_range(-1.0..1.0) * magnitude;
    serde_json::to_string(&value).expect("a finite double")
}

/// A UTC timestamp with 0, 3 or 6 fraction digits.
fn timestamp(rng: &mut StdRng) -> String {
    let fraction = match rng.random_range(0..3) {
        0 => String::new(),
        1 => format!(".{:03}", rng.random_range(0..1000)),
        _ => format!(".{:06}", rng.random_range(0..1_000_000)),
    };
    format!(
        "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z\"",
        rng.random_range(1990..2040),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60)
    )
}

fn hex(rng: &mut StdRng, digits: usize) -> String {
    (0..digits).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit")).collect()
}

/// A random token of lowercase letters and digits: values that rarely repeat.
fn token(rng: &mut StdRng, min: usize, max: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..rng.random_range(min..=max)).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// Free text of about `length` characters: random words, with quotes, backslashes, control
/// characters and non-ASCII letters now and then.
fn text(rng: &mut StdRng, length: usize) -> String {
    const ODD: &[&str] = &["\"", "\\", "\n", "\t", "é", "ü", "東京", "😀", "</>", "{x}"];
    let mut text = String::with_capacity(length + 16);
    while text.len() < length {
        if rng.random_bool(0.04) {
            text.push_str(ODD[rng.random_range(0..ODD.len())]);
        } else {
            text.push_str(&token(rng, 1, 11));
        }
        text.push(' ');
    }
    text
}

/// `text` as a JSON string (escaped as serde_json escapes it).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}
