# Alarms for the three ways ingestion falls behind or loses its way.

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name          = "${var.name}-dlq-not-empty"
  alarm_description   = "Objects Inlet could not ingest (corrupt, unreadable): see the DLQ messages and the converter log."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  alarm_name          = "${var.name}-queue-age"
  alarm_description   = "The converter is not keeping up with new objects."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.ingest.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_queue_age_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# FreshnessLag is emitted by the compactor (CloudWatch embedded metric format).
resource "aws_cloudwatch_metric_alarm" "freshness_lag" {
  alarm_name          = "${var.name}-freshness-lag"
  alarm_description   = "Staged rows wait too long for a Delta commit: check the compactor's log."
  namespace           = "Inlet"
  metric_name         = "FreshnessLag"
  dimensions          = { Function = "compactor", Table = local.table_uri }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_freshness_lag_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "compactor_errors" {
  alarm_name          = "${var.name}-compactor-errors"
  alarm_description   = "Compactions are failing; staged fragments accumulate."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.compactor.function_name }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "abandoned_rows" {
  alarm_name          = "${var.name}-abandoned-rows"
  alarm_description   = "The compactor voided unsealed converter batches: their converters died or ran past abandon_after_seconds, and SQS redelivers their messages. Check the converter's errors and timeout."
  namespace           = "Inlet"
  metric_name         = "AbandonedRows"
  dimensions          = { Function = "compactor", Table = local.table_uri }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "superseded_versions" {
  alarm_name          = "${var.name}-superseded-versions"
  alarm_description   = "Notified object versions were overwritten or deleted before the converter read them, so they were never ingested. The record under _inlet/superseded/ names each one; turn on bucket versioning (the module's default) to ingest every version."
  namespace           = "Inlet"
  metric_name         = "SupersededVersions"
  dimensions          = { Function = "converter", Table = local.table_uri }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}
