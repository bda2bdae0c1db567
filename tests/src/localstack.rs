//! The connection: a running LocalStack and SDK clients pointed at it, and the settings other
//! readers of it (delta-rs, the independent reader) need.

use std::collections::HashMap;

use anyhow::{Result, ensure};
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// A running LocalStack and SDK clients pointed at it.
#[derive(Clone)]
pub struct LocalStack {
    /// Gateway URL, e.g. `http://127.0.0.1:4566`.
    pub endpoint: String,
    /// SDK configuration (test credentials, region, endpoint).
    pub sdk: SdkConfig,
    /// S3 client (path-style).
    pub s3: aws_sdk_s3::Client,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Lambda client.
    pub lambda: aws_sdk_lambda::Client,
}

impl LocalStack {
    /// Connects to `LOCALSTACK_ENDPOINT` (default `http://127.0.0.1:4566`); fails with a hint
    /// when nothing answers.
    pub async fn connect() -> Result<Self> {
        let endpoint = std::env::var("LOCALSTACK_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "inlet-tests"))
            .load()
            .await;
        let address = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        ensure!(
            tokio::net::TcpStream::connect(&address).await.is_ok(),
            "LocalStack does not answer at {endpoint}: start it with `localstack/localstack.sh start` (make test does)"
        );
        Ok(Self {
            s3: inlet::aws::s3_client(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            endpoint,
            sdk,
        })
    }

    /// AWS variables for child processes (the independent reader) and delta-rs in this process.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// delta-rs storage options for tables in this LocalStack.
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut options: HashMap<String, String> =
            self.aws_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        options.insert("AWS_ALLOW_HTTP".into(), "true".into());
        options
    }
}
