//! AWS SDK clients, built once per process.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment (credentials, region, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// An S3 client; path-style addressing when a custom endpoint (LocalStack) is configured,
/// because virtual-hosted names like `bucket.127.0.0.1` do not resolve.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An SQS client.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// Messages in a queue, visible plus in flight.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> crate::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|err| crate::Error::aws("GetQueueAttributes", url, err))?
        .attributes
        .unwrap_or_default();
    let count = |name: Name| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(count(Name::ApproximateNumberOfMessages) + count(Name::ApproximateNumberOfMessagesNotVisible))
}
