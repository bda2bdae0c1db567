//! One converter for many tables: each message goes to the converter of its object's route.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::aws::batch_response;
use tokio::sync::OnceCell;

use crate::context::{Context, Deployment};
use crate::error::{Error, Result};
use crate::ingest::converter::{ConversionReport, Converter};
use crate::ingest::event::BatchPlan;
use crate::ingest::isolation::{Isolation, SqsIsolation, isolate_redeliveries};
use crate::ingest::trigger::CommitQueue;
use crate::routes::{Route, Routes};

/// The converters of every route of a deployment (one, for a single table).
pub struct RoutedConverter {
    routes: Routes,
    /// One per route, in the routes' order; none isolates on its own. Empty while the route's
    /// table is unavailable: its messages fail, and the converter is built once it can be.
    converters: Vec<OnceCell<Converter>>,
    /// Where the converters of unavailable routes are built from.
    deployment: Option<Deployment>,
    /// Where redelivered messages go, decided once for the whole batch.
    isolation: Option<Arc<dyn Isolation>>,
}

/// What one invocation did, per table.
#[derive(Debug, Default)]
pub struct RoutedReport {
    /// Each route that had messages: its name, its table and its report.
    pub tables: Vec<(String, String, ConversionReport)>,
    /// Every message to fail for SQS to deliver again: a route's failures, and messages
    /// whose object no route takes.
    pub failed_messages: Vec<String>,
    /// Messages moved to the isolation queue.
    pub isolated: Vec<String>,
}

impl RoutedReport {
    /// The partial batch response: the failed messages, for SQS to retry.
    pub fn batch_response(&self) -> SqsBatchResponse {
        batch_response(&self.failed_messages)
    }
}

impl RoutedConverter {
    /// Converters for `routes`, one per route, in their order.
    pub fn new(routes: Routes, converters: Vec<Converter>) -> Result<Self> {
        if routes.len() != converters.len() {
            return Err(Error::Config(format!("{} routes but {} converters", routes.len(), converters.len())));
        }
        let converters = converters.into_iter().map(|converter| OnceCell::new_with(Some(converter))).collect();
        Ok(Self { routes, converters, deployment: None, isolation: None })
    }

    /// Moves messages delivered more than once, in a batch of several, to `isolation`.
    pub fn with_isolation(mut self, isolation: Arc<dyn Isolation>) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// The converters of the routes the environment describes, as the Lambda runs them.
    pub async fn from_env() -> Result<Self> {
        Self::from_deployment(Deployment::from_env().await?)
    }

    /// A converter for each route of `deployment` (built later for a route whose table is
    /// unavailable now); redelivered messages go to the first isolation queue a route names
    /// (a deployment has one).
    pub fn from_deployment(deployment: Deployment) -> Result<Self> {
        let mut isolation = None;
        let mut converters = Vec::new();
        for (route, context) in deployment.iter() {
            let Some(context) = context else {
                converters.push(OnceCell::new());
                continue;
            };
            if let (Some(queue), Some(sqs)) = (&context.settings.isolation_queue_url, &context.sqs) {
                isolation.get_or_insert_with(|| Arc::new(SqsIsolation::new(sqs.clone(), queue.clone())));
            }
            converters.push(OnceCell::new_with(Some(route_converter(route, &context))));
        }
        let routes = deployment.routes().clone();
        if routes.len() != converters.len() {
            return Err(Error::Config(format!("{} routes but {} converters", routes.len(), converters.len())));
        }
        Ok(Self {
            routes,
            converters,
            deployment: Some(deployment),
            isolation: isolation.map(|i| i as Arc<dyn Isolation>),
        })
    }

    /// When an invocation due to end at `deadline_epoch_ms` stops taking objects, by the first
    /// route's settings (a deployment's routes share them).
    pub fn stop_before(&self, deadline_epoch_ms: u64) -> tokio::time::Instant {
        let (_, settings) = self.routes.iter().next().expect("routes are never empty");
        let margin = std::time::Duration::from_secs(settings.deadline_margin_seconds);
        crate::ingest::converter::stop_before(deadline_epoch_ms, margin)
    }

    /// The converter of the route at `at`, built now if its table was unavailable until now.
    async fn converter(&self, at: usize) -> Result<&Converter> {
        self.converters[at]
            .get_or_try_init(|| async {
                let deployment = self.deployment.as_ref().expect("only a deployment's routes start unavailable");
                let context = deployment.context(at).await?;
                let (route, _) = self.routes.iter().nth(at).expect("a route of this converter");
                Ok(route_converter(route, &context))
            })
            .await
    }

    /// Each route's table URI, by route name.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|(route, settings)| (route.name.as_str(), settings.table_uri.as_str()))
    }

    /// Converts a batch: messages delivered before are isolated, each other message goes to
    /// the converter of its objects' route, and each route converts its share in turn (all
    /// stop at `stop`). A message whose object no route takes fails, for the DLQ.
    pub async fn convert_until(&self, event: &SqsEvent, stop: Option<tokio::time::Instant>) -> Result<RoutedReport> {
        let mut report = RoutedReport::default();
        let mut failed = BTreeSet::new();
        let event = isolate_redeliveries(self.isolation.as_deref(), event, &mut report.isolated, &mut failed).await;
        let shares = self.split(BatchPlan::from_sqs(&event), &mut failed);
        for (at, (share, (route, settings))) in shares.into_iter().zip(self.routes.iter()).enumerate() {
            if share.is_empty() {
                continue;
            }
            let messages = share_messages(&share);
            let converted = match self.converter(at).await {
                Ok(converter) => match converter.convert_plan(share, stop).await {
                    Ok(converted) => converted,
                    // A table that cannot be written (its bucket refuses, say) fails its own
                    // messages; with one table, the invocation.
                    Err(err) if self.routes.len() > 1 => failed_share(messages, &err, &route.name, false),
                    Err(err) => return Err(err),
                },
                Err(err) => failed_share(messages, &err, &route.name, true),
            };
            failed.extend(converted.failed_messages.iter().cloned());
            report.tables.push((route.name.clone(), settings.table_uri.clone(), converted));
        }
        // Counted with the first table's figures, as a single-table deployment counts them.
        if !report.isolated.is_empty() {
            if report.tables.is_empty() {
                let (route, settings) = self.routes.iter().next().expect("routes are never empty");
                report.tables.push((route.name.clone(), settings.table_uri.clone(), ConversionReport::default()));
            }
            report.tables[0].2.isolated.extend(report.isolated.iter().cloned());
        }
        report.failed_messages = failed.into_iter().collect();
        Ok(report)
    }
}

/// A route's converter: announcing its sealed batches when the deployment has a commit queue.
fn route_converter(route: &Route, context: &Context) -> Converter {
    let converter = Converter::from_context(context);
    match (&context.settings.commit_queue_url, &context.sqs) {
        (Some(queue), Some(sqs)) => {
            converter.with_announcements(Arc::new(CommitQueue::new(sqs.clone(), queue.clone())), route.name.clone())
        }
        _ => converter,
    }
}

/// Every message of a share that needs work: those naming its objects, and unreadable ones.
fn share_messages(share: &BatchPlan) -> BTreeSet<String> {
    let named = share.objects.iter().flat_map(|(_, ids)| ids.iter().cloned());
    named.chain(share.invalid.iter().map(|(id, _)| id.clone())).collect()
}

/// The report of a share whose table could not be set up (`unavailable`) or whose conversion
/// failed as a whole (its table refusing writes, say): every message that needed work fails,
/// for SQS to deliver again (and, failing that, to the DLQ); a batch the failure left
/// unsealed is voided by the compactor as any other.
fn failed_share(messages: BTreeSet<String>, err: &Error, route: &str, unavailable: bool) -> ConversionReport {
    let count = messages.len();
    if unavailable {
        tracing::error!(route, error = %err, messages = count, "the table is unavailable: failing its messages");
    } else {
        tracing::error!(route, error = %err, messages = count, "the table's conversion failed: failing its messages");
    }
    let failed_messages: Vec<String> = messages.into_iter().collect();
    ConversionReport {
        table_unavailable: if unavailable { count } else { 0 },
        failed_messages,
        ..ConversionReport::default()
    }
}

impl RoutedConverter {
    /// Each route's share of a batch's `plan`, in the routes' order. A message naming an
    /// object no route takes goes to `failed` whole, none of its objects read for it; test
    /// events, removals and unreadable messages go to the first route, which answers for them.
    fn split(&self, plan: BatchPlan, failed: &mut BTreeSet<String>) -> Vec<BatchPlan> {
        if self.routes.takes_every_object() {
            return vec![plan];
        }
        let mut shares: Vec<BatchPlan> = (0..self.converters.len()).map(|_| BatchPlan::default()).collect();
        shares[0].ignored = plan.ignored;
        shares[0].invalid = plan.invalid;
        let routed: Vec<Option<usize>> = plan.objects.iter().map(|(object, _)| self.routes.route_of(object)).collect();
        let mut unrouted = BTreeSet::new();
        for ((object, ids), _) in plan.objects.iter().zip(&routed).filter(|(_, route)| route.is_none()) {
            for id in ids {
                if unrouted.insert(id.clone()) {
                    tracing::error!(
                        message_id = %id,
                        object = %object.uri(),
                        "no route takes this object (INLET_ROUTES): failing its message"
                    );
                }
            }
        }
        for ((object, ids), route) in plan.objects.into_iter().zip(routed) {
            let ids: Vec<String> = ids.into_iter().filter(|id| !unrouted.contains(id)).collect();
            if let Some(at) = route
                && !ids.is_empty()
            {
                shares[at].objects.push((object, ids));
            }
        }
        failed.extend(unrouted);
        shares
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::ingest::{ConverterOptions, Quarantine};
    use crate::stage::FragmentStore;
    use crate::testing::sources::MemorySource;
    use crate::testing::{events, schemas};

    const ROUTES: &str = r#"{"routes": [
        {"name": "web", "prefix": "web/", "table_uri": "memory:///web", "schema": "web.json"},
        {"name": "api", "prefix": "api/", "table_uri": "memory:///api", "schema": "api.json"}
    ]}"#;

    fn created(key: &str) -> String {
        events::created("raw", key)
    }

    fn sqs(bodies: &[String]) -> SqsEvent {
        events::sqs_event(bodies)
    }

    #[tokio::test]
    async fn each_message_goes_to_its_tables_converter_and_one_no_route_takes_fails() {
        let routes = Routes::parse(ROUTES, "routes.json", |_| None).unwrap();
        let source = Arc::new(MemorySource::default());
        let (web, api) = (FragmentStore::new(Arc::new(InMemory::new())), FragmentStore::new(Arc::new(InMemory::new())));
        let converter = |store: &FragmentStore, schema: &schemas::NamedSchema| {
            let schema = schema.parse();
            Converter::new(
                source.clone(),
                store.clone(),
                Quarantine::new(store.store()),
                schema,
                ConverterOptions::default(),
            )
        };
        let converters = vec![converter(&web, &schemas::PAGE), converter(&api, &schemas::STATUS)];
        let isolated = Arc::new(crate::testing::isolation::KeptIsolation::default());
        let routed = RoutedConverter::new(routes, converters).unwrap().with_isolation(isolated.clone());
        source.put("raw", "web/a.json", &b"{\"page\":\"/\"}\n{\"page\":\"/x\"}\n"[..]);
        source.put("raw", "api/b.json", &b"{\"status\":200}\n"[..]);
        source.put("raw", "api/again.json", &b"{\"status\":500}\n"[..]);
        source.put("raw", "other/c.json", &b"{}\n"[..]);
        let mut event = sqs(&[
            created("web/a.json"),
            created("api/b.json"),
            created("other/c.json"),
            r#"{"Event":"s3:TestEvent"}"#.to_string(),
            created("api/again.json"),
        ]);
        event.records[4].attributes.insert("ApproximateReceiveCount".into(), "3".into());

        let report = routed.convert_until(&event, None).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m2"], "only the object no route takes fails");
        assert_eq!(report.isolated, vec!["m4"], "isolated once, before routing");
        assert_eq!(isolated.bodies().as_slice(), [event.records[4].body.clone().unwrap()]);
        let rows: Vec<(&str, u64)> = report.tables.iter().map(|(name, _, r)| (name.as_str(), r.rows)).collect();
        assert_eq!(rows, vec![("web", 2), ("api", 1)]);
        assert_eq!(report.tables[0].2.isolated, vec!["m4"], "counted with the first table's figures");
        for (store, expected) in [(&web, "s3://raw/web/a.json"), (&api, "s3://raw/api/b.json")] {
            let mut sources = Vec::new();
            for meta in store.list().await.unwrap() {
                sources.extend(store.info(&meta).await.unwrap().sources.into_iter().map(|s| s.id.uri));
            }
            assert_eq!(sources, vec![expected.to_string()], "each table stages only its own objects");
        }
    }

    /// Sources staged in `store`, by object URI.
    async fn staged_sources(store: &FragmentStore) -> Vec<String> {
        let mut sources = Vec::new();
        for meta in store.list().await.unwrap() {
            sources.extend(store.info(&meta).await.unwrap().sources.into_iter().map(|s| s.id.uri));
        }
        sources.sort();
        sources
    }

    #[tokio::test]
    async fn messages_delivered_before_are_isolated_unless_alone() {
        let routes = Routes::parse(
            r#"{"routes": [{"name": "t", "prefix": "", "table_uri": "memory:///t", "schema": "t.json"}]}"#,
            "routes.json",
            |_| None,
        )
        .unwrap();
        let source = Arc::new(MemorySource::default());
        let store = FragmentStore::new(Arc::new(InMemory::new()));
        let schema = schemas::ID.parse();
        let converter = Converter::new(
            source.clone(),
            store.clone(),
            Quarantine::new(store.store()),
            schema,
            ConverterOptions::default(),
        );
        let isolated = Arc::new(crate::testing::isolation::KeptIsolation::default());
        let routed = RoutedConverter::new(routes, vec![converter]).unwrap().with_isolation(isolated.clone());
        for key in ["a.json", "b.json", "c.json"] {
            source.put("raw", key, &b"{\"id\":1}\n{\"id\":2}\n"[..]);
        }
        let mut event = sqs(&[created("a.json"), created("b.json"), created("c.json")]);
        event.records[1].attributes.insert("ApproximateReceiveCount".into(), "2".into());
        let report = routed.convert_until(&event, None).await.unwrap();
        assert_eq!((report.isolated.clone(), report.failed_messages.clone()), (vec!["m1".to_string()], vec![]));
        assert_eq!(
            isolated.bodies().as_slice(),
            [event.records[1].body.clone().unwrap()],
            "its body, to be converted alone"
        );
        assert_eq!(staged_sources(&store).await, vec!["s3://raw/a.json", "s3://raw/c.json"]);

        // Alone in its batch (as the isolation queue delivers it), it is converted.
        let mut alone = sqs(&[created("b.json")]);
        alone.records[0].attributes.insert("ApproximateReceiveCount".into(), "3".into());
        let report = routed.convert_until(&alone, None).await.unwrap();
        assert!(report.isolated.is_empty() && report.failed_messages.is_empty());
        assert_eq!(report.tables[0].2.rows, 2);
    }

    #[tokio::test]
    async fn a_message_naming_objects_of_two_tables_stages_each_in_its_own() {
        let routes = Routes::parse(ROUTES, "routes.json", |_| None).unwrap();
        let source = Arc::new(MemorySource::default());
        let (web, api) = (FragmentStore::new(Arc::new(InMemory::new())), FragmentStore::new(Arc::new(InMemory::new())));
        let converter = |store: &FragmentStore, schema: &schemas::NamedSchema| {
            let options = ConverterOptions::default();
            Converter::new(source.clone(), store.clone(), Quarantine::new(store.store()), schema.parse(), options)
        };
        let routed =
            RoutedConverter::new(routes, vec![converter(&web, &schemas::PAGE), converter(&api, &schemas::STATUS)])
                .unwrap();
        source.put("raw", "web/a.json", &b"{\"page\":\"/\"}\n"[..]);
        source.put("raw", "api/b.json", &b"{\"status\":200}\n{\"status\":404}\n"[..]);
        // One body naming both objects, as an SNS envelope or a batched notification can.
        let mut both: serde_json::Value = serde_json::from_str(&created("web/a.json")).unwrap();
        let other: serde_json::Value = serde_json::from_str(&created("api/b.json")).unwrap();
        both["Records"].as_array_mut().unwrap().push(other["Records"][0].clone());

        let report = routed.convert_until(&sqs(&[both.to_string()]), None).await.unwrap();
        assert!(report.failed_messages.is_empty(), "{:?}", report.failed_messages);
        let counts: Vec<(&str, usize, u64, u64)> =
            report.tables.iter().map(|(name, _, r)| (name.as_str(), r.objects, r.rows, r.quarantined)).collect();
        assert_eq!(counts, vec![("web", 1, 1, 0), ("api", 1, 2, 0)], "each table converts only its own object");
        assert_eq!(staged_sources(&web).await, vec!["s3://raw/web/a.json"]);
        assert_eq!(staged_sources(&api).await, vec!["s3://raw/api/b.json"]);
    }

    #[tokio::test]
    async fn a_table_whose_schema_cannot_be_read_fails_only_its_messages_until_it_can() {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(config.path().join("web.json"), schemas::PAGE.text).unwrap();
        std::fs::write(config.path().join("routes.json"), ROUTES).unwrap();
        let routes_file = config.path().join("routes.json").display().to_string();
        let lookup = |name: &str| match name {
            "INLET_ROUTES" => Some(routes_file.clone()),
            "AWS_REGION" => Some("us-east-1".to_string()),
            _ => None,
        };
        let deployment = Deployment::from_lookup(lookup).await.unwrap();
        let routed = RoutedConverter::from_deployment(deployment.rebuilding_after(std::time::Duration::ZERO)).unwrap();
        let event = sqs(&[created("api/b.json"), created("api/c.json"), r#"{"Event":"s3:TestEvent"}"#.to_string()]);

        let report = routed.convert_until(&event, None).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m0", "m1"], "the api table's messages fail, nothing else");
        let api = report.tables.iter().find(|(name, _, _)| name == "api").map(|(_, _, r)| r).unwrap();
        assert_eq!((api.table_unavailable, api.objects), (2, 0), "none of its objects is read");
        let metric = api.metrics().into_iter().find(|m| m.name == "TableUnavailable").unwrap();
        assert_eq!(metric.value, 2.0, "its own metric says so");

        // Its schema deployed: the next batch builds its converter.
        assert!(routed.converter(1).await.is_err());
        std::fs::write(config.path().join("api.json"), schemas::STATUS.text).unwrap();
        assert!(routed.converter(1).await.is_ok(), "built once the schema can be read");
    }

    #[tokio::test]
    async fn a_table_that_cannot_be_written_fails_only_its_messages() {
        let routes = Routes::parse(ROUTES, "routes.json", |_| None).unwrap();
        let source = Arc::new(MemorySource::default());
        let web = FragmentStore::new(Arc::new(InMemory::new()));
        // A store rooted at a file: every write under it fails, as a bucket refusing writes does.
        let blocked = tempfile::NamedTempFile::new().unwrap();
        let api = FragmentStore::new(Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(blocked.path()).unwrap(),
        ));
        let converter = |store: &FragmentStore, schema: &schemas::NamedSchema| {
            let options = ConverterOptions::default();
            Converter::new(source.clone(), store.clone(), Quarantine::new(store.store()), schema.parse(), options)
        };
        let routed =
            RoutedConverter::new(routes, vec![converter(&web, &schemas::PAGE), converter(&api, &schemas::STATUS)])
                .unwrap();
        source.put("raw", "web/a.json", &b"{\"page\":\"/\"}\n"[..]);
        source.put("raw", "api/b.json", &b"{\"status\":200}\n"[..]);

        let report = routed.convert_until(&sqs(&[created("web/a.json"), created("api/b.json")]), None).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m1"], "only the api table's message fails");
        let counts: Vec<(&str, u64, usize)> =
            report.tables.iter().map(|(name, _, r)| (name.as_str(), r.rows, r.failed_messages.len())).collect();
        assert_eq!(counts, vec![("web", 1, 0), ("api", 0, 1)], "counted as the api table's failed messages");
        assert_eq!(staged_sources(&web).await, vec!["s3://raw/web/a.json"]);
    }
}
