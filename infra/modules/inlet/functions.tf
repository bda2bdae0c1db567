# The two functions, what drives them, and their least-privilege roles.

locals {
  settings = {
    INLET_TABLE_URI                  = local.several_tables ? "" : local.table_uris["table"]
    INLET_SCHEMA                     = local.several_tables ? "" : "s3://${local.lake_bucket}/${local.schema_keys["table"]}"
    INLET_ROUTES                     = local.several_tables ? local.routes_uri : ""
    INLET_TARGET_FILE_BYTES          = tostring(var.target_file_bytes)
    INLET_FRAGMENT_BYTES             = tostring(var.fragment_bytes)
    INLET_MAX_LINE_BYTES             = tostring(var.max_line_bytes)
    INLET_MAX_OBJECT_BYTES           = tostring(var.max_object_bytes)
    INLET_MAX_OBJECT_LINES           = tostring(var.max_object_lines)
    INLET_DEADLINE_MARGIN_SECONDS    = tostring(var.deadline_margin_seconds)
    INLET_PIECE_BYTES                = tostring(var.piece_bytes)
    INLET_UNKNOWN_FIELDS             = var.unknown_fields
    INLET_FRAMING                    = local.several_tables ? "" : var.framing
    INLET_INGESTED_AT                = tostring(var.ingested_at)
    INLET_PARTITION_BY               = local.several_tables ? "" : var.partition_by
    INLET_MIN_COMPACT_BYTES          = tostring(var.min_compact_bytes)
    INLET_FRESHNESS_SECONDS          = tostring(var.freshness_seconds)
    INLET_COMPLETE_SETTLE_SECONDS    = tostring(var.complete_settle_seconds)
    INLET_OPTIMIZE_MIN_FILES         = tostring(var.optimize_min_files)
    INLET_ABANDON_AFTER_SECONDS      = tostring(var.abandon_after_seconds)
    INLET_HISTORY_REBUILD_SECONDS    = tostring(var.history_rebuild_seconds)
    INLET_HISTORY_REBUILD_SAVE_FILES = tostring(var.history_rebuild_save_files)
    INLET_CHECKPOINT_INTERVAL        = tostring(var.checkpoint_interval)
    INLET_LOG_RETENTION_DAYS         = tostring(var.delta_log_retention_days)
    INLET_TABLE_PROPERTIES           = length(var.table_properties) == 0 ? "" : jsonencode(var.table_properties)
    INLET_DOWNLOAD_CONCURRENCY       = tostring(var.download_concurrency)
    INLET_DECODE_BATCH_ROWS          = tostring(var.decode_batch_rows)
    INLET_RECONCILE_PREFIXES         = local.several_tables ? "" : var.reconcile_prefixes
    INLET_LOG_FORMAT                 = "json"
    RUST_LOG                         = var.log_level
  }
  # An empty setting means "not set" (unpartitioned; no routing file); Lambda refuses empty values anyway.
  common_environment = merge({ for k, v in local.settings : k => v if v != "" }, var.extra_environment)
  converter_name     = "${var.name}-converter"
  compactor_name     = "${var.name}-compactor"
  # What the functions serve, for descriptions.
  served = local.several_tables ? "${length(local.tables)} tables in s3://${local.lake_bucket}" : local.table_uris["table"]
  # The scheduled reconciliation sends what it finds unaccounted through the ingest queue.
  renotify = var.reconcile == null ? false : var.reconcile.renotify
  # Per-table IAM resources.
  table_arns    = [for table in local.tables : "${local.lake_bucket_arn}/${table.table_prefix}"]
  compactor_arn = "arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:function:${local.compactor_name}"
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_cloudwatch_log_group" "converter" {
  name              = "/aws/lambda/${local.converter_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "compactor" {
  name              = "/aws/lambda/${local.compactor_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# Functions in a VPC need to manage their network interfaces.
resource "aws_iam_role_policy_attachment" "vpc" {
  for_each   = var.vpc_config == null ? {} : { converter = aws_iam_role.converter.name, compactor = aws_iam_role.compactor.name }
  role       = each.value
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# ---------------------------------------------------------------- converter

data "aws_iam_policy_document" "converter" {
  statement {
    sid       = "ReadRawObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for prefix in local.raw_prefixes : "${local.raw_bucket_arn}/${prefix}*"]
  }
  # Without it S3 answers 403 instead of 404 for a key deleted before it was read, and the
  # converter could not tell a superseded version from a permission fault.
  statement {
    sid       = "ListRawObjects"
    actions   = ["s3:ListBucket"]
    resources = [local.raw_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in local.raw_prefixes : "${prefix}*"]
    }
  }
  # The converter checks its batch's fragments still exist after sealing (HEAD needs GetObject).
  statement {
    sid       = "CheckStagedFragments"
    actions   = ["s3:GetObject"]
    resources = [for table in local.table_arns : "${table}/_inlet/fragments/*"]
  }
  statement {
    sid     = "ReadSchemasAndRoutes"
    actions = ["s3:GetObject"]
    resources = concat(
      [for key in values(local.schema_keys) : "${local.lake_bucket_arn}/${key}"],
      local.several_tables ? ["${local.lake_bucket_arn}/${local.routes_key}"] : [],
    )
  }
  # Only what a converter writes: fragments, batch seals, quarantined lines, superseded
  # versions and failure records. The schema, the load history and the Delta log are the
  # compactor's.
  statement {
    sid     = "StageFragmentsAndQuarantine"
    actions = ["s3:PutObject"]
    resources = flatten([for table in local.table_arns : [
      for area in ["fragments", "batches", "quarantine", "superseded", "failures"] : "${table}/_inlet/${area}/*"
    ]])
  }
  statement {
    sid       = "ListStaging"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for table in local.tables : "${table.table_prefix}/_inlet/*"]
    }
  }
  statement {
    sid       = "ConsumeQueues"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.ingest.arn, aws_sqs_queue.isolation.arn]
  }
  statement {
    sid       = "IsolateRedeliveries"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.isolation.arn]
  }
  dynamic "statement" {
    for_each = var.commit_queue ? [1] : []
    content {
      sid       = "AnnounceSealedBatches"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.commits[0].arn]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.converter.arn}:*"]
  }
  dynamic "statement" {
    for_each = local.size_trigger ? [1] : []
    content {
      sid       = "SizeTrigger"
      actions   = ["lambda:InvokeFunction"]
      resources = [local.compactor_arn]
    }
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "Encryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role" "converter" {
  name                 = "${var.name}-converter"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "converter" {
  name   = "inlet-converter"
  role   = aws_iam_role.converter.id
  policy = data.aws_iam_policy_document.converter.json
}

resource "aws_lambda_function" "converter" {
  function_name    = local.converter_name
  description      = "Inlet: S3 notifications -> Parquet fragments for ${local.served}"
  role             = aws_iam_role.converter.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.converter_memory_mb
  timeout          = var.converter_timeout_seconds
  filename         = var.converter_package.filename
  s3_bucket        = var.converter_package.s3_bucket
  s3_key           = var.converter_package.s3_key
  source_code_hash = var.converter_package.filename == null ? null : filebase64sha256(var.converter_package.filename)
  kms_key_arn      = var.kms_key_arn
  environment {
    variables = merge(
      local.common_environment,
      { INLET_ISOLATION_QUEUE_URL = aws_sqs_queue.isolation.url },
      var.commit_queue ? { INLET_COMMIT_QUEUE_URL = aws_sqs_queue.commits[0].url } : {},
      local.size_trigger ? { INLET_COMPACTOR_FUNCTION = local.compactor_name } : {},
    )
  }
  tracing_config {
    mode = "PassThrough"
  }
  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }
  tags       = var.tags
  depends_on = [aws_cloudwatch_log_group.converter, aws_iam_role_policy.converter, aws_iam_role_policy_attachment.vpc]
}

resource "aws_lambda_event_source_mapping" "converter" {
  event_source_arn                   = aws_sqs_queue.ingest.arn
  function_name                      = aws_lambda_function.converter.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }

  lifecycle {
    precondition {
      condition     = var.batch_size <= 10 || var.maximum_batching_window_seconds >= 1
      error_message = "batch_size above 10 needs maximum_batching_window_seconds of at least 1 (an SQS event source mapping rule)."
    }
  }
}

# One message per invocation: each redelivered object is converted alone.
resource "aws_lambda_event_source_mapping" "isolation" {
  event_source_arn        = aws_sqs_queue.isolation.arn
  function_name           = aws_lambda_function.converter.arn
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }
}

# ---------------------------------------------------------------- compactor

data "aws_iam_policy_document" "compactor" {
  statement {
    sid       = "TableReadWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for table in local.table_arns : "${table}/*"]
  }
  dynamic "statement" {
    for_each = local.several_tables ? [1] : []
    content {
      sid       = "ReadRoutes"
      actions   = ["s3:GetObject"]
      resources = ["${local.lake_bucket_arn}/${local.routes_key}"]
    }
  }
  statement {
    sid       = "ListTable"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for table in local.tables : "${table.table_prefix}/*"]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.compactor.arn}:*"]
  }
  # The scheduled reconciliation lists the raw prefixes' versions, reads those no record
  # accounts for (their content digest) and may send them to the ingest queue again.
  dynamic "statement" {
    for_each = var.reconcile == null ? [] : [1]
    content {
      sid       = "ReconcileRawObjects"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [for prefix in local.raw_prefixes : "${local.raw_bucket_arn}/${prefix}*"]
    }
  }
  dynamic "statement" {
    for_each = var.reconcile == null ? [] : [1]
    content {
      sid       = "ListRawVersions"
      actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
      resources = [local.raw_bucket_arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for prefix in local.raw_prefixes : "${prefix}*"]
      }
    }
  }
  dynamic "statement" {
    for_each = local.renotify ? [1] : []
    content {
      sid       = "RenotifyUnaccounted"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.ingest.arn]
    }
  }
  # Partition completeness waits for the ingest queues to hold no backlog.
  statement {
    sid       = "ReadIngestQueueCounters"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.ingest.arn, aws_sqs_queue.isolation.arn]
  }
  dynamic "statement" {
    for_each = var.commit_queue ? [1] : []
    content {
      sid       = "ConsumeSealedBatches"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.commits[0].arn]
    }
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "Encryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role" "compactor" {
  name                 = "${var.name}-compactor"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "compactor" {
  name   = "inlet-compactor"
  role   = aws_iam_role.compactor.id
  policy = data.aws_iam_policy_document.compactor.json
}

resource "aws_lambda_function" "compactor" {
  function_name    = local.compactor_name
  description      = "Inlet: staged fragments -> Delta commits for ${local.served}"
  role             = aws_iam_role.compactor.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.compactor_memory_mb
  timeout          = var.compactor_timeout_seconds
  filename         = var.compactor_package.filename
  s3_bucket        = var.compactor_package.s3_bucket
  s3_key           = var.compactor_package.s3_key
  source_code_hash = var.compactor_package.filename == null ? null : filebase64sha256(var.compactor_package.filename)
  kms_key_arn      = var.kms_key_arn
  # Runs of one table are serialised by the commit queue's message groups (and by Inlet's
  # commit rule should a scheduled run race one); tables commit in parallel up to this.
  reserved_concurrent_executions = local.compactor_reserved
  environment {
    variables = merge(
      local.common_environment,
      local.renotify ? { INLET_QUEUE_URL = aws_sqs_queue.ingest.url } : {},
      # Their counters tell the compactor no notification of a closed window is left.
      { INLET_COMPLETE_QUEUE_URLS = "${aws_sqs_queue.ingest.url},${aws_sqs_queue.isolation.url}" },
    )
  }
  tracing_config {
    mode = "PassThrough"
  }
  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }
  tags       = var.tags
  depends_on = [aws_cloudwatch_log_group.compactor, aws_iam_role_policy.compactor, aws_iam_role_policy_attachment.vpc]

  lifecycle {
    # The compactor's role may list and read the raw bucket under the tables' prefixes only.
    precondition {
      condition = alltrue(flatten([for name, prefixes in local.reconcile_prefixes : [
        for prefix in prefixes : startswith(prefix, "s3://${local.raw_bucket}/${local.tables[name].raw_prefix}")
      ]]))
      error_message = "Each reconcile prefix must lie in the raw bucket under its table's raw_prefix (s3://<raw bucket>/<raw_prefix>...)."
    }
    precondition {
      # A batch younger than a converter invocation may still be sealed by a converter that
      # is running; voiding it then would cost a redelivery of every message in it.
      condition     = var.abandon_after_seconds > var.converter_timeout_seconds
      error_message = "abandon_after_seconds must exceed converter_timeout_seconds: a compactor must never void the batch of a converter still running."
    }
    precondition {
      # A rebuild stops at its budget and then writes its last run and the index: it must not
      # be killed by the timeout first.
      condition     = var.history_rebuild_seconds + 60 <= var.compactor_timeout_seconds
      error_message = "history_rebuild_seconds must be at least 60 s under compactor_timeout_seconds."
    }
  }
}

locals {
  # Commit-queue runs at once (tables in parallel); the reserved concurrency adds two for the
  # schedule and maintenance runs, so neither the mapping nor they are throttled by the other.
  compactor_concurrency = coalesce(var.compactor_concurrency, var.commit_queue ? max(2, length(local.tables)) : 1)
  # A scheduled reconciliation (up to the compactor's timeout) gets a slot of its own, so it
  # neither waits for compactions nor holds them back.
  compactor_reserved = (var.commit_queue ? local.compactor_concurrency + 2 : local.compactor_concurrency) + (var.reconcile == null ? 0 : 1)
  # Every sealed batch commits through the commit queue: the size trigger adds nothing then.
  size_trigger = var.size_trigger && !var.commit_queue
}

# Sealed batches, one invocation per table at a time.
resource "aws_lambda_event_source_mapping" "commits" {
  count                   = var.commit_queue ? 1 : 0
  event_source_arn        = aws_sqs_queue.commits[0].arn
  function_name           = aws_lambda_function.compactor.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = local.compactor_concurrency
  }

  lifecycle {
    precondition {
      condition     = local.compactor_concurrency >= 2
      error_message = "compactor_concurrency must be at least 2 with the commit queue (the least an SQS event source mapping scales to)."
    }
  }
}

# Size-trigger and scheduled invocations are asynchronous: no retries (the next run picks up
# whatever a failed one left), and nothing older than the schedule period is worth running.
resource "aws_lambda_function_event_invoke_config" "compactor" {
  function_name                = aws_lambda_function.compactor.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 300
}

resource "aws_cloudwatch_event_rule" "compact" {
  name                = "${var.name}-compact"
  description         = "Regular Inlet compaction of ${local.served}"
  schedule_expression = var.compact_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "compact" {
  rule  = aws_cloudwatch_event_rule.compact.name
  arn   = aws_lambda_function.compactor.arn
  input = jsonencode({})
}

resource "aws_lambda_permission" "compact" {
  statement_id  = "compact-schedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.compactor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.compact.arn
}

resource "aws_cloudwatch_event_rule" "maintenance" {
  count               = var.maintenance_schedule == null ? 0 : 1
  name                = "${var.name}-maintenance"
  description         = "Inlet maintenance of ${local.served}: rewrite small files, vacuum"
  schedule_expression = var.maintenance_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "maintenance" {
  count = var.maintenance_schedule == null ? 0 : 1
  rule  = aws_cloudwatch_event_rule.maintenance[0].name
  arn   = aws_lambda_function.compactor.arn
  input = jsonencode({ optimize = true, vacuum = true })
}

resource "aws_lambda_permission" "maintenance" {
  count         = var.maintenance_schedule == null ? 0 : 1
  statement_id  = "maintenance-schedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.compactor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.maintenance[0].arn
}

resource "aws_cloudwatch_event_rule" "reconcile" {
  count               = var.reconcile == null ? 0 : 1
  name                = "${var.name}-reconcile"
  description         = "Inlet reconciliation of ${local.served}: every raw object version of the window accounted for"
  schedule_expression = var.reconcile.schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "reconcile" {
  count = var.reconcile == null ? 0 : 1
  rule  = aws_cloudwatch_event_rule.reconcile[0].name
  arn   = aws_lambda_function.compactor.arn
  input = jsonencode({ reconcile = {
    window_minutes     = var.reconcile.window_minutes
    settle_minutes     = var.reconcile.settle_minutes
    key_lookback_hours = var.reconcile.key_lookback_hours
    suffix             = var.raw_suffix
    renotify           = var.reconcile.renotify
  } })
}

resource "aws_lambda_permission" "reconcile" {
  count         = var.reconcile == null ? 0 : 1
  statement_id  = "reconcile-schedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.compactor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile[0].arn
}
