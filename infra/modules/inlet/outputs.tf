output "table_uri" {
  description = "The Delta table (INLET_TABLE_URI)."
  value       = local.table_uri
}

output "raw_bucket" {
  description = "Bucket services write to."
  value       = local.raw_bucket
}

output "lake_bucket" {
  description = "Bucket holding the table."
  value       = local.lake_bucket
}

output "queue_url" {
  description = "Ingest queue (INLET_QUEUE_URL for inlet backfill and status)."
  value       = aws_sqs_queue.ingest.id
}

output "dlq_url" {
  description = "Dead-letter queue (INLET_DLQ_URL for inlet status)."
  value       = aws_sqs_queue.dlq.id
}

output "converter_function" {
  description = "Converter function name."
  value       = aws_lambda_function.converter.function_name
}

output "compactor_function" {
  description = "Compactor function name (INLET_COMPACTOR_FUNCTION for inlet compact --function)."
  value       = aws_lambda_function.compactor.function_name
}

output "isolation_queue_url" {
  description = "Queue of redelivered notifications, converted one per invocation (their failures also end in the DLQ)."
  value       = aws_sqs_queue.isolation.id
}
