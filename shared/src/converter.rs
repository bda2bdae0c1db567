//! The converter: one SQS batch of S3 notifications in, one Parquet fragment out, and a
//! partial batch response naming the messages whose objects could not be ingested.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use serde::Serialize;

use crate::context::Context;
use crate::decode::{JsonDecoder, QuarantinedLine};
use crate::error::{Error, Result};
use crate::event::{BatchPlan, SourceObject};
use crate::fragment::{self, FragmentSource, FragmentStore};
use crate::metrics::Metric;
use crate::quarantine::Quarantine;
use crate::schema::TableSchema;
use crate::source::{ObjectSource, S3Source, decompress};

/// What one converter invocation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionReport {
    /// Objects ingested into the fragment.
    pub objects: usize,
    /// Rows written.
    pub rows: u64,
    /// Lines quarantined.
    pub quarantined: u64,
    /// Uncompressed bytes decoded.
    pub bytes_in: u64,
    /// Fragment written, if any rows were.
    pub fragment: Option<String>,
    /// Message ids that failed (retried by SQS, then dead-lettered).
    pub failed_messages: Vec<String>,
    /// Bytes of the fragment written.
    pub bytes_out: u64,
    /// Wall time of the invocation, in milliseconds.
    pub duration_ms: u64,
}

impl ConversionReport {
    /// The partial batch response: the failed messages, for SQS to retry.
    pub fn batch_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in &self.failed_messages {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// The report as CloudWatch metrics.
    pub fn metrics(&self) -> [Metric; 7] {
        [
            Metric { name: "Objects", value: self.objects as f64, unit: "Count" },
            Metric { name: "Rows", value: self.rows as f64, unit: "Count" },
            Metric { name: "QuarantinedLines", value: self.quarantined as f64, unit: "Count" },
            Metric { name: "FailedMessages", value: self.failed_messages.len() as f64, unit: "Count" },
            Metric { name: "BytesIn", value: self.bytes_in as f64, unit: "Bytes" },
            Metric { name: "BytesOut", value: self.bytes_out as f64, unit: "Bytes" },
            Metric { name: "Duration", value: self.duration_ms as f64, unit: "Milliseconds" },
        ]
    }
}

/// Converts source objects to fragments.
pub struct Converter {
    source: Arc<dyn ObjectSource>,
    fragments: FragmentStore,
    quarantine: Quarantine,
    schema: Arc<TableSchema>,
    decoder: JsonDecoder,
    concurrency: usize,
}

struct Decoded {
    object: SourceObject,
    source: FragmentSource,
    bytes_in: u64,
    batches: Vec<RecordBatch>,
    quarantined: Vec<QuarantinedLine>,
}

impl Converter {
    /// A converter reading from `source`, staging into `fragments` and refusing lines into `quarantine`.
    pub fn new(
        source: Arc<dyn ObjectSource>,
        fragments: FragmentStore,
        quarantine: Quarantine,
        schema: Arc<TableSchema>,
        batch_rows: usize,
        concurrency: usize,
    ) -> Self {
        let decoder = JsonDecoder::new(schema.clone(), batch_rows);
        Self { source, fragments, quarantine, schema, decoder, concurrency: concurrency.max(1) }
    }

    /// A converter over S3 sources and the table's staging area, as the Lambda runs it.
    pub fn from_context(context: &Context) -> Self {
        Self::new(
            Arc::new(S3Source::new(context.s3.clone())),
            FragmentStore::new(context.table_store.clone()),
            Quarantine::new(context.table_store.clone()),
            context.schema.clone(),
            context.settings.decode_batch_rows,
            context.settings.download_concurrency,
        )
    }

    /// Handles an SQS event as the Lambda does, returning the partial batch response.
    pub async fn handle(&self, event: &SqsEvent) -> Result<SqsBatchResponse> {
        Ok(self.convert(event).await?.batch_response())
    }

    /// Converts every object the batch names; an object that fails fails only its messages.
    /// An error here (the fragment could not be staged) means the whole batch must be retried.
    pub async fn convert(&self, event: &SqsEvent) -> Result<ConversionReport> {
        let started = std::time::Instant::now();
        let plan = BatchPlan::from_sqs(event);
        let mut failed = BTreeSet::new();
        for (id, reason) in &plan.invalid {
            tracing::error!(message_id = %id, reason = %reason, "unreadable message: failing it");
            failed.insert(id.clone());
        }
        for (id, reason) in &plan.ignored {
            tracing::info!(message_id = %id, reason = %reason, "nothing to ingest");
        }
        let mut decoded = Vec::new();
        let mut results = futures::stream::iter(plan.objects)
            .map(|(object, ids)| async move { (self.read(&object).await, object, ids) })
            .buffer_unordered(self.concurrency);
        while let Some((result, object, ids)) = results.next().await {
            match result {
                Ok(object_rows) => decoded.push(object_rows),
                Err(err) => {
                    tracing::error!(object = %object.uri(), error = %err, retryable = err.is_retryable(), "object failed");
                    failed.extend(ids);
                }
            }
        }
        drop(results);

        let mut report = ConversionReport {
            objects: decoded.len(),
            rows: decoded.iter().map(|d| d.source.rows).sum(),
            bytes_in: decoded.iter().map(|d| d.bytes_in).sum(),
            quarantined: decoded.iter().map(|d| d.quarantined.len() as u64).sum(),
            ..Default::default()
        };
        // Quarantine records are named by object version, so writing them first and then
        // failing on the fragment leaves nothing twice when the batch is retried.
        for object in decoded.iter().filter(|d| !d.quarantined.is_empty()) {
            let path = self.quarantine.put(&object.object, &object.quarantined).await?;
            tracing::warn!(object = %object.source.uri, lines = object.quarantined.len(), quarantine = %path, "quarantined lines");
        }
        if decoded.iter().any(|d| d.source.rows > 0) {
            let sources: Vec<FragmentSource> = decoded.iter().map(|d| d.source.clone()).collect();
            let batches: Vec<RecordBatch> = decoded.into_iter().flat_map(|d| d.batches).collect();
            let schema = self.schema.table.clone();
            let data = tokio::task::spawn_blocking(move || fragment::encode(&schema, &batches, &sources))
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))??;
            report.bytes_out = data.len() as u64;
            let path = self.fragments.put(data).await?;
            report.fragment = Some(path.to_string());
        }
        report.failed_messages = failed.into_iter().collect();
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            objects = report.objects,
            rows = report.rows,
            quarantined = report.quarantined,
            bytes_in = report.bytes_in,
            fragment = report.fragment.as_deref().unwrap_or(""),
            failed_messages = report.failed_messages.len(),
            "converted batch"
        );
        Ok(report)
    }

    async fn read(&self, object: &SourceObject) -> Result<Decoded> {
        let raw = self.source.fetch(object).await?;
        let decoder = self.decoder.clone();
        let object = object.clone();
        tokio::task::spawn_blocking(move || {
            let data = decompress(&object, raw)?;
            let decoded = decoder.decode(&object, &data)?;
            Ok(Decoded {
                source: FragmentSource { uri: object.uri(), etag: object.etag.clone(), rows: decoded.rows() },
                bytes_in: data.len() as u64,
                batches: decoded.batches,
                quarantined: decoded.quarantined,
                object,
            })
        })
        .await
        .map_err(|err| Error::Io(std::io::Error::other(err)))?
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsMessage;
    use object_store::memory::InMemory;

    use super::*;
    use crate::source::MemorySource;

    fn notification(bucket: &str, key: &str) -> String {
        let encoded: String = key.split('/').map(|s| s.replace(' ', "+")).collect::<Vec<_>>().join("/");
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-05-16T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "test"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "t",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": 1, "eTag": "abc"}}
        }]})
        .to_string()
    }

    fn sqs(bodies: Vec<String>) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (i, body) in bodies.into_iter().enumerate() {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.body = Some(body);
            event.records.push(message);
        }
        event
    }

    #[tokio::test]
    async fn good_objects_land_in_one_fragment_and_bad_ones_fail_alone() {
        let schema = Arc::new(TableSchema::parse(r#"{"fields":[{"name":"id","type":"long"}]}"#, "t").unwrap());
        let source = Arc::new(MemorySource::default());
        source.put("raw", "a b.json.zst", zstd::bulk::compress(b"{\"id\":1}\n{\"id\":2}\n", 3).unwrap());
        source.put("raw", "c.json", &b"{\"id\":3}\n"[..]);
        source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
        source.put("raw", "half.json", &b"{\"id\":4}\n{\"id\":\"four\"}\n{\"id\":5}\n"[..]);
        let lake = Arc::new(InMemory::new());
        let fragments = FragmentStore::new(lake.clone());
        let quarantine = Quarantine::new(lake);
        let converter = Converter::new(source, fragments.clone(), quarantine.clone(), schema, 1024, 4);
        let event = sqs(vec![
            notification("raw", "a b.json.zst"),
            notification("raw", "corrupt.json.zst"),
            notification("raw", "missing.json"),
            notification("raw", "c.json"),
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
            notification("raw", "half.json"),
        ]);
        let report = converter.convert(&event).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m1".to_string(), "m2".to_string()]);
        assert_eq!((report.objects, report.rows, report.quarantined), (3, 5, 1));
        let staged = fragments.list().await.unwrap();
        assert_eq!(staged.len(), 1);
        let fragment = fragments.read(&staged[0].location).await.unwrap();
        let mut uris: Vec<_> = fragment.sources.iter().map(|s| (s.uri.clone(), s.rows)).collect();
        uris.sort();
        assert_eq!(
            uris,
            vec![
                ("s3://raw/a b.json.zst".to_string(), 2),
                ("s3://raw/c.json".to_string(), 1),
                ("s3://raw/half.json".to_string(), 2)
            ]
        );
        let refused = quarantine.lines().await.unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (refused[0].source.as_str(), refused[0].line, refused[0].raw.as_str()),
            ("s3://raw/half.json", 2, "{\"id\":\"four\"}")
        );

        let response = converter.handle(&sqs(vec![notification("raw", "corrupt.json.zst")])).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "m0");
    }
}
