# Alarms for the ways ingestion falls behind, loses its way or refuses data; per table where the
# metric is per table (the Table dimension of Inlet's embedded metrics).

locals {
  alarm_actions = concat(var.alarm_actions, aws_sns_topic.alarms[*].arn)
}

resource "aws_sns_topic" "alarms" {
  count             = var.create_alarm_topic ? 1 : 0
  name              = "${var.name}-alarms"
  kms_master_key_id = coalesce(var.kms_key_arn, "alias/aws/sns")
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "alarm_emails" {
  for_each  = var.create_alarm_topic ? toset(var.alarm_emails) : toset([])
  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

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
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "commits_dlq_not_empty" {
  count               = var.commit_queue ? 1 : 0
  alarm_name          = "${var.name}-commits-dlq-not-empty"
  alarm_description   = "Sealed batches whose table the compactor could not commit, again and again: see the compactor log for the table's error. Their rows stay staged; the schedule commits them once the table is fixed."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.commits_dlq[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
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
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = { converter = aws_lambda_function.converter.function_name, compactor = aws_lambda_function.compactor.function_name }
  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = each.key == "converter" ? "Converter invocations are failing as a whole (configuration, permissions, a crash): their messages are redelivered and end in the DLQ. Check the converter's log." : "Compactions are failing; staged fragments accumulate."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The per-table alarms: what the metric means, which function emits it, how it is read.
locals {
  table_alarms = {
    freshness_lag = {
      function    = "compactor", metric = "FreshnessLag", statistic = "Maximum", period = 300, periods = 2
      threshold   = var.max_freshness_lag_seconds
      description = "Staged rows wait too long for a Delta commit: check the compactor's log."
    }
    abandoned_rows = {
      function    = "compactor", metric = "AbandonedRows", statistic = "Sum", period = 900, periods = 1, threshold = 0
      description = "The compactor voided unsealed converter batches: their converters died or ran past abandon_after_seconds, and SQS redelivers their messages. Check the converter's errors and timeout."
    }
    held_fragments = {
      function    = "compactor", metric = "FragmentsHeldForSchema", statistic = "Maximum", period = 900, periods = 1, threshold = 0
      description = "Staged fragments carry a column that cannot join the table (not nullable, no exact Delta type, or typed two ways by different converters): they stay staged, uncommitted, until the declared schema is fixed. The compactor log names each fragment and column."
    }
    stranded_sources = {
      function    = "compactor", metric = "StrandedSources", statistic = "Maximum", period = 900, periods = 1, threshold = 0
      description = "A sealed converter batch lost a fragment (unreadable, set aside under _inlet/corrupt/): the sources it held part of are kept staged, never committed incomplete. The compactor's answer and log name them; run `inlet backfill` on those keys to stage them again."
    }
    compaction_failed = {
      function    = "compactor", metric = "CompactionFailed", statistic = "Maximum", period = 900, periods = 1, threshold = 0
      description = "A compaction of this table failed (its declared schema does not fit the table, the table cannot be read or written, or the store failed); the other tables of the deployment compact as usual, and this one's rows wait staged, none lost. The compactor log names the table and the cause; a table that cannot take its schema is checked again on every run."
    }
    table_unavailable = {
      function    = "converter", metric = "TableUnavailable", statistic = "Sum", period = 300, periods = 1, threshold = 0
      description = "The converter could not set this table up (its declared schema missing or invalid): its messages fail unread and SQS delivers them again; the other tables convert as usual. The converter log names the table and the cause; it sets the table up again every 20 s, so deploying a good schema ends it. Messages that exhaust their receives reach the DLQ: redrive them once fixed."
    }
    history_rebuild = {
      function    = "compactor", metric = "HistoryRebuildFilesLeft", statistic = "Maximum", period = 900, periods = 1, threshold = 0
      description = "The load history index was lost or damaged and the log no longer holds every commit: the compactor is rebuilding it from the table's lineage columns, a budget per run, and commits nothing meanwhile (rows wait staged, none lost). The metric is the data files still to read; the compactor log shows the progress. It clears on its own; if it does not fall, check the compactor's errors."
    }
    superseded_versions = {
      function    = "converter", metric = "SupersededVersions", statistic = "Sum", period = 900, periods = 1, threshold = 0
      description = "Notified object versions were overwritten or deleted before the converter read them, so they were never ingested. The record under _inlet/superseded/ names each one; turn on bucket versioning (the module's default) to ingest every version."
    }
    failed_messages = {
      function    = "converter", metric = "FailedMessages", statistic = "Sum", period = 300, periods = 1
      threshold   = var.max_failed_messages
      description = "The converter failed notifications of this table (an object it could not read or decode, a table it could not write, a conversion cut short by the deadline): SQS delivers them again, and after max_receive_count receives moves them to the DLQ. The converter log names each message, object and reason."
    }
    unaccounted_objects = {
      function    = "compactor", metric = "UnaccountedObjects", statistic = "Maximum", period = 3600, periods = 1, threshold = 0
      enabled     = var.reconcile != null
      description = "The scheduled reconciliation (each run one data point: the alarm fires on a run that finds any, and clears after an hour without one) found object versions under the table's reconcile prefixes that the pipeline never heard of: no commit, staged fragment, quarantine, superseded or failure record (a lost or misrouted notification, notifications switched off, a rule edited by hand). With reconcile.renotify they were sent through the pipeline again, exactly once by the load history; the compactor log names each. Run `inlet reconcile` on the prefix to see them."
    }
    quarantined_lines = {
      function    = "converter", metric = "QuarantinedLines", statistic = "Sum", period = 900, periods = 1
      threshold   = var.max_quarantined_lines
      description = "Lines were refused (bad JSON, values that do not fit the schema) and kept, with their source key, line number and reason, under <table>/_inlet/quarantine/<bucket>/<key>@<digest>.ndjson."
    }
  }
  table_alarm_instances = merge([
    for alarm, spec in local.table_alarms : {
      for table in keys(local.tables) : "${alarm}:${table}" => merge(spec, { alarm = alarm, table = table })
      # A table's reconciliation alarm only where the table is reconciled.
      if alarm != "unaccounted_objects" || length(local.reconcile_prefixes[table]) > 0
    } if lookup(spec, "enabled", true)
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "table" {
  for_each            = local.table_alarm_instances
  alarm_name          = local.several_tables ? "${var.name}-${each.value.table}-${replace(each.value.alarm, "_", "-")}" : "${var.name}-${replace(each.value.alarm, "_", "-")}"
  alarm_description   = "${each.value.description} (${local.table_uris[each.value.table]})"
  namespace           = "Inlet"
  metric_name         = each.value.metric
  dimensions          = { Function = each.value.function, Table = local.table_uris[each.value.table] }
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Objects arrive but the compactor does not run for the table: whatever stopped it (a disabled
# schedule, a failure at start or every run, an unconsumed commit queue). Rows staged in the
# window and no compactor run reported for the table (each run, committing or not, reports
# CommitVersion; a failed one reports only CompactionFailed). Missing data counts as none.
resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  for_each            = var.heartbeat_minutes == null ? {} : local.tables
  alarm_name          = local.several_tables ? "${var.name}-${each.key}-heartbeat" : "${var.name}-heartbeat"
  alarm_description   = "Rows were staged for ${local.table_uris[each.key]} in the last ${var.heartbeat_minutes} minutes but no compaction of it ran to its end: check that the compactor runs (its schedule, its errors, the commit queue's mapping) and its log for this table. The rows wait staged, none lost."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "stalled"
    expression  = "IF(FILL(staged, 0) > 0 AND FILL(runs, 0) == 0, 1, 0)"
    label       = "Rows staged but no compaction ran"
    return_data = true
  }
  metric_query {
    id = "staged"
    metric {
      namespace   = "Inlet"
      metric_name = "Rows"
      dimensions  = { Function = "converter", Table = local.table_uris[each.key] }
      stat        = "Sum"
      period      = var.heartbeat_minutes * 60
    }
  }
  metric_query {
    id = "runs"
    metric {
      namespace   = "Inlet"
      metric_name = "CommitVersion"
      dimensions  = { Function = "compactor", Table = local.table_uris[each.key] }
      stat        = "SampleCount"
      period      = var.heartbeat_minutes * 60
    }
  }
}

# One dashboard per deployment: the queues, then a row per table.
locals {
  dashboard_queue_widgets = [
    for queue in concat(
      [aws_sqs_queue.ingest.name, aws_sqs_queue.dlq.name, aws_sqs_queue.isolation.name],
      var.commit_queue ? [aws_sqs_queue.commits[0].name, aws_sqs_queue.commits_dlq[0].name] : [],
      ) : {
      type = "metric", width = 6, height = 5
      properties = {
        title   = queue, region = data.aws_region.current.id, stat = "Maximum", period = 60
        metrics = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue]]
      }
    }
  ]
  dashboard_table_widgets = flatten([
    for name, uri in local.table_uris : [
      {
        type = "metric", width = 8, height = 6
        properties = {
          title = "${name}: rows staged and committed", region = data.aws_region.current.id, stat = "Sum", period = 300
          metrics = [
            ["Inlet", "Rows", "Function", "converter", "Table", uri, { label = "staged" }],
            ["Inlet", "RowsCommitted", "Function", "compactor", "Table", uri, { label = "committed" }],
          ]
        }
      },
      {
        type = "metric", width = 8, height = 6
        properties = {
          title   = "${name}: freshness lag (s)", region = data.aws_region.current.id, stat = "Maximum", period = 300
          metrics = [["Inlet", "FreshnessLag", "Function", "compactor", "Table", uri]]
        }
      },
      {
        type = "metric", width = 8, height = 6
        properties = {
          title = "${name}: failures", region = data.aws_region.current.id, stat = "Sum", period = 300
          metrics = [
            ["Inlet", "FailedMessages", "Function", "converter", "Table", uri],
            ["Inlet", "QuarantinedLines", "Function", "converter", "Table", uri],
            ["Inlet", "TableUnavailable", "Function", "converter", "Table", uri],
            ["Inlet", "CompactionFailed", "Function", "compactor", "Table", uri],
            ["Inlet", "UnaccountedObjects", "Function", "compactor", "Table", uri, { stat = "Maximum" }],
          ]
        }
      },
    ]
  ])
}

resource "aws_cloudwatch_dashboard" "deployment" {
  count          = var.dashboard ? 1 : 0
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = concat(local.dashboard_queue_widgets, local.dashboard_table_widgets) })
}
