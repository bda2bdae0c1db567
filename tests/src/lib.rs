//! Shared fixtures for Inlet's LocalStack integration tests and the demo: connect to
//! LocalStack, deploy a pipeline (buckets, queues, notification, functions, mapping), feed it
//! objects, and read the resulting table back with an independent reader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, FunctionResponseType, Runtime, State};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use inlet::stage::FragmentStore;
use serde::Deserialize;

/// The workspace root, to find binaries, schemas and scripts.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

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
        // A queue of work, its failures redriven to the DLQ.
        let work_queue = |queue: String| {
            ls.sqs
                .create_queue()
                .queue_name(queue)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .attributes(QueueAttributeName::VisibilityTimeout, options.visibility_timeout_seconds.to_string())
                .send()
        };
        let queue_url = work_queue(format!("ingest-{name}")).await?.queue_url.unwrap_or_default();
        let ingest_arn = queue_arn(&ls.sqs, &queue_url).await?;

        let suffix = FilterRule::builder().name(FilterRuleName::Suffix).value(".json.zst").build();
        let notification = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(&ingest_arn)
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
            .bucket(&raw_bucket)
            .notification_configuration(notification)
            .send()
            .await
            .context("configuring the S3 notification")?;

        let table_uri = format!("s3://{lake_bucket}/events");
        let schema = workspace_root().join("schemas/events.schema.json");
        let mut environment = vec![
            ("INLET_TABLE_URI".to_string(), table_uri.clone()),
            ("INLET_SCHEMA".to_string(), schema.display().to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        environment.extend(options.environment.iter().cloned());
        let role = "arn:aws:iam::000000000000:role/inlet-test".to_string();
        let converter = format!("converter-{name}");
        let compactor = format!("compactor-{name}");
        let mut converter_environment = environment.clone();
        converter_environment.extend(options.converter_environment.iter().cloned());
        if options.size_trigger {
            converter_environment.push(("INLET_COMPACTOR_FUNCTION".into(), compactor.clone()));
        }
        let isolation_queue = match options.isolation {
            true => {
                let url = work_queue(format!("isolation-{name}")).await?.queue_url.unwrap_or_default();
                converter_environment.push(("INLET_ISOLATION_QUEUE_URL".into(), url.clone()));
                Some(queue_arn(&ls.sqs, &url).await?)
            }
            false => None,
        };
        let code = |binary: &str| code_dir_of(binary, options.profile);
        create_function(
            ls,
            &converter,
            &code("converter")?,
            &role,
            &converter_environment,
            options.converter_timeout_seconds,
        )
        .await?;
        create_function(ls, &compactor, &code("compactor")?, &role, &environment, 300).await?;
        ls.lambda
            .create_event_source_mapping()
            .event_source_arn(&ingest_arn)
            .function_name(&converter)
            .batch_size(options.batch_size)
            .maximum_batching_window_in_seconds(options.batching_window_seconds)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .send()
            .await
            .context("creating the event source mapping")?;
        if let Some(isolation_arn) = isolation_queue {
            ls.lambda
                .create_event_source_mapping()
                .event_source_arn(isolation_arn)
                .function_name(&converter)
                .batch_size(1)
                .function_response_types(FunctionResponseType::ReportBatchItemFailures)
                .send()
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

    /// Uploads an object to the raw bucket and returns its ETag (quotes removed).
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<String> {
        let output = self.localstack.s3.put_object().bucket(&self.raw_bucket).key(key).body(body.into()).send().await?;
        Ok(output.e_tag.unwrap_or_default().trim_matches('"').to_string())
    }

    /// Uploads `body` as one part of a multipart upload: S3 gives it a new ETag (`<md5>-1`)
    /// even when the bytes are those of the version it replaces.
    pub async fn put_multipart(&self, key: &str, body: Vec<u8>) -> Result<String> {
        let s3 = &self.localstack.s3;
        let upload = s3.create_multipart_upload().bucket(&self.raw_bucket).key(key).send().await?;
        let id = upload.upload_id.ok_or_else(|| anyhow!("no upload id"))?;
        let part = s3
            .upload_part()
            .bucket(&self.raw_bucket)
            .key(key)
            .upload_id(&id)
            .part_number(1)
            .body(body.into())
            .send()
            .await?;
        let completed = aws_sdk_s3::types::CompletedPart::builder().part_number(1).set_e_tag(part.e_tag).build();
        let output = s3
            .complete_multipart_upload()
            .bucket(&self.raw_bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(completed).build())
            .send()
            .await?;
        Ok(output.e_tag.unwrap_or_default().trim_matches('"').to_string())
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

    /// Sends a raw message body to the ingest queue (a notification S3 never sent, say).
    pub async fn send_to_queue(&self, body: String) -> Result<()> {
        self.localstack.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await?;
        Ok(())
    }

    /// Runs the `inlet` CLI against this LocalStack and returns its standard output.
    pub async fn inlet(&self, args: &[&str]) -> Result<String> {
        self.inlet_with(args, &[]).await
    }

    /// Runs the `inlet` CLI with extra environment (the functions' settings, say).
    pub async fn inlet_with(&self, args: &[&str], environment: &[(String, String)]) -> Result<String> {
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target"));
        let binary = target.join("debug/inlet");
        ensure!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p inlet-cli` (make test does)",
            binary.display()
        );
        let output = tokio::process::Command::new(&binary)
            .args(args)
            .envs(self.localstack.aws_env())
            .env("INLET_TABLE_URI", &self.table_uri)
            .env("INLET_SCHEMA", workspace_root().join("schemas/events.schema.json"))
            .envs(environment.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .output()
            .await?;
        ensure!(output.status.success(), "inlet {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8(output.stdout)?)
    }

    /// The object store rooted at the table location (staging and quarantine live under it).
    pub fn table_store(&self) -> Result<std::sync::Arc<dyn inlet::commit::table::ObjectStore>> {
        let url = url::Url::parse(&self.table_uri)?;
        Ok(inlet::stage::table_store(&url, &self.localstack.storage_options())?)
    }

    /// The table's staging area.
    pub fn fragments(&self) -> Result<FragmentStore> {
        Ok(FragmentStore::new(self.table_store()?))
    }

    /// Source URIs listed by the staged fragments.
    pub async fn staged_sources(&self) -> Result<Vec<String>> {
        let store = self.fragments()?;
        let mut sources = Vec::new();
        for meta in store.list().await? {
            sources.extend(store.info(&meta).await?.sources.into_iter().map(|s| s.id.uri));
        }
        Ok(sources)
    }

    /// Waits until fragments name every one of `uris`.
    pub async fn wait_for_staged(&self, uris: &[String], timeout: Duration) -> Result<Vec<String>> {
        let started = Instant::now();
        loop {
            let staged = self.staged_sources().await?;
            if uris.iter().all(|uri| staged.contains(uri)) {
                return Ok(staged);
            }
            if started.elapsed() > timeout {
                bail!(
                    "after {timeout:?} fragments name {} of {} objects; converter log: {}",
                    uris.iter().filter(|u| staged.contains(u)).count(),
                    uris.len(),
                    self.function_log(&self.converter)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Messages in a queue, visible plus in flight.
    pub async fn queue_depth(&self, queue_url: &str) -> Result<u64> {
        Ok(inlet::aws::queue_depth(&self.localstack.sqs, queue_url).await?)
    }

    /// Waits until the dead-letter queue holds `count` messages and returns their bodies
    /// (received, then made visible again for later readers).
    pub async fn wait_for_dead_letters(&self, count: usize, timeout: Duration) -> Result<Vec<String>> {
        let started = Instant::now();
        loop {
            if self.queue_depth(&self.dlq_url).await? >= count as u64 {
                let received = self
                    .localstack
                    .sqs
                    .receive_message()
                    .queue_url(&self.dlq_url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .send()
                    .await?;
                return Ok(received.messages.unwrap_or_default().into_iter().filter_map(|m| m.body).collect());
            }
            if started.elapsed() > timeout {
                bail!("after {timeout:?} the DLQ holds fewer than {count} messages");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Invokes the compactor synchronously and returns its JSON answer.
    pub async fn compact(&self, payload: serde_json::Value) -> Result<serde_json::Value> {
        let output = self
            .localstack
            .lambda
            .invoke()
            .function_name(&self.compactor)
            .payload(Blob::new(serde_json::to_vec(&payload)?))
            .send()
            .await
            .context("invoking the compactor")?;
        let body = output.payload.map(|p| p.into_inner()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body).to_string();
        if let Some(error) = output.function_error {
            bail!("compactor failed ({error}): {text}; log: {}", self.function_log(&self.compactor));
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Waits until the independent reader sees `rows` rows (compactions it did not start).
    pub async fn wait_for_rows(&self, rows: u64, timeout: Duration) -> Result<TableSnapshot> {
        let started = Instant::now();
        loop {
            if let Ok(table) = self.read_table(false).await
                && table.num_rows >= rows
            {
                return Ok(table);
            }
            if started.elapsed() > timeout {
                bail!(
                    "after {timeout:?} the table does not hold {rows} rows; compactor log: {}",
                    self.function_log(&self.compactor)
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Reads the table with the independent Python reader.
    pub async fn read_table(&self, all_rows: bool) -> Result<TableSnapshot> {
        read_table(&self.localstack, &self.table_uri, all_rows).await
    }

    /// Notified versions the converter found gone when it read them.
    pub async fn superseded(&self) -> Result<Vec<inlet::ingest::SupersededVersion>> {
        Ok(inlet::ingest::SupersededLog::new(self.table_store()?).versions().await?)
    }

    /// What a function printed so far (the local executor keeps one log per function).
    pub fn function_log(&self, function: &str) -> String {
        let path = workspace_root().join(format!(".localstack/lambda-logs/{function}.log"));
        std::fs::read_to_string(&path).unwrap_or_default()
    }
}

/// A Delta table as the independent reader saw it.
#[derive(Debug, Deserialize)]
pub struct TableSnapshot {
    /// Table version.
    pub version: u64,
    /// Data files in the current snapshot.
    pub files: Vec<TableFile>,
    /// Row count.
    pub num_rows: u64,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (all, or a sample), as JSON objects.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One data file of a snapshot.
#[derive(Debug, Deserialize)]
pub struct TableFile {
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Reads `table_uri` with delta-rs' Python bindings (`tests/reader/read_table.py`).
pub async fn read_table(localstack: &LocalStack, table_uri: &str, all_rows: bool) -> Result<TableSnapshot> {
    let root = workspace_root();
    let python =
        std::env::var("INLET_READER_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/tools/bin/python"));
    ensure!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    let mut command = tokio::process::Command::new(&python);
    command.arg(root.join("tests/reader/read_table.py")).arg(table_uri);
    if all_rows {
        command.arg("--all-rows");
    }
    command.envs(localstack.aws_env());
    let output = command.output().await.context("running the independent reader")?;
    ensure!(output.status.success(), "reader failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).map_err(|err| anyhow!("reader printed unexpected output: {err}"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attributes =
        sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    attributes
        .attributes
        .and_then(|map| map.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("queue {url} has no ARN"))
}

/// Lays out a function's code directory (`bootstrap` = the debug binary) for LocalStack's
/// hot-reload code source, so no zip of a large debug binary is uploaded per test.
pub fn code_dir(binary: &str) -> Result<PathBuf> {
    code_dir_of(binary, "debug")
}

/// [`code_dir`] for the binary of a cargo profile (`debug`, `perf`).
pub fn code_dir_of(binary: &str, profile: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
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

async fn create_function(
    ls: &LocalStack,
    name: &str,
    dir: &Path,
    role: &str,
    environment: &[(String, String)],
    timeout_seconds: i32,
) -> Result<()> {
    let variables: HashMap<String, String> = environment.iter().cloned().collect();
    ls.lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .timeout(timeout_seconds)
        .memory_size(1024)
        .code(FunctionCode::builder().s3_bucket("hot-reload").s3_key(dir.display().to_string()).build())
        .environment(Environment::builder().set_variables(Some(variables)).build())
        .send()
        .await
        .with_context(|| format!("creating function {name}"))?;
    let started = Instant::now();
    loop {
        let state = ls.lambda.get_function_configuration().function_name(name).send().await?.state;
        match state {
            Some(State::Active) => return Ok(()),
            Some(State::Failed) => bail!("function {name} failed to become active"),
            _ if started.elapsed() > Duration::from_secs(60) => bail!("function {name} not active after 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
