# Resource moves between module versions. Each `moved` block carries an existing deployment's
# state to the resource's new address, so `terraform plan` after an upgrade shows no
# replacement. Keep them: a deployment may upgrade from any earlier version.

# The raw bucket's notification became optional (`notifications = "none"` leaves the wiring to
# the user), so the single resource gained a count.
moved {
  from = aws_s3_bucket_notification.raw
  to   = aws_s3_bucket_notification.raw[0]
}

# The schema object moved into a per-table map when the module learned several tables; a
# single-table deployment's table is keyed "table".
moved {
  from = aws_s3_object.schema
  to   = aws_s3_object.schema["table"]
}

# The compactor-errors alarm became one of the per-function error alarms, beside the
# converter's.
moved {
  from = aws_cloudwatch_metric_alarm.compactor_errors
  to   = aws_cloudwatch_metric_alarm.function_errors["compactor"]
}

# The freshness-lag, abandoned-rows and superseded-versions alarms moved into the per-table
# alarm map (keyed "<alarm>:<table>") when the module learned several tables.
moved {
  from = aws_cloudwatch_metric_alarm.freshness_lag
  to   = aws_cloudwatch_metric_alarm.table["freshness_lag:table"]
}

moved {
  from = aws_cloudwatch_metric_alarm.abandoned_rows
  to   = aws_cloudwatch_metric_alarm.table["abandoned_rows:table"]
}

moved {
  from = aws_cloudwatch_metric_alarm.superseded_versions
  to   = aws_cloudwatch_metric_alarm.table["superseded_versions:table"]
}
