# Several tables from one bucket, notification modes, Glue registration and the enterprise
# inputs, planned offline with a mocked provider: `infra/check.sh` (part of `make test`).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { id = "eu-west-1", name = "eu-west-1", region = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

# Bucket names are known at plan in a real run only once the buckets exist; give them now.
override_resource {
  target          = aws_s3_bucket.raw
  override_during = plan
  values          = { id = "raw", arn = "arn:aws:s3:::raw" }
}

override_resource {
  target          = aws_s3_bucket.lake
  override_during = plan
  values          = { id = "lake", arn = "arn:aws:s3:::lake" }
}

variables {
  name              = "platform"
  raw_bucket_name   = "raw"
  lake_bucket_name  = "lake"
  converter_package = { filename = null, s3_bucket = "artifacts", s3_key = "converter.zip" }
  compactor_package = { filename = null, s3_bucket = "artifacts", s3_key = "compactor.zip" }
  tables = {
    web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", partition_by = "date=key" }
    api = {
      raw_prefix  = "api/", table_prefix = "tables/api_events"
      schema_file = "../../examples/multi-table/schemas/api.schema.json"
      settings    = { INLET_TARGET_FILE_BYTES = "134217728" }
    }
  }
}

run "two_tables_through_eventbridge_get_a_routing_file_a_rule_each_and_per_table_alarms" {
  command = plan
  variables {
    notifications      = "eventbridge"
    glue_database_name = "lake"
    tags               = { team = "platform" }
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.objects) == 2 && length(aws_cloudwatch_event_target.objects) == 2
    error_message = "one EventBridge rule and target per table"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.objects["api"].event_pattern).detail.object.key[0].wildcard == "api/*.json.zst"
    error_message = "the api rule takes only api/ objects ending in .json.zst"
  }
  assert {
    condition     = aws_s3_bucket_notification.raw[0].eventbridge && length(aws_s3_bucket_notification.raw[0].queue) == 0
    error_message = "S3 sends to EventBridge, not to the queue"
  }
  assert {
    condition = jsondecode(aws_s3_object.routes[0].content).routes == [
      { name = "api", bucket = "raw", prefix = "api/", table_uri = "s3://lake/tables/api_events",
      schema = "s3://lake/tables/api_events/_inlet/schema.json", settings = { INLET_TARGET_FILE_BYTES = "134217728" } },
      { name = "web", bucket = "raw", prefix = "web/", table_uri = "s3://lake/web",
      schema = "s3://lake/web/_inlet/schema.json", partition_by = "date=key" },
    ]
    error_message = "the routing file names each table with its prefix, table, schema, partitioning and settings"
  }
  assert {
    condition     = aws_s3_object.schema["api"].key == "tables/api_events/_inlet/schema.json" && length(aws_s3_object.schema) == 2
    error_message = "each table's schema is uploaded next to it"
  }
  assert {
    condition = (
      aws_lambda_function.converter.environment[0].variables["INLET_ROUTES"] == "s3://lake/_inlet/routes/platform.json"
      && !contains(keys(aws_lambda_function.converter.environment[0].variables), "INLET_TABLE_URI")
      && !contains(keys(aws_lambda_function.compactor.environment[0].variables), "INLET_SCHEMA")
    )
    error_message = "with several tables the functions read the routing file, and no single table or schema"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.table) == 20 && aws_cloudwatch_metric_alarm.table["failed_messages:web"].metric_name == "FailedMessages" && aws_cloudwatch_metric_alarm.table["stranded_sources:api"].metric_name == "StrandedSources" && aws_cloudwatch_metric_alarm.table["table_unavailable:api"].metric_name == "TableUnavailable" && aws_cloudwatch_metric_alarm.table["history_rebuild:api"].metric_name == "HistoryRebuildFilesLeft" && aws_cloudwatch_metric_alarm.table["held_fragments:api"].metric_name == "FragmentsHeldForSchema" && aws_cloudwatch_metric_alarm.table["quarantined_lines:api"].dimensions.Table == "s3://lake/tables/api_events"
    error_message = "ten alarms per table, on that table's metrics"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.heartbeat) == 2 && aws_cloudwatch_metric_alarm.heartbeat["api"].alarm_name == "platform-api-heartbeat" && length(aws_cloudwatch_dashboard.deployment) == 1
    error_message = "a heartbeat alarm per table, and one dashboard"
  }
  assert {
    condition     = output.cli_environment["INLET_ROUTES"] == "s3://lake/_inlet/routes/platform.json" && !contains(keys(output.cli_environment), "INLET_TABLE_URI")
    error_message = "the inlet command's settings name the routing file"
  }
  assert {
    condition     = aws_glue_catalog_table.tables["web"].parameters.table_type == "DELTA" && aws_glue_catalog_table.tables["api"].storage_descriptor[0].location == "s3://lake/tables/api_events/"
    error_message = "each table is registered in Glue as a Delta table at its location"
  }
  assert {
    condition     = aws_lambda_function.converter.tags.team == "platform" && aws_sqs_queue.ingest.tags.team == "platform" && aws_s3_bucket.lake[0].tags.team == "platform"
    error_message = "tags reach the resources"
  }
}

run "sqs_notifications_are_one_per_table_prefix" {
  command = plan
  assert {
    condition     = toset([for queue in aws_s3_bucket_notification.raw[0].queue : queue.filter_prefix]) == toset(["web/", "api/"])
    error_message = "one S3 queue notification per table prefix"
  }
}

run "nested_prefixes_with_sqs_notifications_are_refused" {
  command = plan
  variables {
    tables = {
      web   = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json" }
      admin = { raw_prefix = "web/admin/", schema_file = "../../../schemas/events.schema.json" }
    }
  }
  expect_failures = [aws_s3_object.routes]
}

run "nested_prefixes_through_eventbridge_are_accepted" {
  command = plan
  variables {
    notifications = "eventbridge"
    tables = {
      web   = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json" }
      admin = { raw_prefix = "web/admin/", schema_file = "../../../schemas/events.schema.json" }
    }
  }
}

run "no_notifications_leaves_the_bucket_alone" {
  command = plan
  variables {
    notifications           = "none"
    notification_topic_arns = ["arn:aws:sns:eu-west-1:123456789012:raw-objects"]
  }
  assert {
    condition     = length(aws_s3_bucket_notification.raw) == 0 && length(aws_cloudwatch_event_rule.objects) == 0
    error_message = "notifications = none creates no notification and no rule"
  }
}

run "a_table_setting_that_belongs_to_the_table_itself_is_refused" {
  command = plan
  variables {
    tables = { web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_TABLE_URI = "s3://elsewhere/t" } } }
  }
  expect_failures = [var.tables]
}

run "a_table_without_a_prefix_is_refused" {
  command = plan
  variables {
    tables = { web = { raw_prefix = "", schema_file = "../../../schemas/events.schema.json" } }
  }
  expect_failures = [var.tables]
}

run "an_unknown_notification_mode_is_refused" {
  command = plan
  variables {
    notifications = "kafka"
  }
  expect_failures = [var.notifications]
}

run "one_table_without_a_schema_file_is_refused" {
  command = plan
  variables {
    tables = {}
  }
  expect_failures = [aws_sqs_queue.ingest]
}

run "raw_versions_expiring_before_the_queue_drains_are_refused" {
  command = plan
  variables {
    raw_noncurrent_version_days = 7
  }
  expect_failures = [var.raw_noncurrent_version_days]
}

run "enterprise_inputs_reach_roles_functions_and_buckets" {
  command = plan
  variables {
    tables                   = {}
    schema_file              = "../../../schemas/events.schema.json"
    permissions_boundary_arn = "arn:aws:iam::123456789012:policy/boundary"
    vpc_config               = { subnet_ids = ["subnet-1"], security_group_ids = ["sg-1"] }
    create_alarm_topic       = true
    alarm_emails             = ["oncall@example.com"]
  }
  assert {
    condition     = aws_iam_role.converter.permissions_boundary == "arn:aws:iam::123456789012:policy/boundary" && aws_iam_role.compactor.permissions_boundary == "arn:aws:iam::123456789012:policy/boundary"
    error_message = "both roles carry the permissions boundary"
  }
  assert {
    condition     = aws_lambda_function.converter.vpc_config[0].subnet_ids == toset(["subnet-1"]) && length(aws_iam_role_policy_attachment.vpc) == 2
    error_message = "both functions run in the VPC, with ENI permissions"
  }
  assert {
    condition     = length(aws_s3_bucket_policy.tls_only) == 2 && length(aws_s3_bucket_lifecycle_configuration.raw) == 1
    error_message = "both buckets refuse plain HTTP; old raw versions expire"
  }
  assert {
    condition     = length(aws_sns_topic.alarms) == 1 && length(aws_sns_topic_subscription.alarm_emails) == 1
    error_message = "the alarm topic exists with its subscription"
  }
  assert {
    condition     = aws_lambda_function.converter.environment[0].variables["INLET_TABLE_URI"] == "s3://lake/events" && length(aws_cloudwatch_metric_alarm.table) == 10
    error_message = "one table: configured as before"
  }
}

run "sealed_batches_are_announced_on_a_fifo_queue_the_compactor_commits_from" {
  command = plan

  assert {
    condition     = aws_sqs_queue.commits[0].fifo_queue && endswith(aws_sqs_queue.commits[0].name, ".fifo")
    error_message = "the commit queue is FIFO (one message group per table)"
  }
  assert {
    condition     = aws_sqs_queue.commits_dlq[0].fifo_queue && aws_sqs_queue.commits[0].visibility_timeout_seconds == 5400
    error_message = "its dead-letter queue is FIFO too, and a message stays hidden six compactor timeouts (AWS's advice for a mapping)"
  }
  assert {
    condition     = aws_sqs_queue.commits[0].fifo_throughput_limit == "perMessageGroupId" && aws_sqs_queue.commits[0].deduplication_scope == "messageGroup"
    error_message = "high-throughput FIFO: the limit is per table, not per queue"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.commits[0].batch_size == 10 && contains(aws_lambda_event_source_mapping.commits[0].function_response_types, "ReportBatchItemFailures")
    error_message = "the compactor reads the commit queue, failing only the messages of a table that failed"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.commits[0].scaling_config[0].maximum_concurrency == 2 && aws_lambda_function.compactor.reserved_concurrent_executions == 4
    error_message = "two tables commit in parallel, with two more executions for the schedule and maintenance"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.converter.environment[0].variables), "INLET_COMPACTOR_FUNCTION")
    error_message = "no size trigger beside the commit queue"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.commits_dlq_not_empty) == 1
    error_message = "announcements that keep failing are alarmed"
  }
}

run "without_the_commit_queue_one_compactor_runs_at_a_time" {
  command = plan
  variables {
    commit_queue = false
  }

  assert {
    condition     = length(aws_sqs_queue.commits) == 0 && length(aws_lambda_event_source_mapping.commits) == 0
    error_message = "no commit queue"
  }
  assert {
    condition     = aws_lambda_function.compactor.reserved_concurrent_executions == 1 && !contains(keys(aws_lambda_function.converter.environment[0].variables), "INLET_COMMIT_QUEUE_URL")
    error_message = "one compactor at a time, and the converter announces nothing"
  }
  assert {
    condition     = contains(keys(aws_lambda_function.converter.environment[0].variables), "INLET_COMPACTOR_FUNCTION")
    error_message = "the size trigger, as before the commit queue"
  }
}

run "a_commit_queue_of_one_run_at_a_time_is_refused" {
  command = plan
  variables {
    compactor_concurrency = 1
  }
  expect_failures = [aws_lambda_event_source_mapping.commits]
}

run "a_scheduled_reconciliation_gets_a_rule_an_alarm_per_table_and_the_ingest_queue" {
  command = plan
  variables {
    reconcile = { schedule = "rate(2 hours)" }
    tables = {
      web = {
        raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", partition_by = "date=key"
        settings   = { INLET_RECONCILE_PREFIXES = "s3://raw/web/date={date}/" }
      }
      api = { raw_prefix = "api/", schema_file = "../../examples/multi-table/schemas/api.schema.json" }
    }
  }

  assert {
    condition     = aws_cloudwatch_event_rule.reconcile[0].schedule_expression == "rate(2 hours)"
    error_message = "the reconciliation runs on its schedule"
  }
  assert {
    condition = jsondecode(aws_cloudwatch_event_target.reconcile[0].input) == {
      reconcile = { window_minutes = 120, settle_minutes = 60, key_lookback_hours = 1, suffix = ".json.zst", renotify = true }
    }
    error_message = "the compactor is asked for the window, the settle time, the suffix and renotification"
  }
  assert {
    condition     = [for alarm in aws_cloudwatch_metric_alarm.table : alarm.alarm_name if alarm.metric_name == "UnaccountedObjects"] == ["platform-web-unaccounted-objects"]
    error_message = "an unaccounted-objects alarm for each table reconciled (web), none for the other"
  }
  assert {
    condition     = aws_lambda_function.compactor.reserved_concurrent_executions == 5
    error_message = "a slot of its own for the reconciliation: 2 commit-queue runs, 2 for the schedule and maintenance, 1"
  }
  assert {
    condition     = contains(keys(aws_lambda_function.compactor.environment[0].variables), "INLET_QUEUE_URL")
    error_message = "the compactor renotifies through the ingest queue"
  }
}

run "without_a_reconciliation_there_is_no_rule_no_alarm_and_no_queue_for_the_compactor" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_event_rule.reconcile) == 0 && length([for alarm in aws_cloudwatch_metric_alarm.table : alarm if alarm.metric_name == "UnaccountedObjects"]) == 0
    error_message = "off by default"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.compactor.environment[0].variables), "INLET_QUEUE_URL")
    error_message = "the compactor sends nothing to the ingest queue"
  }
}

run "a_reconcile_prefix_that_is_no_s3_uri_is_refused" {
  command = plan
  variables {
    tables = { web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_RECONCILE_PREFIXES = "web/date={date}/" } } }
  }
  expect_failures = [var.tables]
}

run "a_reconcile_prefix_without_a_date_or_with_another_placeholder_is_refused" {
  command = plan
  variables {
    tables = {
      web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_RECONCILE_PREFIXES = "s3://raw/web/" } }
      api = { raw_prefix = "api/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_RECONCILE_PREFIXES = "s3://raw/api/{day}/{date}/" } }
    }
  }
  expect_failures = [var.tables]
}

run "a_reconcile_prefix_outside_the_tables_raw_prefix_is_refused" {
  command = plan
  variables {
    reconcile = {}
    tables = {
      web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_RECONCILE_PREFIXES = "s3://raw/api/date={date}/" } }
    }
  }
  expect_failures = [aws_lambda_function.compactor]
}

run "a_reconcile_window_out_of_range_is_refused" {
  command = plan
  variables {
    reconcile = { window_minutes = 1 }
  }
  expect_failures = [var.reconcile]
}

run "a_fractional_reconcile_window_is_refused" {
  command = plan
  variables {
    reconcile = { window_minutes = 90.5 }
  }
  expect_failures = [var.reconcile]
}

run "a_table_properties_setting_that_is_not_a_json_object_of_delta_properties_is_refused" {
  command = plan
  variables {
    tables = { web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_TABLE_PROPERTIES = "{\"delta.appendOnly\": \"true\"}" } } }
  }
  expect_failures = [var.tables]
}

run "a_table_can_keep_its_own_table_properties" {
  command = plan
  variables {
    tables = { web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_TABLE_PROPERTIES = "{\"delta.dataSkippingNumIndexedCols\": \"8\"}" } } }
  }
  assert {
    condition     = strcontains(aws_s3_object.routes[0].content, "delta.dataSkippingNumIndexedCols")
    error_message = "a table's INLET_TABLE_PROPERTIES reaches its route's settings"
  }
}
