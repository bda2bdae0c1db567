# Storage and the notification path: raw bucket -> SQS (with a dead-letter queue) -> converter.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

data "aws_partition" "current" {}

locals {
  raw_bucket      = var.create_raw_bucket ? aws_s3_bucket.raw[0].id : data.aws_s3_bucket.raw[0].id
  raw_bucket_arn  = var.create_raw_bucket ? aws_s3_bucket.raw[0].arn : data.aws_s3_bucket.raw[0].arn
  lake_bucket     = var.create_lake_bucket ? aws_s3_bucket.lake[0].id : data.aws_s3_bucket.lake[0].id
  lake_bucket_arn = var.create_lake_bucket ? aws_s3_bucket.lake[0].arn : data.aws_s3_bucket.lake[0].arn
  table_prefix    = trim(var.table_prefix, "/")
  table_uri       = "s3://${local.lake_bucket}/${local.table_prefix}"
  schema_key      = "${local.table_prefix}/_inlet/schema.json"
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
}

resource "aws_s3_bucket" "lake" {
  count         = var.create_lake_bucket ? 1 : 0
  bucket        = var.lake_bucket_name
  force_destroy = var.force_destroy
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
  depends_on = [aws_s3_bucket_versioning.lake]
}

resource "aws_s3_object" "schema" {
  bucket       = local.lake_bucket
  key          = local.schema_key
  source       = var.schema_file
  etag         = filemd5(var.schema_file)
  content_type = "application/json"
}

# Queue ARNs are built from names so each queue can carry its policies inline: separate
# aws_sqs_queue_policy / redrive_allow_policy resources would reference the queues both ways.
locals {
  queue_arn_prefix    = "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  ingest_queue_arn    = "${local.queue_arn_prefix}:${var.name}-ingest"
  isolation_queue_arn = "${local.queue_arn_prefix}:${var.name}-isolation"
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name}-ingest-dlq"
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [local.ingest_queue_arn, local.isolation_queue_arn]
  })
}

data "aws_iam_policy_document" "s3_to_queue" {
  statement {
    sid       = "RawBucketNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [local.ingest_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.raw_bucket_arn]
    }
  }
}

resource "aws_sqs_queue" "ingest" {
  name                              = "${var.name}-ingest"
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 1209600
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  policy                            = data.aws_iam_policy_document.s3_to_queue.json
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Messages delivered more than once are moved here by the converter and converted one per
# invocation, so an object that kills the converter reaches the DLQ alone.
resource "aws_sqs_queue" "isolation" {
  name                              = "${var.name}-isolation"
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

resource "aws_s3_bucket_notification" "raw" {
  bucket = local.raw_bucket
  queue {
    queue_arn     = aws_sqs_queue.ingest.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.raw_prefix == "" ? null : var.raw_prefix
    filter_suffix = var.raw_suffix == "" ? null : var.raw_suffix
  }
}
