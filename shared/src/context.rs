//! What a function builds once at cold start: settings, schema, clients and the table's store.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::ObjectStore;

use crate::config::{Settings, storage_options_from_env};
use crate::error::{Error, Result};
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
    /// Reads settings and schema from the environment; any error here is a deployment error.
    pub async fn from_env() -> Result<Self> {
        Self::new(Settings::from_env()?).await
    }

    /// Builds clients, loads the schema and opens the table's store for `settings`.
    pub async fn new(settings: Settings) -> Result<Self> {
        let sdk = crate::aws::sdk_config().await;
        let s3 = crate::aws::s3_client(&sdk);
        let schema = Arc::new(load_schema(&settings.schema_location, &s3, settings.layout.clone()).await?);
        let storage_options = storage_options_from_env();
        let table_store = crate::commit::table::table_store(&settings.table_url()?, &storage_options)?;
        let lambda = settings.compactor_function.as_ref().map(|_| aws_sdk_lambda::Client::new(&sdk));
        let sqs = settings.isolation_queue_url.as_ref().map(|_| aws_sdk_sqs::Client::new(&sdk));
        Ok(Self { settings, schema, s3, lambda, sqs, storage_options, table_store })
    }
}

/// Loads the declared schema from a local path or `s3://bucket/key`, with the deployment's layout.
pub async fn load_schema(location: &str, s3: &aws_sdk_s3::Client, layout: Layout) -> Result<TableSchema> {
    if !location.starts_with("s3://") {
        return TableSchema::from_path_with(std::path::Path::new(location), layout);
    }
    let text = read_text(location, s3).await.map_err(|err| {
        let reason = match err {
            Error::Aws { detail, .. } => detail,
            other => other.to_string(),
        };
        Error::Schema { location: location.to_string(), reason }
    })?;
    TableSchema::parse_with(&text, location, layout)
}

/// A small text file (a schema, a routing file) from a local path or `s3://bucket/key`: a
/// local file that cannot be read is [`Error::Io`], a failed S3 read [`Error::Aws`].
pub async fn read_text(location: &str, s3: &aws_sdk_s3::Client) -> Result<String> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(std::fs::read_to_string(location)?);
    };
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| Error::Config(format!("{location}: expected a local path or s3://bucket/key")))?;
    let object =
        s3.get_object().bucket(bucket).key(key).send().await.map_err(|err| Error::aws("GetObject", location, err))?;
    let body = object.body.collect().await.map_err(|err| Error::aws("GetObject", location, err))?.into_bytes();
    String::from_utf8(body.to_vec()).map_err(|err| Error::Config(format!("{location} is not UTF-8 text: {err}")))
}
