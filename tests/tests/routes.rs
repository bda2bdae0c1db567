//! Several tables from one bucket, on LocalStack: S3 sends its events to EventBridge, a rule per
//! route forwards each service's objects to the one ingest queue, and the converter, reading a
//! routing file, stages each object in its own table; the compactor compacts each table.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use aws_sdk_s3::types::{EventBridgeConfiguration, NotificationConfiguration};
use inlet::testing::{sample, schemas};
use inlet_tests::{LocalStack, Pipeline, PipelineOptions, read_table};
use serde_json::Value;

const API_SCHEMA: &str =
    r#"{"fields":[{"name":"request_id","type":"string","nullable":false},{"name":"status","type":"long"}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn two_tables_from_one_bucket_through_eventbridge_each_get_their_own_rows() {
    let localstack = LocalStack::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.schema.json"), API_SCHEMA).unwrap();
    // The lake bucket is made by the deployment; its name is known only after, so the routing
    // file names a bucket made here.
    let lake = format!("lake-routes-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    localstack.s3.create_bucket().bucket(&lake).send().await.unwrap();
    let (web_uri, api_uri) = (format!("s3://{lake}/web_events"), format!("s3://{lake}/api_events"));
    let routes = serde_json::json!({"routes": [
        {"name": "web", "prefix": "web/", "table_uri": web_uri,
         "schema": schemas::events_path(), "partition_by": "date=key"},
        {"name": "api", "prefix": "api/", "table_uri": api_uri, "schema": "api.schema.json"}
    ]});
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let options = PipelineOptions {
        environment: vec![("INLET_ROUTES".into(), dir.path().join("routes.json").display().to_string())],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "routes", options).await.unwrap();

    // S3 → EventBridge, and one rule per route → the ingest queue.
    let eventbridge = NotificationConfiguration::builder()
        .event_bridge_configuration(EventBridgeConfiguration::builder().build())
        .build();
    let s3 = &localstack.s3;
    s3.put_bucket_notification_configuration()
        .bucket(&pipeline.raw_bucket)
        .notification_configuration(eventbridge)
        .send()
        .await
        .unwrap();
    let queue_arn = localstack
        .sqs
        .get_queue_attributes()
        .queue_url(&pipeline.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|attributes| attributes.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .unwrap();
    let events = aws_sdk_eventbridge::Client::new(&localstack.sdk);
    for prefix in ["web/", "api/"] {
        let rule = format!("{}-{}", pipeline.name, prefix.trim_end_matches('/'));
        let pattern = serde_json::json!({
            "source": ["aws.s3"], "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [pipeline.raw_bucket]}, "object": {"key": [{"prefix": prefix}]}}
        });
        events.put_rule().name(&rule).event_pattern(pattern.to_string()).send().await.unwrap();
        let target = Target::builder().id("ingest").arn(&queue_arn).build().unwrap();
        events.put_targets().rule(&rule).targets(target).send().await.unwrap();
    }

    // Two web objects, two api objects, and one object no rule forwards.
    let mut web_ids = Vec::new();
    for index in 0..2 {
        let ndjson = sample::ndjson_object(7, index, 16 * 1024);
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            web_ids.push(serde_json::from_slice::<Value>(line).unwrap()["event_id"].as_str().unwrap().to_string());
        }
        let key = format!("web/date=2026-05-16/part-{index}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
    }
    let mut api_rows = BTreeMap::new();
    for index in 0..2 {
        let mut ndjson = String::new();
        for line in 0..50 {
            let id = format!("r{index}-{line}");
            ndjson.push_str(&format!("{{\"request_id\":\"{id}\",\"status\":{}}}\n", 200 + line));
            api_rows.insert(id, 200 + line);
        }
        let key = format!("api/2026/05/16/batch-{index}.json");
        pipeline.put(&key, ndjson.into_bytes()).await.unwrap();
    }
    pipeline.put("unrouted/x.json", b"{}\n".to_vec()).await.unwrap();

    let staged = |uri: String| {
        let store = inlet::stage::table_store(&url::Url::parse(&uri).unwrap(), &localstack.storage_options()).unwrap();
        async move {
            let fragments = inlet::stage::FragmentStore::new(store);
            let mut sources = Vec::new();
            for meta in fragments.list().await.unwrap() {
                sources.extend(fragments.info(&meta).await.unwrap().sources.into_iter().map(|s| s.id.uri));
            }
            sources.sort();
            sources.dedup();
            sources
        }
    };
    let started = std::time::Instant::now();
    loop {
        let (web, api) = (staged(web_uri.clone()).await, staged(api_uri.clone()).await);
        if web.len() == 2 && api.len() == 2 {
            assert!(web.iter().all(|uri| uri.contains("/web/")) && api.iter().all(|uri| uri.contains("/api/")));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "staged: web {web:?}, api {api:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // One table by name, then every table (as the schedule does).
    let api = pipeline.compact(serde_json::json!({"force": true, "table": "api"})).await.unwrap();
    assert_eq!(api["rows"].as_u64(), Some(100), "{api}");
    let both = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(both["tables"]["web"]["rows"].as_u64(), Some(web_ids.len() as u64), "{both}");
    let unknown = pipeline.compact(serde_json::json!({"table": "billing"})).await.unwrap_err().to_string();
    assert!(unknown.contains("this compactor serves web") && unknown.contains("api"), "{unknown}");

    let web_table = read_table(&localstack, &web_uri, true).await.unwrap();
    let mut landed: Vec<String> =
        web_table.rows.iter().map(|row| row["event_id"].as_str().unwrap().to_string()).collect();
    landed.sort();
    web_ids.sort();
    assert_eq!(landed, web_ids, "the web table holds the web objects' rows, once");
    let api_table = read_table(&localstack, &api_uri, true).await.unwrap();
    let landed: BTreeMap<String, i64> = api_table
        .rows
        .iter()
        .map(|row| (row["request_id"].as_str().unwrap().to_string(), row["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(landed.len() as u64, api_table.num_rows);
    assert_eq!(landed, api_rows, "the api table holds the api objects' rows, once, with its own schema");
    assert_eq!(pipeline.queue_depth(&pipeline.queue_url).await.unwrap(), 0);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0, "no rule forwarded the unrouted object");
}

/// Waits until the fragments staged in each table hold `sources` sources.
async fn wait_staged(localstack: &LocalStack, tables: &[&str], sources: usize) {
    let started = std::time::Instant::now();
    loop {
        let mut counts = Vec::new();
        for uri in tables {
            let store =
                inlet::stage::table_store(&url::Url::parse(uri).unwrap(), &localstack.storage_options()).unwrap();
            let fragments = inlet::stage::FragmentStore::new(store);
            let mut staged = Vec::new();
            for meta in fragments.list().await.unwrap() {
                staged.extend(fragments.info(&meta).await.unwrap().sources.into_iter().map(|s| s.id.uri));
            }
            staged.sort();
            staged.dedup();
            counts.push(staged.len());
        }
        if counts.iter().all(|count| *count == sources) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "staged sources per table: {counts:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_cannot_take_its_schema_fails_alone_while_the_others_commit() {
    let localstack = LocalStack::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id.schema.json"), schemas::ID.text).unwrap();
    let lake = format!("lake-isolated-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    localstack.s3.create_bucket().bucket(&lake).send().await.unwrap();
    let (good_uri, bad_uri) = (format!("s3://{lake}/good_events"), format!("s3://{lake}/bad_events"));
    // The bad table already holds `id` as text; the declared schema says long.
    let as_text = inlet::schema::TableSchema::parse(r#"{"fields":[{"name":"id","type":"string"}]}"#, "text").unwrap();
    let maintenance = inlet::config::Maintenance { checkpoint_interval: 100, log_retention_days: 30 };
    let url = url::Url::parse(&bad_uri).unwrap();
    inlet::commit::open_or_create(&url, &localstack.storage_options(), &as_text, &maintenance.into()).await.unwrap();
    let routes = serde_json::json!({"routes": [
        {"name": "good", "prefix": "good/", "table_uri": good_uri, "schema": "id.schema.json"},
        {"name": "bad", "prefix": "bad/", "table_uri": bad_uri, "schema": "id.schema.json"}
    ]});
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let options = PipelineOptions {
        environment: vec![("INLET_ROUTES".into(), dir.path().join("routes.json").display().to_string())],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "isolated", options).await.unwrap();
    for (prefix, first) in [("good", 0), ("bad", 100)] {
        let lines: String = (first..first + 5).map(|id| format!("{{\"id\":{id}}}\n")).collect();
        let key = format!("{prefix}/part-0.json.zst");
        pipeline.put(&key, sample::zstd_compress(lines.as_bytes())).await.unwrap();
    }
    wait_staged(&localstack, &[&good_uri, &bad_uri], 1).await;

    // The compactor started (the misfit did not stop it), committed the good table, and failed
    // the invocation naming the bad one's schema.
    let failed = pipeline.compact(serde_json::json!({"force": true})).await.unwrap_err().to_string();
    assert!(failed.contains("Inlet.Schema") && failed.contains("bad_events"), "{failed}");
    let good = read_table(&localstack, &good_uri, true).await.unwrap();
    assert_eq!(good.num_rows, 5, "the good table committed");
    wait_staged(&localstack, &[&bad_uri], 1).await;

    // Fixed (the table recreated): the running compactor checks again and commits its rows.
    let log: Vec<String> = localstack
        .s3
        .list_objects_v2()
        .bucket(&lake)
        .prefix("bad_events/_delta_log/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_string))
        .collect();
    for key in log {
        localstack.s3.delete_object().bucket(&lake).key(key).send().await.unwrap();
    }
    let both = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(both["tables"]["bad"]["rows"].as_u64(), Some(5), "{both}");
    let bad = read_table(&localstack, &bad_uri, true).await.unwrap();
    let mut ids: Vec<i64> = bad.rows.iter().map(|row| row["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (100..105).collect::<Vec<_>>(), "nothing lost while it waited");
}

/// Polls `table_uri` until it holds `rows` rows, and gives its rows.
async fn wait_rows(
    localstack: &LocalStack,
    table_uri: &str,
    rows: u64,
    timeout: Duration,
) -> Vec<serde_json::Map<String, Value>> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(table) = read_table(localstack, table_uri, true).await
            && table.num_rows >= rows
        {
            return table.rows;
        }
        assert!(started.elapsed() < timeout, "{table_uri} never held {rows} rows in {timeout:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The metric lines a function's log holds for `table` with `metric` above zero.
fn metric_lines(log: &str, table: &str, metric: &str) -> usize {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["Table"] == table && line[metric].as_f64().is_some_and(|value| value > 0.0))
        .count()
}

/// Three tables on the commit queue: one takes its rows as usual, one's table cannot take its
/// declared schema, one's schema is not deployed yet. The good table's rows are committed by
/// its announcements while the others fail, each with its own metric; once each is fixed, its
/// rows land, each once.
#[tokio::test(flavor = "multi_thread")]
async fn on_the_commit_queue_a_broken_table_fails_alone_and_loses_nothing_once_fixed() {
    let localstack = LocalStack::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id.schema.json"), schemas::ID.text).unwrap();
    let lake = format!("lake-broken-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    localstack.s3.create_bucket().bucket(&lake).send().await.unwrap();
    let uri = |table: &str| format!("s3://{lake}/{table}");
    // The misfit table already holds `id` as text; the declared schema says long.
    let as_text = inlet::schema::TableSchema::parse(r#"{"fields":[{"name":"id","type":"string"}]}"#, "text").unwrap();
    let maintenance = inlet::config::Maintenance { checkpoint_interval: 100, log_retention_days: 30 };
    let misfit_url = url::Url::parse(&uri("misfit")).unwrap();
    inlet::commit::open_or_create(&misfit_url, &localstack.storage_options(), &as_text, &maintenance.into())
        .await
        .unwrap();
    let late_schema = format!("s3://{lake}/config/late.schema.json");
    let routes = serde_json::json!({"routes": [
        {"name": "good", "prefix": "good/", "table_uri": uri("good"), "schema": "id.schema.json"},
        {"name": "misfit", "prefix": "misfit/", "table_uri": uri("misfit"), "schema": "id.schema.json"},
        {"name": "late", "prefix": "late/", "table_uri": uri("late"), "schema": late_schema}
    ]});
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let options = PipelineOptions {
        environment: vec![("INLET_ROUTES".into(), dir.path().join("routes.json").display().to_string())],
        commit_queue: true,
        max_receive_count: 20,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "broken", options).await.unwrap();
    let started = std::time::Instant::now();
    for (prefix, first) in [("good", 0), ("misfit", 100), ("late", 200)] {
        let lines: String = (first..first + 5).map(|id| format!("{{\"id\":{id}}}\n")).collect();
        pipeline.put(&format!("{prefix}/part-0.json.zst"), sample::zstd_compress(lines.as_bytes())).await.unwrap();
    }

    // The good table commits through the commit queue, nothing asking for it.
    let good = wait_rows(&localstack, &uri("good"), 5, Duration::from_secs(120)).await;
    eprintln!("good table visible {:.1} s after the PUTs", started.elapsed().as_secs_f64());
    assert_eq!(good.len(), 5);
    // The misfit table's rows are staged and its compaction fails under its own name; the late
    // table's messages fail under its own name, nothing of theirs read.
    wait_staged(&localstack, &[&uri("misfit")], 1).await;
    let waited = std::time::Instant::now();
    while metric_lines(&pipeline.function_log(&pipeline.compactor), &uri("misfit"), "CompactionFailed") == 0
        || metric_lines(&pipeline.function_log(&pipeline.converter), &uri("late"), "TableUnavailable") == 0
    {
        assert!(waited.elapsed() < Duration::from_secs(120), "no failure metric for the broken tables");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let compactor_log = pipeline.function_log(&pipeline.compactor);
    assert_eq!(metric_lines(&compactor_log, &uri("good"), "CompactionFailed"), 0, "the good table never failed");
    let converter_log = pipeline.function_log(&pipeline.converter);
    assert_eq!(metric_lines(&converter_log, &uri("good"), "TableUnavailable"), 0);

    // Fixed: the late table's schema deployed, the misfit table recreated.
    localstack
        .s3
        .put_object()
        .bucket(&lake)
        .key("config/late.schema.json")
        .body(schemas::ID.text.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let log = localstack.s3.list_objects_v2().bucket(&lake).prefix("misfit/_delta_log/").send().await.unwrap();
    for key in log.contents().iter().filter_map(|object| object.key()) {
        localstack.s3.delete_object().bucket(&lake).key(key).send().await.unwrap();
    }
    // The late table's messages come back and commit through the queue; the misfit table's
    // failed announcement waits out its visibility, so an on-demand run commits it now.
    let late = wait_rows(&localstack, &uri("late"), 5, Duration::from_secs(180)).await;
    let misfit = pipeline.compact(serde_json::json!({"force": true, "table": "misfit"})).await.unwrap();
    assert_eq!(misfit["rows"].as_u64(), Some(5), "{misfit}");
    let misfit = wait_rows(&localstack, &uri("misfit"), 5, Duration::from_secs(30)).await;
    for (rows, first) in [(good, 0), (misfit, 100), (late, 200)] {
        let mut ids: Vec<i64> = rows.iter().map(|row| row["id"].as_i64().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, (first..first + 5).collect::<Vec<_>>(), "each row once");
    }
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0, "nothing dead-lettered");
}
