# Storage and the notification path: raw bucket -> SQS (with a dead-letter queue) -> converter.

data "aws_partition" "current" {}

locals {
  raw_bucket      = var.create_raw_bucket ? aws_s3_bucket.raw[0].id : data.aws_s3_bucket.raw[0].id
  raw_bucket_arn  = var.create_raw_bucket ? aws_s3_bucket.raw[0].arn : data.aws_s3_bucket.raw[0].arn
  lake_bucket     = var.create_lake_bucket ? aws_s3_bucket.lake[0].id : data.aws_s3_bucket.lake[0].id
  lake_bucket_arn = var.create_lake_bucket ? aws_s3_bucket.lake[0].arn : data.aws_s3_bucket.lake[0].arn
  table_prefix    = trim(var.table_prefix, "/")
  # SQS needs the visibility timeout to outlast a whole batch: AWS recommends six times the
  # function timeout, plus the batching window.
  visibility_timeout = 6 * var.converter_timeout_seconds + var.maximum_batching_window_seconds
  sse_algorithm      = var.kms_key_arn == null ? "AES256" : "aws:kms"
}

data "aws_s3_bucket" "raw" {
  count  = var.create_raw_bucket ? 0 : 1
  bucket = var.raw_bucket_name
}

data "aws_s3_bucket" "lake" {
  count  = var.create_lake_bucket ? 0 : 1
  bucket = var.lake_bucket_name
}

resource "aws_s3_bucket" "raw" {
  count         = var.create_raw_bucket ? 1 : 0
  bucket        = var.raw_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket" "lake" {
  count         = var.create_lake_bucket ? 1 : 0
  bucket        = var.lake_bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "raw" {
  count                   = var.create_raw_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.raw[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "raw" {
  count  = var.create_raw_bucket ? 1 : 0
  bucket = aws_s3_bucket.raw[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "raw" {
  count  = var.create_raw_bucket ? 1 : 0
  bucket = aws_s3_bucket.raw[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  count                   = var.create_lake_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.lake[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  count  = var.create_lake_bucket ? 1 : 0
  bucket = aws_s3_bucket.lake[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "lake" {
  count  = var.create_lake_bucket ? 1 : 0
  bucket = aws_s3_bucket.lake[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

# Old versions of consumed fragments and vacuumed files are noise once the table moved on.
resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  count  = var.create_lake_bucket ? 1 : 0
  bucket = aws_s3_bucket.lake[0].id
  rule {
    id     = "expire-noncurrent"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
  # Quarantined lines are kept for their owners to fix and replay, not forever. Staged
  # fragments get no expiry: during an outage they are the only copy of rows not yet committed;
  # the compactor deletes consumed and voided ones itself.
  dynamic "rule" {
    for_each = var.quarantine_retention_days == null ? {} : local.tables
    content {
      id     = "expire-quarantine-${rule.key}"
      status = "Enabled"
      filter {
        prefix = "${rule.value.table_prefix}/_inlet/quarantine/"
      }
      expiration {
        days = var.quarantine_retention_days
      }
    }
  }
  # Failure records explain dead letters, which SQS keeps at most 14 days.
  dynamic "rule" {
    for_each = local.tables
    content {
      id     = "expire-failures-${rule.key}"
      status = "Enabled"
      filter {
        prefix = "${rule.value.table_prefix}/_inlet/failures/"
      }
      expiration {
        days = 30
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.lake]
}

# Old versions of overwritten raw objects: the converter ingests each notified version, so once
# the queue has drained (its retention is 14 days) they only cost storage.
resource "aws_s3_bucket_lifecycle_configuration" "raw" {
  count  = var.create_raw_bucket && var.raw_noncurrent_version_days != null ? 1 : 0
  bucket = aws_s3_bucket.raw[0].id
  rule {
    id     = "expire-noncurrent"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.raw_noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
  depends_on = [aws_s3_bucket_versioning.raw]
}

# Plain-HTTP requests are refused on both buckets: data and credentials travel over TLS only.
data "aws_iam_policy_document" "tls_only" {
  for_each = toset(concat(var.create_raw_bucket ? ["raw"] : [], var.create_lake_bucket ? ["lake"] : []))
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.key == "raw" ? local.raw_bucket_arn : local.lake_bucket_arn, "${each.key == "raw" ? local.raw_bucket_arn : local.lake_bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each   = data.aws_iam_policy_document.tls_only
  bucket     = each.key == "raw" ? aws_s3_bucket.raw[0].id : aws_s3_bucket.lake[0].id
  policy     = each.value.json
  depends_on = [aws_s3_bucket_public_access_block.raw, aws_s3_bucket_public_access_block.lake]
}

# Queue ARNs are built from names so each queue can carry its policies inline: separate
# aws_sqs_queue_policy / redrive_allow_policy resources would reference the queues both ways.
locals {
  queue_arn_prefix    = "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}"
  ingest_queue_arn    = "${local.queue_arn_prefix}:${var.name}-ingest"
  isolation_queue_arn = "${local.queue_arn_prefix}:${var.name}-isolation"
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name}-ingest-dlq"
  tags                              = var.tags
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [local.ingest_queue_arn, local.isolation_queue_arn]
  })
}

# Who may send notifications to the ingest queue: the raw bucket (S3 notifications, also when
# wired by hand), the per-table EventBridge rules, and SNS topics named by the user.
locals {
  event_rule_arns = concat(var.notifications == "eventbridge" ? values(local.route_rule_arns) : [], var.notification_rule_arns)
  # Sender statement id => the service principal and the sources it may send from.
  queue_senders = merge(
    var.notifications == "eventbridge" ? {} : {
      RawBucketNotifications = { service = "s3.amazonaws.com", sources = [local.raw_bucket_arn] }
    },
    length(local.event_rule_arns) == 0 ? {} : {
      RawObjectEvents = { service = "events.amazonaws.com", sources = local.event_rule_arns }
    },
    length(var.notification_topic_arns) == 0 ? {} : {
      TopicSubscriptions = { service = "sns.amazonaws.com", sources = var.notification_topic_arns }
    },
  )
}

data "aws_iam_policy_document" "queue_senders" {
  dynamic "statement" {
    for_each = local.queue_senders
    content {
      sid       = statement.key
      actions   = ["sqs:SendMessage"]
      resources = [local.ingest_queue_arn]
      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = statement.value.sources
      }
    }
  }
}

resource "aws_sqs_queue" "ingest" {
  name                              = "${var.name}-ingest"
  tags                              = var.tags
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 1209600
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  policy                            = data.aws_iam_policy_document.queue_senders.json
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  lifecycle {
    precondition {
      condition     = local.several_tables || var.schema_file != null
      error_message = "schema_file is required: the path of the table's declared schema (JSON), or set tables, each with its own schema_file."
    }
  }
}

# Messages delivered more than once are moved here by the converter and converted one per
# invocation, so an object that kills the converter reaches the DLQ alone.
resource "aws_sqs_queue" "isolation" {
  name                              = "${var.name}-isolation"
  tags                              = var.tags
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 1209600
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# notifications = "sqs": S3 sends each table's objects straight to the queue. "eventbridge": S3
# sends every event to EventBridge (other consumers can share the bucket) and a rule per table
# forwards that table's objects. "none": the user wires S3, SNS or EventBridge to the queue.
resource "aws_s3_bucket_notification" "raw" {
  count       = var.notifications == "none" ? 0 : 1
  bucket      = local.raw_bucket
  eventbridge = var.notifications == "eventbridge"
  dynamic "queue" {
    for_each = var.notifications == "sqs" ? local.tables : {}
    content {
      queue_arn     = aws_sqs_queue.ingest.arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = queue.value.raw_prefix == "" ? null : queue.value.raw_prefix
      filter_suffix = var.raw_suffix == "" ? null : var.raw_suffix
    }
  }
}

locals {
  route_rule_names = { for name, table in local.tables : name => "${var.name}-objects-${name}" }
  route_rule_arns = {
    for name, rule in local.route_rule_names :
    name => "arn:${data.aws_partition.current.partition}:events:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:rule/${rule}"
  }
}

resource "aws_cloudwatch_event_rule" "objects" {
  for_each    = var.notifications == "eventbridge" ? local.tables : {}
  name        = local.route_rule_names[each.key]
  description = "Objects created under s3://${local.raw_bucket}/${each.value.raw_prefix} for ${local.table_uris[each.key]}"
  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["Object Created"]
    detail = {
      bucket = { name = [local.raw_bucket] }
      object = { key = [{ wildcard = "${each.value.raw_prefix}*${var.raw_suffix}" }] }
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "objects" {
  for_each = aws_cloudwatch_event_rule.objects
  rule     = each.value.name
  arn      = aws_sqs_queue.ingest.arn
}

# ---------------------------------------------------------------- commit queue

# Sealed batches announced by the converter, one message group per table: the compactor's
# mapping runs one invocation per table at a time and tables in parallel, and the messages that
# wait while a table commits come together in its next run. A message is only a wake-up (the
# compactor commits whatever is sealed), so a lost one costs freshness, never rows: the schedule
# commits what no announcement did.
resource "aws_sqs_queue" "commits_dlq" {
  count                             = var.commit_queue ? 1 : 0
  name                              = "${var.name}-commits-dlq.fifo"
  fifo_queue                        = true
  tags                              = var.tags
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
}

resource "aws_sqs_queue" "commits" {
  count                             = var.commit_queue ? 1 : 0
  name                              = "${var.name}-commits.fifo"
  fifo_queue                        = true
  deduplication_scope               = "messageGroup"
  fifo_throughput_limit             = "perMessageGroupId"
  tags                              = var.tags
  visibility_timeout_seconds        = 6 * var.compactor_timeout_seconds
  message_retention_seconds         = 86400
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.commits_dlq[0].arn
    maxReceiveCount     = var.max_receive_count
  })
}
