//! A deterministic generator of the reference workload: application event logs as NDJSON,
//! about 2 KiB per row and 40 fields (nested struct, optional struct, list of strings, list of
//! structs, a map, ~10% nulls). Used by tests, the demo and the benchmarks, with
//! `schemas/events.schema.json` as its declared schema.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Uncompressed size of one reference object.
pub const OBJECT_BYTES: usize = 1024 * 1024;

const EVENT_TYPES: &[&str] =
    &["page_view", "click", "add_to_cart", "checkout", "login", "logout", "search", "api_call"];
const SEVERITIES: &[&str] = &["debug", "info", "info", "info", "warn", "error"];
const SERVICES: &[&str] = &["web", "api", "checkout", "search", "auth", "billing"];
const ENVIRONMENTS: &[&str] = &["prod", "prod", "prod", "staging", "dev"];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1"];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "GB", "JP", "BR", "IN", "ES", "IT", "NL"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "JPY"];
const OSES: &[&str] = &["ios", "android", "windows", "macos", "linux"];
const MODELS: &[&str] = &["iPhone15", "Pixel8", "GalaxyS24", "ThinkPad", "MacBookAir", "Desktop"];
const CITIES: &[&str] = &["Berlin", "Paris", "New York", "London", "Tokyo", "São Paulo", "Mumbai"];
const FLAGS: &[&str] = &["new_checkout", "dark_mode", "beta_search", "fast_path", "recs_v2", "one_click"];
const TAGS: &[&str] = &["sale", "new", "gift", "bulk", "fragile", "digital"];
const PATHS: &[&str] = &["/", "/search", "/cart", "/checkout", "/api/v1/items", "/api/v1/orders", "/login"];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "session",
    "checkout",
    "failed",
    "retrying",
    "cache",
    "miss",
    "hit",
    "upstream",
    "latency",
    "payment",
    "authorized",
    "inventory",
    "reserved",
    "timeout",
    "connection",
    "reset",
    "handler",
    "processed",
    "queue",
    "message",
    "delivered",
    "warehouse",
    "shipment",
];

#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    event_time: String,
    ingest_time_ms: i64,
    tenant_id: String,
    account_id: String,
    user_id: Option<String>,
    session_id: String,
    event_type: &'a str,
    severity: &'a str,
    service: &'a str,
    environment: &'a str,
    region: &'a str,
    country: Option<&'a str>,
    http_method: &'a str,
    currency: Option<&'a str>,
    message: String,
    user_agent: String,
    host: String,
    ip: String,
    trace_id: String,
    span_id: String,
    http_path: &'a str,
    http_status: i32,
    latency_ms: i64,
    bytes_sent: i64,
    retries: i32,
    sample_rate: f64,
    cart_total: Option<f64>,
    is_bot: bool,
    is_authenticated: Option<bool>,
    device: Device<'a>,
    geo: Option<Geo<'a>>,
    feature_flags: Vec<&'a str>,
    items: Vec<Item<'a>>,
    error_code: Option<String>,
    stack_trace: Option<String>,
    attributes: BTreeMap<String, String>,
    app_version: String,
    build_number: i32,
    experiment_group: Option<&'a str>,
}

#[derive(Serialize)]
struct Device<'a> {
    os: &'a str,
    version: String,
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct Geo<'a> {
    city: &'a str,
    lat: f64,
    lon: f64,
}

#[derive(Serialize)]
struct Item<'a> {
    sku: String,
    qty: i32,
    price: f64,
    tags: Vec<&'a str>,
}

/// Generates object number `index` of the workload seeded by `seed`: NDJSON of about
/// `target_bytes`, each line ending in `\n`. Same inputs, same bytes.
pub fn ndjson_object(seed: u64, index: u64, target_bytes: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(target_bytes + 4096);
    let mut row = 0u64;
    while out.len() < target_bytes {
        serde_json::to_writer(&mut out, &event(&mut rng, index, row)).expect("serializing to memory");
        out.push(b'\n');
        row += 1;
    }
    out
}

/// Compresses with zstd at the level services use (3).
pub fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).expect("zstd compression of an in-memory buffer")
}

fn pick<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.random_range(0..values.len())]
}

fn maybe<T>(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    // ~10% nulls on optional fields
    (rng.random_range(0..10) != 0).then(|| value(rng))
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

fn sentence(rng: &mut StdRng, words: usize) -> String {
    (0..words).map(|_| pick(rng, WORDS)).collect::<Vec<_>>().join(" ")
}

/// A random version-4 UUID's shape.
fn uuid_like(rng: &mut StdRng) -> String {
    format!("{}-{}-4{}-a{}-{}", hex(rng, 4), hex(rng, 2), &hex(rng, 2)[1..], &hex(rng, 2)[1..], hex(rng, 6))
}

fn user_agent(rng: &mut StdRng) -> String {
    format!(
        "Mozilla/5.0 ({}; {}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.{} Safari/537.36",
        pick(rng, OSES),
        pick(rng, MODELS),
        rng.random_range(100..140),
        rng.random_range(1000..9999),
        rng.random_range(10..200)
    )
}

fn items(rng: &mut StdRng) -> Vec<Item<'static>> {
    (0..rng.random_range(0..=20))
        .map(|_| Item {
            sku: format!("SKU-{:06}", rng.random_range(0..200_000)),
            qty: rng.random_range(1..5),
            price: (rng.random_range(100..100_000) as f64) / 100.0,
            tags: (0..rng.random_range(0..3)).map(|_| pick(rng, TAGS)).collect(),
        })
        .collect()
}

fn stack_trace(rng: &mut StdRng) -> String {
    (0..rng.random_range(3..10))
        .map(|depth| {
            let service = pick(rng, SERVICES);
            format!("  at com.example.{service}.Handler{depth}(Handler.java:{})", rng.random_range(10..900))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn event(rng: &mut StdRng, object: u64, row: u64) -> Event<'static> {
    let seconds = (object * 600 + row) % 86_400;
    let micros = rng.random_range(0..1_000_000);
    let event_time =
        format!("2026-05-16T{:02}:{:02}:{:02}.{:06}Z", seconds / 3600, (seconds / 60) % 60, seconds % 60, micros);
    let severity = pick(rng, SEVERITIES);
    let failed = severity == "error";
    let items = items(rng);
    let cart_total = items.iter().map(|item| item.price * item.qty as f64).sum::<f64>();
    let attributes = (0..rng.random_range(2..6)).map(|i| (format!("attr_{i}"), sentence(rng, 2))).collect();
    Event {
        event_id: uuid_like(rng),
        event_time,
        ingest_time_ms: 1_778_889_600_000 + (seconds as i64) * 1000 + rng.random_range(0..5000),
        tenant_id: format!("tenant-{:03}", rng.random_range(0..50)),
        account_id: format!("acct-{:06}", rng.random_range(0..100_000)),
        user_id: maybe(rng, |rng| format!("user-{:08}", rng.random_range(0..10_000_000))),
        session_id: hex(rng, 16),
        event_type: pick(rng, EVENT_TYPES),
        severity,
        service: pick(rng, SERVICES),
        environment: pick(rng, ENVIRONMENTS),
        region: pick(rng, REGIONS),
        country: maybe(rng, |rng| pick(rng, COUNTRIES)),
        http_method: pick(rng, METHODS),
        currency: maybe(rng, |rng| pick(rng, CURRENCIES)),
        message: {
            let words = rng.random_range(8..40);
            sentence(rng, words)
        },
        user_agent: user_agent(rng),
        host: format!("ip-10-0-{}-{}.ec2.internal", rng.random_range(0..255), rng.random_range(0..255)),
        ip: format!(
            "{}.{}.{}.{}",
            rng.random_range(1..255),
            rng.random::<u8>(),
            rng.random::<u8>(),
            rng.random::<u8>()
        ),
        trace_id: hex(rng, 16),
        span_id: hex(rng, 8),
        http_path: pick(rng, PATHS),
        http_status: if failed { 500 + rng.random_range(0..4) } else { 200 + rng.random_range(0..5) },
        latency_ms: rng.random_range(1..5000),
        bytes_sent: rng.random_range(200..2_000_000),
        retries: rng.random_range(0..4),
        sample_rate: [1.0, 0.5, 0.1, 0.01][rng.random_range(0..4)],
        cart_total: (!items.is_empty()).then_some((cart_total * 100.0).round() / 100.0),
        is_bot: rng.random_range(0..20) == 0,
        is_authenticated: maybe(rng, |rng| rng.random_bool(0.7)),
        device: Device {
            os: pick(rng, OSES),
            version: format!("{}.{}.{}", rng.random_range(10..18), rng.random_range(0..10), rng.random_range(0..10)),
            model: maybe(rng, |rng| pick(rng, MODELS)),
        },
        geo: maybe(rng, |rng| Geo {
            city: pick(rng, CITIES),
            lat: rng.random_range(-90.0..90.0),
            lon: rng.random_range(-180.0..180.0),
        }),
        feature_flags: (0..rng.random_range(0..4)).map(|_| pick(rng, FLAGS)).collect(),
        items,
        error_code: failed.then(|| format!("E{:04}", rng.random_range(0..500))),
        stack_trace: failed.then(|| stack_trace(rng)),
        attributes,
        app_version: format!("{}.{}.{}", rng.random_range(1..4), rng.random_range(0..20), rng.random_range(0..50)),
        build_number: rng.random_range(1000..9000),
        experiment_group: maybe(rng, |rng| ["control", "variant_a", "variant_b"][rng.random_range(0..3)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_sized() {
        let a = ndjson_object(7, 3, 64 * 1024);
        let b = ndjson_object(7, 3, 64 * 1024);
        assert_eq!(a, b);
        assert_ne!(a, ndjson_object(7, 4, 64 * 1024));
        assert!(a.len() >= 64 * 1024 && a.len() < 64 * 1024 + 8192);
        let lines = a.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        assert!(lines > 10);
    }
}
