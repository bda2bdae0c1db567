//! Deployment: one pipeline with resource names of its own (raw and lake buckets, ingest and
//! dead-letter queues, the S3 notification, both functions and their queue mappings), the way
//! the Terraform module deploys it, with the functions' code served from the cargo target
//! directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aws_sdk_lambda::types::{Environment, FunctionCode, FunctionResponseType, Runtime, State};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::localstack::LocalStack;
use crate::target_dir;
use crate::wait::{Check, poll};

/// Knobs of a deployed test pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Messages per converter invocation.
    pub batch_size: i32,
    /// Seconds the mapping waits to fill a batch.
    pub batching_window_seconds: i32,
    /// Receives before a message moves to the DLQ.
    pub max_receive_count: u32,
    /// Queue visibility timeout (seconds); also the retry delay after a failure. AWS requires it
    /// to be at least the converter timeout.
    pub visibility_timeout_seconds: u32,
    /// Converter function timeout (seconds).
    pub converter_timeout_seconds: i32,
    /// Extra environment for both functions.
    pub environment: Vec<(String, String)>,
    /// Extra environment for the converter alone, after `environment` (a rollout that reached
    /// the converter first, say).
    pub converter_environment: Vec<(String, String)>,
    /// Let the converter invoke the compactor once a file's worth is staged.
    pub size_trigger: bool,
    /// Cargo profile whose binaries the functions run (`debug`; `perf` for benchmarks).
    pub profile: &'static str,
    /// An isolation queue, as the Terraform module deploys it: redelivered messages are moved
    /// there and converted one per invocation.
    pub isolation: bool,
    /// A commit queue, as the Terraform module deploys it: the converter announces each
    /// sealed batch on a FIFO queue the compactor reads, one message group per table.
    pub commit_queue: bool,
    /// A key prefix template of the raw bucket (`web/date={date}/`) the compactor's scheduled
    /// reconciliation lists (`INLET_RECONCILE_PREFIXES`).
    pub reconcile_prefix: Option<String>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batching_window_seconds: 1,
            max_receive_count: 3,
            visibility_timeout_seconds: 40,
            converter_timeout_seconds: 30,
            environment: Vec::new(),
            converter_environment: Vec::new(),
            size_trigger: false,
            profile: "debug",
            isolation: false,
            commit_queue: false,
            reconcile_prefix: None,
        }
    }
}

/// One deployed Inlet pipeline with unique resource names.
pub struct Pipeline {
    /// The LocalStack it lives in.
    pub localstack: LocalStack,
    /// Unique suffix of every resource name.
    pub name: String,
    /// Bucket services drop objects into.
    pub raw_bucket: String,
    /// Bucket holding the Delta table.
    pub lake_bucket: String,
    /// `s3://lake/table`
    pub table_uri: String,
    /// Ingest queue URL.
    pub queue_url: String,
    /// Dead-letter queue URL.
    pub dlq_url: String,
    /// Converter function name.
    pub converter: String,
    /// Compactor function name.
    pub compactor: String,
}

impl Pipeline {
    /// Creates buckets, queues, the notification, both functions and the event source mapping.
    pub async fn deploy(localstack: &LocalStack, prefix: &str, options: PipelineOptions) -> Result<Self> {
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ls = localstack;
        let raw_bucket = format!("raw-{name}");
        let lake_bucket = format!("lake-{name}");
        for bucket in [&raw_bucket, &lake_bucket] {
            ls.s3.create_bucket().bucket(bucket).send().await.with_context(|| format!("creating {bucket}"))?;
        }
        let dlq_url =
            ls.sqs.create_queue().queue_name(format!("ingest-dlq-{name}")).send().await?.queue_url.unwrap_or_default();
        let dlq_arn = queue_arn(&ls.sqs, &dlq_url).await?;
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": options.max_receive_count});
        let work_queue =
            WorkQueues { ls, redrive: redrive.to_string(), visibility: options.visibility_timeout_seconds };
        let (queue_url, ingest_arn) = work_queue.create(format!("ingest-{name}")).await?;
        notify_on_created(ls, &raw_bucket, &ingest_arn).await?;

        let table_uri = format!("s3://{lake_bucket}/events");
        let mut environment = vec![
            ("INLET_TABLE_URI".to_string(), table_uri.clone()),
            ("INLET_SCHEMA".to_string(), inlet::testing::schemas::events_path().display().to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        environment.extend(options.environment.iter().cloned());
        let converter = format!("converter-{name}");
        let compactor = format!("compactor-{name}");
        let mut converter_environment = environment.clone();
        converter_environment.extend(options.converter_environment.iter().cloned());
        if options.size_trigger {
            converter_environment.push(("INLET_COMPACTOR_FUNCTION".into(), compactor.clone()));
        }
        // The queues whose counters the compactor reads for partition completeness, as the module sets them.
        let mut complete_queue_urls = vec![queue_url.clone()];
        let isolation_queue = match options.isolation {
            true => {
                let (url, arn) = work_queue.create(format!("isolation-{name}")).await?;
                converter_environment.push(("INLET_ISOLATION_QUEUE_URL".into(), url.clone()));
                complete_queue_urls.push(url);
                Some(arn)
            }
            false => None,
        };
        let commit_queue = match options.commit_queue {
            true => {
                let (url, arn) = create_commit_queue(ls, &name, options.max_receive_count).await?;
                converter_environment.push(("INLET_COMMIT_QUEUE_URL".into(), url));
                Some(arn)
            }
            false => None,
        };
        let code = |binary: &str| code_dir_of(binary, options.profile);
        let timeout = options.converter_timeout_seconds;
        create_function(ls, &converter, &code("converter")?, &converter_environment, timeout).await?;
        let mut compactor_environment = environment.clone();
        compactor_environment.push(("INLET_QUEUE_URL".into(), queue_url.clone()));
        compactor_environment.push(("INLET_COMPLETE_QUEUE_URLS".into(), complete_queue_urls.join(",")));
        if let Some(prefix) = &options.reconcile_prefix {
            compactor_environment.push(("INLET_RECONCILE_PREFIXES".into(), format!("s3://{raw_bucket}/{prefix}")));
        }
        create_function(ls, &compactor, &code("compactor")?, &compactor_environment, 300).await?;
        let window = Some(options.batching_window_seconds);
        map_queue(ls, &ingest_arn, &converter, options.batch_size, window)
            .await
            .context("creating the event source mapping")?;
        if let Some(commits_arn) = commit_queue {
            map_queue(ls, &commits_arn, &compactor, 10, None)
                .await
                .context("creating the commit queue's event source mapping")?;
        }
        if let Some(isolation_arn) = isolation_queue {
            map_queue(ls, &isolation_arn, &converter, 1, None)
                .await
                .context("creating the isolation queue's event source mapping")?;
        }

        Ok(Self {
            localstack: ls.clone(),
            name,
            raw_bucket,
            lake_bucket,
            table_uri,
            queue_url,
            dlq_url,
            converter,
            compactor,
        })
    }

    /// Turns the raw bucket's notification off (objects that land now are only found by a backfill).
    pub async fn disable_notifications(&self) -> Result<()> {
        self.localstack
            .s3
            .put_bucket_notification_configuration()
            .bucket(&self.raw_bucket)
            .notification_configuration(NotificationConfiguration::builder().build())
            .send()
            .await?;
        Ok(())
    }
}

/// Queues of work, their failures redriven to the pipeline's DLQ.
struct WorkQueues<'a> {
    ls: &'a LocalStack,
    redrive: String,
    visibility: u32,
}

impl WorkQueues<'_> {
    /// Creates the queue `name`; gives its URL and ARN.
    async fn create(&self, name: String) -> Result<(String, String)> {
        let created = self
            .ls
            .sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, self.redrive.clone())
            .attributes(QueueAttributeName::VisibilityTimeout, self.visibility.to_string())
            .send()
            .await?;
        let url = created.queue_url.unwrap_or_default();
        let arn = queue_arn(&self.ls.sqs, &url).await?;
        Ok((url, arn))
    }
}

/// The FIFO commit queue and its FIFO dead-letter queue; gives the queue's URL and ARN.
async fn create_commit_queue(ls: &LocalStack, name: &str, max_receive_count: u32) -> Result<(String, String)> {
    let fifo =
        |queue: String| ls.sqs.create_queue().queue_name(queue).attributes(QueueAttributeName::FifoQueue, "true");
    let dlq_url = fifo(format!("commits-dlq-{name}.fifo")).send().await?.queue_url.unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(&ls.sqs, &dlq_url).await?,
        "maxReceiveCount": max_receive_count,
    });
    let created = fifo(format!("commits-{name}.fifo"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "300")
        .send()
        .await
        .context("creating the commit queue")?;
    let url = created.queue_url.unwrap_or_default();
    let arn = queue_arn(&ls.sqs, &url).await?;
    Ok((url, arn))
}

/// Has `bucket` notify the queue `queue_arn` of every `.json.zst` object created in it.
async fn notify_on_created(ls: &LocalStack, bucket: &str, queue_arn: &str) -> Result<()> {
    let suffix = FilterRule::builder().name(FilterRuleName::Suffix).value(".json.zst").build();
    let notification = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(queue_arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(S3KeyFilter::builder().filter_rules(suffix).build())
                        .build(),
                )
                .build()?,
        )
        .build();
    ls.s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(notification)
        .send()
        .await
        .context("configuring the S3 notification")?;
    Ok(())
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attributes =
        sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    attributes
        .attributes
        .and_then(|map| map.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("queue {url} has no ARN"))
}

/// Maps the queue `queue_arn` to `function`, `batch_size` messages an invocation, reporting
/// failures message by message.
async fn map_queue(
    ls: &LocalStack,
    queue_arn: &str,
    function: &str,
    batch_size: i32,
    window_seconds: Option<i32>,
) -> Result<()> {
    ls.lambda
        .create_event_source_mapping()
        .event_source_arn(queue_arn)
        .function_name(function)
        .batch_size(batch_size)
        .set_maximum_batching_window_in_seconds(window_seconds)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .send()
        .await?;
    Ok(())
}

/// Lays out a function's code directory (`bootstrap` = the debug binary) for LocalStack's
/// hot-reload code source, so no zip of a large debug binary is uploaded per test.
pub fn code_dir(binary: &str) -> Result<PathBuf> {
    code_dir_of(binary, "debug")
}

/// [`code_dir`] for the binary of a cargo profile (`debug`, `perf`).
pub fn code_dir_of(binary: &str, profile: &str) -> Result<PathBuf> {
    let target = target_dir();
    let built = target.join(profile).join(binary);
    ensure!(built.exists(), "{} is missing: build it with `cargo build -p {binary}` (make test does)", built.display());
    // Debug code keeps its historical place; other profiles get their own directory.
    let dir = match profile {
        "debug" => target.join("lambda-local").join(binary),
        _ => target.join("lambda-local").join(profile).join(binary),
    };
    std::fs::create_dir_all(&dir)?;
    let bootstrap = dir.join("bootstrap");
    let fresh = std::fs::metadata(&bootstrap)
        .and_then(|b| Ok(b.modified()? >= std::fs::metadata(&built)?.modified()?))
        .unwrap_or(false);
    if !fresh {
        let staging = dir.join(format!(".bootstrap-{}", std::process::id()));
        std::fs::copy(&built, &staging)?;
        std::fs::rename(&staging, &bootstrap)?;
    }
    Ok(dir)
}

/// Creates the function `name` running the code in `dir`, and waits until it is active.
async fn create_function(
    ls: &LocalStack,
    name: &str,
    dir: &Path,
    environment: &[(String, String)],
    timeout_seconds: i32,
) -> Result<()> {
    let variables: HashMap<String, String> = environment.iter().cloned().collect();
    ls.lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::000000000000:role/inlet-test")
        .timeout(timeout_seconds)
        .memory_size(1024)
        .code(FunctionCode::builder().s3_bucket("hot-reload").s3_key(dir.display().to_string()).build())
        .environment(Environment::builder().set_variables(Some(variables)).build())
        .send()
        .await
        .with_context(|| format!("creating function {name}"))?;
    let look = async || match ls.lambda.get_function_configuration().function_name(name).send().await?.state {
        Some(State::Active) => Ok(Check::Done(())),
        Some(State::Failed) => bail!("function {name} failed to become active"),
        _ => Ok(Check::Waiting(format!("function {name} is not active"))),
    };
    poll(Duration::from_secs(60), Duration::from_millis(200), look, String::new).await
}
