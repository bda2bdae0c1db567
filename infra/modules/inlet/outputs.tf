output "table_uri" {
  description = "The Delta table (INLET_TABLE_URI); with several tables, null (see table_uris)."
  value       = local.several_tables ? null : local.table_uris["table"]
}

output "table_uris" {
  description = "Each table's URI, by table name (\"table\" for a single-table deployment)."
  value       = local.table_uris
}

output "routes_uri" {
  description = "The routing file the functions read (INLET_ROUTES); null for a single table."
  value       = local.several_tables ? local.routes_uri : null
}

output "raw_bucket" {
  description = "Bucket services write to."
  value       = local.raw_bucket
}

output "raw_bucket_arn" {
  description = "ARN of the raw bucket."
  value       = local.raw_bucket_arn
}

output "lake_bucket" {
  description = "Bucket holding the tables."
  value       = local.lake_bucket
}

output "lake_bucket_arn" {
  description = "ARN of the lake bucket."
  value       = local.lake_bucket_arn
}

output "queue_url" {
  description = "Ingest queue (INLET_QUEUE_URL for inlet backfill and status)."
  value       = aws_sqs_queue.ingest.id
}

output "queue_arn" {
  description = "ARN of the ingest queue (the target to wire when notifications = \"none\")."
  value       = aws_sqs_queue.ingest.arn
}

output "dlq_url" {
  description = "Dead-letter queue (INLET_DLQ_URL for inlet status)."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "isolation_queue_url" {
  description = "Queue of redelivered notifications, converted one per invocation (their failures also end in the DLQ)."
  value       = aws_sqs_queue.isolation.id
}

output "commit_queue_url" {
  description = "FIFO queue of sealed batch announcements the compactor commits from (null without commit_queue)."
  value       = var.commit_queue ? aws_sqs_queue.commits[0].url : null
}

output "converter_function" {
  description = "Converter function name."
  value       = aws_lambda_function.converter.function_name
}

output "converter_function_arn" {
  description = "ARN of the converter function."
  value       = aws_lambda_function.converter.arn
}

output "converter_role_arn" {
  description = "ARN of the converter's role."
  value       = aws_iam_role.converter.arn
}

output "compactor_function" {
  description = "Compactor function name (INLET_COMPACTOR_FUNCTION for inlet compact --function)."
  value       = aws_lambda_function.compactor.function_name
}

output "compactor_function_arn" {
  description = "ARN of the compactor function."
  value       = aws_lambda_function.compactor.arn
}

output "compactor_role_arn" {
  description = "ARN of the compactor's role."
  value       = aws_iam_role.compactor.arn
}

output "alarm_topic_arn" {
  description = "ARN of the alarm topic (create_alarm_topic); null otherwise."
  value       = one(aws_sns_topic.alarms[*].arn)
}

output "glue_tables" {
  description = "Glue tables registered (database.table), by table name."
  value       = { for name, table in aws_glue_catalog_table.tables : name => "${table.database_name}.${table.name}" }
}

locals {
  # What the `inlet` command reads, so an operator's shell needs no flags.
  cli_environment = merge(
    {
      # The table properties too, so that `inlet check` and a local `inlet compact` keep the
      # ones the compactor keeps instead of setting them back and forth; and how it decides a
      # window is complete, so a local run decides it alike.
      for key in ["INLET_TABLE_URI", "INLET_SCHEMA", "INLET_ROUTES", "INLET_PARTITION_BY", "INLET_CHECKPOINT_INTERVAL",
      "INLET_LOG_RETENTION_DAYS", "INLET_TABLE_PROPERTIES", "INLET_COMPLETE_SETTLE_SECONDS"] :
      key => local.settings[key] if local.settings[key] != ""
    },
    {
      INLET_QUEUE_URL           = aws_sqs_queue.ingest.id
      INLET_DLQ_URL             = aws_sqs_queue.dlq.id
      INLET_ISOLATION_QUEUE_URL = aws_sqs_queue.isolation.id
      INLET_COMPACTOR_FUNCTION  = aws_lambda_function.compactor.function_name
      INLET_COMPLETE_QUEUE_URLS = "${aws_sqs_queue.ingest.id},${aws_sqs_queue.isolation.id}"
    },
    var.commit_queue ? { INLET_COMMIT_QUEUE_URL = aws_sqs_queue.commits[0].url } : {},
  )
}

output "cli_environment" {
  description = "The settings the `inlet` command needs for this deployment (tables, queues, compactor), as environment variables: `inlet status`, `compact --function`, `quarantine` and `backfill` then need no flags (name a table of several with --table)."
  value       = local.cli_environment
}

output "cli_exports" {
  description = "`cli_environment` as shell lines: `eval \"$(terraform output -raw cli_exports)\"`."
  value       = join("", [for key, value in local.cli_environment : "export ${key}='${value}'\n"])
}
