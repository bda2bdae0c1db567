# Inputs that cannot work are refused at plan time, each with a message saying what is valid.
# Runs offline with a mocked provider: `infra/check.sh` (part of `make test`).

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

variables {
  name              = "events"
  raw_bucket_name   = "raw-events"
  lake_bucket_name  = "lake-events"
  converter_package = { filename = null, s3_bucket = "artifacts", s3_key = "converter.zip" }
  compactor_package = { filename = null, s3_bucket = "artifacts", s3_key = "compactor.zip" }
  schema_file       = "../../../schemas/events.schema.json"
}

run "the_defaults_plan" {
  command = plan
}

run "partition_by_without_a_source_is_refused" {
  command = plan
  variables {
    partition_by = "date"
  }
  expect_failures = [var.partition_by]
}

run "several_typed_partition_columns_plan" {
  command = plan
  variables {
    partition_by = "service=key,day=key:date,date=date(event_time),hour=hour(event_time),region=value(region)"
  }
}

run "an_unknown_partition_source_is_refused" {
  command = plan
  variables {
    partition_by = "date=key,minute=minute(event_time)"
  }
  expect_failures = [var.partition_by]
}

run "an_unknown_framing_is_refused" {
  command = plan
  variables {
    framing = "json-lines"
  }
  expect_failures = [var.framing]
}

run "a_partition_column_named_twice_is_refused" {
  command = plan
  variables {
    partition_by = "date=key,Date=date(event_time)"
  }
  expect_failures = [var.partition_by]
}

run "a_batch_size_past_the_event_source_mapping_limit_is_refused" {
  command = plan
  variables {
    batch_size = 20000
  }
  expect_failures = [var.batch_size]
}

run "a_large_batch_without_a_batching_window_is_refused" {
  command = plan
  variables {
    batch_size                      = 50
    maximum_batching_window_seconds = 0
  }
  expect_failures = [aws_lambda_event_source_mapping.converter]
}

run "abandoning_batches_sooner_than_a_converter_runs_is_refused" {
  command = plan
  variables {
    converter_timeout_seconds = 300
    abandon_after_seconds     = 120
  }
  expect_failures = [aws_lambda_function.compactor]
}

run "a_history_rebuild_budget_the_compactor_timeout_would_cut_short_is_refused" {
  command = plan
  variables {
    compactor_timeout_seconds = 300
  }
  expect_failures = [aws_lambda_function.compactor]
}

run "out_of_range_function_and_queue_settings_are_refused" {
  command = plan
  variables {
    converter_memory_mb = 64
    maximum_concurrency = 1
    max_receive_count   = 0
    log_retention_days  = 45
  }
  expect_failures = [var.converter_memory_mb, var.maximum_concurrency, var.max_receive_count, var.log_retention_days]
}

run "a_heartbeat_shorter_than_a_compaction_cycle_or_a_negative_failure_threshold_is_refused" {
  command = plan
  variables {
    heartbeat_minutes   = 5
    max_failed_messages = -1
  }
  expect_failures = [var.heartbeat_minutes, var.max_failed_messages]
}

run "a_mistyped_per_table_setting_is_refused_at_plan" {
  command = plan
  variables {
    tables = {
      web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_TARGET_FILE_BYTES = "256MiB" } }
      api = { raw_prefix = "api/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_FRESHNES_SECONDS = "30" } }
    }
  }
  expect_failures = [var.tables]
}

run "valid_per_table_settings_plan" {
  command = plan
  variables {
    tables = {
      web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_TARGET_FILE_BYTES = "134217728", INLET_UNKNOWN_FIELDS = "rescue", INLET_OPTIMIZE_MIN_FILES = "0" } }
    }
  }
}

run "framed_tables_and_settle_times_plan" {
  command = plan
  variables {
    tables = {
      trail    = { raw_prefix = "trail/", schema_file = "../../../schemas/events.schema.json", partition_by = "date=date(event_time),hour=hour(event_time)", settings = { INLET_FRAMING = "array:Records", INLET_COMPLETE_SETTLE_SECONDS = "0" } }
      firehose = { raw_prefix = "firehose/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_FRAMING = "concatenated" } }
    }
  }
}

run "a_table_of_an_unknown_framing_is_refused" {
  command = plan
  variables {
    tables = {
      web = { raw_prefix = "web/", schema_file = "../../../schemas/events.schema.json", settings = { INLET_FRAMING = "array:" } }
    }
  }
  expect_failures = [var.tables]
}

run "a_schedule_that_is_not_an_expression_is_refused" {
  command = plan
  variables {
    compact_schedule = "every 5 minutes"
  }
  expect_failures = [var.compact_schedule]
}

run "a_table_at_the_bucket_root_and_an_invalid_bucket_name_are_refused" {
  command = plan
  variables {
    table_prefix     = "/"
    lake_bucket_name = "Lake_Events"
  }
  expect_failures = [var.table_prefix, var.lake_bucket_name]
}

run "table_properties_reach_the_functions_as_json" {
  command = plan
  variables {
    table_properties = { "delta.dataSkippingNumIndexedCols" = "8" }
  }
  assert {
    condition     = jsondecode(aws_lambda_function.compactor.environment[0].variables["INLET_TABLE_PROPERTIES"]) == { "delta.dataSkippingNumIndexedCols" = "8" }
    error_message = "table_properties become INLET_TABLE_PROPERTIES"
  }
}

run "no_table_properties_set_no_setting" {
  command = plan
  assert {
    condition     = !contains(keys(aws_lambda_function.compactor.environment[0].variables), "INLET_TABLE_PROPERTIES")
    error_message = "without table_properties, INLET_TABLE_PROPERTIES is not set"
  }
}

run "a_table_property_that_changes_how_the_table_is_written_is_refused" {
  command = plan
  variables {
    table_properties = { "delta.columnMapping.mode" = "name" }
  }
  expect_failures = [var.table_properties]
}

run "a_log_setting_as_a_table_property_is_refused" {
  command = plan
  variables {
    table_properties = { "delta.checkpointInterval" = "10" }
  }
  expect_failures = [var.table_properties]
}
