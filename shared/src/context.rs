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
        let queues = settings.isolation_queue_url.is_some() || settings.commit_queue_url.is_some();
        let sqs = queues.then(|| aws_sdk_sqs::Client::new(sdk));
        Ok(Self { settings, schema, s3, lambda, sqs, storage_options, table_store })
    }
}

/// A deployment as a function sees it at cold start: each route of its routing file (or the
/// one table its environment names) with the route's context, every client built from one
/// SDK configuration.
pub struct Deployment {
    routes: Routes,
    /// One per route, in the routes' order.
    contexts: Vec<Context>,
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
        for (_, settings) in routes.iter() {
            contexts.push(Context::with_sdk(settings.clone(), &sdk, s3.clone()).await?);
        }
        Ok(Self { routes, contexts })
    }

    /// The routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Each route with its context, in the routes' order.
    pub fn iter(&self) -> impl Iterator<Item = (&Route, &Context)> {
        self.routes.iter().map(|(route, _)| route).zip(&self.contexts)
    }
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
