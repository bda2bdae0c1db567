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

/// The dead-letter queue of the queue at `url` (its redrive policy's target, in the same
/// account and region), if it has one.
pub async fn dead_letter_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> crate::Result<Option<String>> {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Name::RedrivePolicy)
        .send()
        .await
        .map_err(|err| crate::Error::aws("GetQueueAttributes", url, err))?
        .attributes
        .unwrap_or_default();
    let Some(policy) = attributes.get(&Name::RedrivePolicy) else { return Ok(None) };
    let policy: serde_json::Value = serde_json::from_str(policy)?;
    let Some(name) = policy["deadLetterTargetArn"].as_str().and_then(|arn| arn.rsplit(':').next()) else {
        return Ok(None);
    };
    let found =
        sqs.get_queue_url().queue_name(name).send().await.map_err(|err| crate::Error::aws("GetQueueUrl", name, err))?;
    Ok(found.queue_url)
}

/// A small text file (a schema, a routing file) from a local path or `s3://bucket/key`: a
/// local file that cannot be read is [`crate::Error::Io`], a failed S3 read [`crate::Error::Aws`].
pub async fn read_text(location: &str, s3: &aws_sdk_s3::Client) -> crate::Result<String> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(std::fs::read_to_string(location)?);
    };
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| crate::Error::Config(format!("{location}: expected a local path or s3://bucket/key")))?;
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|err| crate::Error::aws("GetObject", location, err))?;
    let body = object.body.collect().await.map_err(|err| crate::Error::aws("GetObject", location, err))?.into_bytes();
    String::from_utf8(body.to_vec()).map_err(|err| crate::Error::Config(format!("{location} is not UTF-8 text: {err}")))
}

/// The partial batch response failing `failed_messages`, for SQS to deliver them again.
pub fn batch_response(failed_messages: &[String]) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    for id in failed_messages {
        let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
        failure.item_identifier = id.clone();
        response.batch_item_failures.push(failure);
    }
    response
}
