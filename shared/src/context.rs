//! What a function builds once at cold start: for each table of its deployment, the
//! settings, schema, clients and the table's store.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::ObjectStore;

use aws_config::SdkConfig;

use crate::config::{Settings, storage_options_from_env};
use crate::error::{Error, Result};
use crate::routes::{Route, Routes, read_routes};
use crate::schema::{Layout, TableSchema};

/// Shared state of a converter or compactor process.
#[derive(Clone)]
pub struct Context {
    /// Validated settings.
    pub settings: Settings,
    /// The declared schema.
    pub schema: Arc<TableSchema>,
    /// S3 client for source objects and configuration.
    pub s3: aws_sdk_s3::Client,
    /// Lambda client, when a compactor function is configured for the size trigger.
    pub lambda: Option<aws_sdk_lambda::Client>,
    /// SQS client, when an isolation queue is configured.
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// delta-rs storage options for the table location.
    pub storage_options: HashMap<String, String>,
    /// Object store rooted at the table location (fragments live under it).
    pub table_store: Arc<dyn ObjectStore>,
}

impl Context {
    /// Builds clients, loads the schema and opens the table's store for `settings`.
    pub async fn new(settings: Settings) -> Result<Self> {
        let sdk = crate::aws::sdk_config().await;
        Self::with_sdk(settings, &sdk, crate::aws::s3_client(&sdk)).await
    }

    /// [`Context::new`], with clients from the process's one SDK configuration.
    async fn with_sdk(settings: Settings, sdk: &SdkConfig, s3: aws_sdk_s3::Client) -> Result<Self> {
        let schema = Arc::new(load_schema(&settings.schema_location, &s3, settings.layout.clone()).await?);
        let storage_options = storage_options_from_env();
        let table_store = crate::stage::table_store(&settings.table_url()?, &storage_options)?;
        let lambda = settings.compactor_function.as_ref().map(|_| aws_sdk_lambda::Client::new(sdk));
        let queues = settings.isolation_queue_url.is_some()
            || settings.commit_queue_url.is_some()
            || !settings.complete_queue_urls.is_empty();
        let sqs = queues.then(|| aws_sdk_sqs::Client::new(sdk));
        Ok(Self { settings, schema, s3, lambda, sqs, storage_options, table_store })
    }
}

/// A deployment as a function sees it: each route of its routing file (or the one table its
/// environment names) with the route's context, every client built from one SDK configuration.
///
/// A route whose context cannot be built (its schema missing or invalid, its table's store
/// not to be set up) is unavailable: asking for its context fails with the reason, and builds it
/// again at most every [`REBUILD_AFTER`], so a fixed schema is taken up without a restart.
/// The other routes are not held back. Only a deployment none of whose routes can be built
/// fails to start.
pub struct Deployment {
    routes: Routes,
    /// One per route, in the routes' order.
    contexts: Vec<std::sync::Mutex<RouteContext>>,
    sdk: SdkConfig,
    s3: aws_sdk_s3::Client,
    /// How long an unavailable route waits before it is built again.
    rebuild_after: std::time::Duration,
}

/// How long an unavailable route's context waits before it is built again.
pub const REBUILD_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// Longest an unavailable route's context may take to build again.
const REBUILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A route's context, or why it could not be built and when that was last tried.
enum RouteContext {
    Ready(Box<Context>),
    Unavailable { reason: String, tried: std::time::Instant },
}

impl Deployment {
    /// The routes the environment describes, each with its context.
    pub async fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// The routes the settings read through `lookup` describe, each with its context.
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let sdk = crate::aws::sdk_config().await;
        let s3 = crate::aws::s3_client(&sdk);
        let routes = Routes::from_lookup(lookup, |location| read_routes(&s3, location)).await?;
        let mut contexts = Vec::with_capacity(routes.len());
        let mut first_error = None;
        for (route, settings) in routes.iter() {
            contexts.push(std::sync::Mutex::new(match Context::with_sdk(settings.clone(), &sdk, s3.clone()).await {
                Ok(context) => RouteContext::Ready(Box::new(context)),
                Err(err) => {
                    tracing::error!(route = %route.name, table = %settings.table_uri, error = %err, "the table is unavailable: its work fails until this is fixed");
                    let reason = err.to_string();
                    first_error.get_or_insert(err);
                    RouteContext::Unavailable { reason, tried: std::time::Instant::now() }
                }
            }));
        }
        let unavailable =
            contexts.iter().filter(|slot| matches!(*lock(slot), RouteContext::Unavailable { .. })).count();
        match first_error {
            // Nothing to serve: failing to start says so at once (one table's deployment, say).
            Some(err) if unavailable == routes.len() => Err(err),
            _ => Ok(Self { routes, contexts, sdk, s3, rebuild_after: REBUILD_AFTER }),
        }
    }

    /// Builds unavailable routes again once they have waited `wait` (tests wait for none).
    pub fn rebuilding_after(mut self, wait: std::time::Duration) -> Self {
        self.rebuild_after = wait;
        self
    }

    /// The routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The context of the route at `at`, built again if it was unavailable and has waited
    /// [`REBUILD_AFTER`]; [`Error::TableUnavailable`] with the reason while it cannot be built.
    pub async fn context(&self, at: usize) -> Result<Context> {
        let (route, settings) = self.routes.iter().nth(at).expect("a route of this deployment");
        let unavailable = |reason: &str| Error::TableUnavailable {
            route: route.name.clone(),
            table: settings.table_uri.clone(),
            reason: reason.to_string(),
        };
        match &*lock(&self.contexts[at]) {
            RouteContext::Ready(context) => return Ok(Context::clone(context)),
            RouteContext::Unavailable { reason, tried } if tried.elapsed() < self.rebuild_after => {
                return Err(unavailable(reason));
            }
            RouteContext::Unavailable { .. } => {}
        }
        // Bounded: a hung read must not hold the other tables' share of the invocation.
        let built =
            tokio::time::timeout(REBUILD_TIMEOUT, Context::with_sdk(settings.clone(), &self.sdk, self.s3.clone()))
                .await
                .unwrap_or_else(|_| Err(Error::Config(format!("setting the table up took over {REBUILD_TIMEOUT:?}"))));
        let mut slot = lock(&self.contexts[at]);
        if let RouteContext::Ready(context) = &*slot {
            // Built by a concurrent call meanwhile: it stands.
            return Ok(Context::clone(context));
        }
        match built {
            Ok(context) => {
                tracing::info!(route = %route.name, table = %settings.table_uri, "the table is available again");
                *slot = RouteContext::Ready(Box::new(context.clone()));
                Ok(context)
            }
            Err(err) => {
                let reason = err.to_string();
                *slot = RouteContext::Unavailable { reason: reason.clone(), tried: std::time::Instant::now() };
                Err(unavailable(&reason))
            }
        }
    }

    /// Each route with its context as built so far, in the routes' order.
    pub fn iter(&self) -> impl Iterator<Item = (&Route, Option<Context>)> {
        self.routes.iter().map(|(route, _)| route).zip(self.contexts.iter().map(|slot| match &*lock(slot) {
            RouteContext::Ready(context) => Some(Context::clone(context)),
            RouteContext::Unavailable { .. } => None,
        }))
    }
}

/// The slot, whatever a panicking holder left in it (every write replaces it whole).
fn lock(slot: &std::sync::Mutex<RouteContext>) -> std::sync::MutexGuard<'_, RouteContext> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Loads the declared schema from a local path or `s3://bucket/key`, with the deployment's layout.
pub async fn load_schema(location: &str, s3: &aws_sdk_s3::Client, layout: Layout) -> Result<TableSchema> {
    if !location.starts_with("s3://") {
        return TableSchema::from_path_with(std::path::Path::new(location), layout);
    }
    let text = crate::aws::read_text(location, s3).await.map_err(|err| {
        let reason = match err {
            Error::Aws { detail, .. } => detail,
            other => other.to_string(),
        };
        Error::Schema { location: location.to_string(), reason }
    })?;
    TableSchema::parse_with(&text, location, layout)
}
