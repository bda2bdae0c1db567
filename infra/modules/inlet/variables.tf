# Inputs of the Inlet module: Delta tables fed from one raw bucket (one table by default;
# several with `tables`).
# Function settings (the INLET_* environment variables) carry the same defaults as the code;
# a unit test (shared/src/config.rs) checks that they stay equal.

variable "name" {
  description = "Name of this pipeline; prefixes every resource (queues, functions, roles, alarms)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 1-40 lowercase letters, digits or hyphens."
  }
}

# ---------------------------------------------------------------- storage

variable "raw_bucket_name" {
  description = "Bucket the services write *.json.zst objects to."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.raw_bucket_name))
    error_message = "raw_bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'."
  }
}

variable "create_raw_bucket" {
  description = "Create the raw bucket; false uses an existing bucket by name (its notification configuration is then owned by this module)."
  type        = bool
  default     = true
}

variable "raw_prefix" {
  description = "Only objects under this key prefix are ingested (\"\" for the whole bucket). Ignored when tables is set."
  type        = string
  default     = ""
}

variable "raw_suffix" {
  description = "Only objects whose key ends with this are ingested."
  type        = string
  default     = ".json.zst"
  validation {
    condition     = !strcontains(var.raw_suffix, "*")
    error_message = "raw_suffix is a literal ending (e.g. \".json.zst\"), without '*'."
  }
}

variable "lake_bucket_name" {
  description = "Bucket holding the Delta table."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.lake_bucket_name))
    error_message = "lake_bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'."
  }
}

variable "create_lake_bucket" {
  description = "Create the lake bucket; false uses an existing bucket by name."
  type        = bool
  default     = true
}

variable "table_prefix" {
  description = "Key prefix of the Delta table in the lake bucket (the table URI is s3://<lake>/<prefix>). Ignored when tables is set."
  type        = string
  default     = "events"
  validation {
    condition     = trim(var.table_prefix, "/") != "" && !strcontains(var.table_prefix, "*")
    error_message = "table_prefix must name a key prefix in the lake bucket (e.g. \"events\"): the table cannot be the bucket's root."
  }
}

variable "schema_file" {
  description = "Local path of the declared schema (JSON); uploaded next to the table and read by both functions. Required unless tables is set (each table names its own)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy delete buckets that still hold objects (tests and demos only)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for buckets, queues and logs; null uses AWS-managed encryption."
  type        = string
  default     = null
}

# ---------------------------------------------------------------- packages

variable "converter_package" {
  description = "Converter code: a local zip (filename: a release's inlet-converter-<version>-<arch>.zip, or the bootstrap.zip of make build-lambdas) or an S3 object (s3_bucket, s3_key)."
  type = object({
    filename  = optional(string)
    s3_bucket = optional(string)
    s3_key    = optional(string)
  })
}

variable "compactor_package" {
  description = "Compactor code, as converter_package."
  type = object({
    filename  = optional(string)
    s3_bucket = optional(string)
    s3_key    = optional(string)
  })
}

variable "architecture" {
  description = "Lambda architecture of the packages: arm64 (cheaper per GB-second) or x86_64."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

# ---------------------------------------------------------------- converter function

variable "converter_memory_mb" {
  description = "Converter memory; also buys CPU (1769 MB = one full vCPU). At least the memory model's figure for the converter settings (about 550 MB at the defaults, docs/design.md#converter-memory)."
  type        = number
  default     = 1769
  validation {
    condition     = var.converter_memory_mb >= 128 && var.converter_memory_mb <= 10240
    error_message = "converter_memory_mb must be from 128 to 10240 (Lambda's range); 1769 buys one full vCPU."
  }
}

variable "converter_timeout_seconds" {
  description = "Converter timeout; the queue's visibility timeout is six times this plus the batching window."
  type        = number
  default     = 300

  validation {
    condition     = var.converter_timeout_seconds >= 30 && var.converter_timeout_seconds <= 900
    error_message = "converter_timeout_seconds must be from 30 (room for the deadline margin) to 900 (Lambda's limit)."
  }
}

variable "batch_size" {
  description = "Most S3 notifications per converter invocation."
  type        = number
  default     = 50

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 10000 (the SQS event source mapping's range); above 10 it needs maximum_batching_window_seconds of at least 1."
  }
}

variable "maximum_batching_window_seconds" {
  description = "Longest the event source mapping waits to fill a batch."
  type        = number
  default     = 20

  validation {
    condition     = var.maximum_batching_window_seconds >= 0 && var.maximum_batching_window_seconds <= 300
    error_message = "maximum_batching_window_seconds must be from 0 to 300."
  }
}

variable "maximum_concurrency" {
  description = "Most converter invocations the queue drives at once (2-1000)."
  type        = number
  default     = 10
  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000 && floor(var.maximum_concurrency) == var.maximum_concurrency
    error_message = "maximum_concurrency must be a whole number from 2 to 1000 (the SQS event source mapping's range)."
  }
}

variable "max_receive_count" {
  description = "Receives of a message before it moves to the dead-letter queue."
  type        = number
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number from 1 to 1000 (SQS's range)."
  }
}

# ---------------------------------------------------------------- compactor function

variable "compactor_memory_mb" {
  description = "Compactor memory."
  type        = number
  default     = 2048
  validation {
    condition     = var.compactor_memory_mb >= 128 && var.compactor_memory_mb <= 10240
    error_message = "compactor_memory_mb must be from 128 to 10240 (Lambda's range)."
  }
}

variable "compactor_timeout_seconds" {
  description = "Compactor timeout."
  type        = number
  default     = 900
  validation {
    condition     = var.compactor_timeout_seconds >= 30 && var.compactor_timeout_seconds <= 900
    error_message = "compactor_timeout_seconds must be from 30 to 900 (Lambda's limit)."
  }
}

variable "compact_schedule" {
  description = "EventBridge schedule of regular compactions."
  type        = string
  default     = "rate(5 minutes)"
  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.compact_schedule))
    error_message = "compact_schedule must be an EventBridge schedule expression: rate(5 minutes) or cron(...)."
  }
}

variable "maintenance_schedule" {
  description = "EventBridge schedule of maintenance runs (optimize small files, vacuum); null disables them."
  type        = string
  default     = "rate(1 day)"
  validation {
    condition     = var.maintenance_schedule == null ? true : can(regex("^(rate|cron)\\(.+\\)$", var.maintenance_schedule))
    error_message = "maintenance_schedule must be an EventBridge schedule expression (rate(1 day) or cron(...)), or null."
  }
}

variable "reconcile" {
  description = "Scheduled reconciliation, off when null: on `schedule` the compactor lists each table's reconcile prefixes (reconcile_prefixes, or INLET_RECONCILE_PREFIXES in a table's settings; a table without them is skipped) over the `window_minutes` of writes that closed `settle_minutes` ago (templates expanded from `key_lookback_hours` before the window, for keys dated earlier than their write), accounts for every object version (committed, staged, quarantined, superseded, failed), alarms per table on the versions the pipeline never heard of (UnaccountedObjects) and, with `renotify`, sends those through the pipeline again, exactly once by the load history. Keep the window above the schedule's interval so windows overlap."
  type = object({
    schedule           = optional(string, "rate(1 hour)")
    window_minutes     = optional(number, 120)
    settle_minutes     = optional(number, 60)
    key_lookback_hours = optional(number, 1)
    renotify           = optional(bool, true)
  })
  default = null
  validation {
    condition     = var.reconcile == null || can(regex("^(rate|cron)\\(.+\\)$", var.reconcile.schedule))
    error_message = "reconcile.schedule must be an EventBridge schedule expression: rate(1 hour) or cron(...)."
  }
  validation {
    condition = var.reconcile == null || try(var.reconcile.window_minutes >= 5 && var.reconcile.window_minutes <= 10080
      && var.reconcile.settle_minutes >= 0 && var.reconcile.settle_minutes <= 1440
      && var.reconcile.key_lookback_hours >= 0 && var.reconcile.key_lookback_hours <= 744
      && floor(var.reconcile.window_minutes) == var.reconcile.window_minutes
      && floor(var.reconcile.settle_minutes) == var.reconcile.settle_minutes
    && floor(var.reconcile.key_lookback_hours) == var.reconcile.key_lookback_hours, false)
    error_message = "reconcile.window_minutes must be a whole number from 5 to 10080, reconcile.settle_minutes from 0 to 1440 and reconcile.key_lookback_hours from 0 to 744."
  }
}

variable "reconcile_prefixes" {
  description = "INLET_RECONCILE_PREFIXES: raw prefixes the scheduled reconciliation lists for the one table (a table of `tables` sets its own in its settings): comma-separated s3://bucket/prefix templates under the table's raw_prefix in the raw bucket, where {date} (YYYY-MM-DD, required) and {hour} (HH) stand for each UTC date and hour of the window (s3://raw/web/date={date}/), so a run lists its window, not the bucket's history. Empty: not reconciled."
  type        = string
  default     = ""
  validation {
    condition = alltrue([for prefix in split(",", var.reconcile_prefixes) : trimspace(prefix) == "" || (
      can(regex("^s3://[^/]+/", trimspace(prefix))) && strcontains(prefix, "{date}")
    && !can(regex("[{}]", replace(replace(prefix, "{date}", ""), "{hour}", ""))))])
    error_message = "reconcile_prefixes are comma-separated s3://bucket/prefix templates holding {date} (and optionally {hour}), no other placeholder."
  }
}

variable "commit_queue" {
  description = "Event-driven commits: the converter announces each sealed batch on a FIFO queue (one message group per table) and the compactor commits that table within seconds, one run per table at a time and tables in parallel. The schedule stays as the safety net. Off: rows wait for the schedule or the size trigger."
  type        = bool
  default     = true
}

variable "compactor_concurrency" {
  description = "Commit-queue runs at once (tables commit in parallel up to this many; at least 2, the least an SQS mapping scales to); the compactor's reserved concurrency is this plus 2 for the schedule and maintenance. null: one per table, at least 2. Without the commit queue: one run at a time."
  type        = number
  default     = null
  validation {
    condition     = var.compactor_concurrency == null ? true : var.compactor_concurrency >= 1
    error_message = "compactor_concurrency must be at least 1."
  }
}

variable "size_trigger" {
  description = "Let the converter start a compaction as soon as a target file's worth of bytes is staged (only without the commit queue, which commits every sealed batch)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- logs and alarms

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups."
  type        = number
  default     = 30
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's retention periods: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "log_level" {
  description = "RUST_LOG of both functions."
  type        = string
  default     = "info"
  validation {
    condition     = can(regex("^(error|warn|info|debug|trace)$|=", var.log_level))
    error_message = "log_level must be error, warn, info, debug or trace, or a RUST_LOG directive list such as \"info,inlet=debug\"."
  }
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified when an alarm fires."
  type        = list(string)
  default     = []
}

variable "max_queue_age_seconds" {
  description = "Alarm when the oldest queued notification is older than this."
  type        = number
  default     = 900
  validation {
    condition     = var.max_queue_age_seconds >= 60
    error_message = "max_queue_age_seconds must be at least 60 (the alarm's period is 5 minutes)."
  }
}

variable "max_freshness_lag_seconds" {
  description = "Alarm when the oldest staged fragment is older than this at a compaction."
  type        = number
  default     = 1800
}

variable "extra_environment" {
  description = "More environment variables for both functions (overrides the module's)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- INLET_* settings (same defaults as the code)

variable "target_file_bytes" {
  description = "INLET_TARGET_FILE_BYTES: target size of the Parquet files the compactor commits."
  type        = number
  default     = 268435456
  validation {
    condition     = var.target_file_bytes >= 1048576
    error_message = "target_file_bytes must be at least 1 MiB (1048576)."
  }
}

variable "fragment_bytes" {
  description = "INLET_FRAGMENT_BYTES: Arrow bytes the converter's open fragment writers hold together before the fullest is staged."
  type        = number
  default     = 134217728
  validation {
    condition     = var.fragment_bytes >= 1048576
    error_message = "fragment_bytes must be at least 1 MiB (1048576)."
  }
}

variable "max_line_bytes" {
  description = "INLET_MAX_LINE_BYTES: longest accepted NDJSON line; longer lines are quarantined."
  type        = number
  default     = 1048576
  validation {
    condition     = var.max_line_bytes >= 1024
    error_message = "max_line_bytes must be at least 1024."
  }
}

variable "max_object_bytes" {
  description = "INLET_MAX_OBJECT_BYTES: most bytes an object may decompress to; a larger one fails alone (DLQ) with a reason naming this limit."
  type        = number
  default     = 8589934592
  validation {
    condition     = var.max_object_bytes > 0
    error_message = "max_object_bytes must be positive."
  }
}

variable "max_object_lines" {
  description = "INLET_MAX_OBJECT_LINES: most lines an object may hold; a longer one fails alone (DLQ) with a reason naming this limit."
  type        = number
  default     = 200000000
  validation {
    condition     = var.max_object_lines > 0
    error_message = "max_object_lines must be positive."
  }
}

variable "piece_bytes" {
  description = "INLET_PIECE_BYTES: decompressed bytes of an object decoded at once; a larger object is read in pieces, one at a time, so its size does not set the converter's memory."
  type        = number
  default     = 16777216
  validation {
    condition     = var.piece_bytes >= 65536
    error_message = "piece_bytes must be at least 65536."
  }
}

variable "deadline_margin_seconds" {
  description = "INLET_DEADLINE_MARGIN_SECONDS: the converter stops taking objects this long before its deadline (at most a quarter of its time) and fails the unfinished ones for redelivery."
  type        = number
  default     = 20
  validation {
    condition     = var.deadline_margin_seconds > 0
    error_message = "deadline_margin_seconds must be positive."
  }
}

variable "framing" {
  description = "INLET_FRAMING: how records are laid out in the raw objects: ndjson (one JSON object per line), concatenated (JSON objects back to back, as Firehose writes them), array (one top-level array) or array:<key> (the array under a key of one top-level object, array:Records for CloudTrail). Ignored when tables is set (give a table its own in its settings)."
  type        = string
  default     = "ndjson"
  validation {
    condition     = can(regex("^(ndjson|concatenated|array|array:[^\"\\\\]+)$", var.framing))
    error_message = "framing must be ndjson, concatenated, array or array:<key> (a key with no quote or backslash)."
  }
}

variable "unknown_fields" {
  description = "INLET_UNKNOWN_FIELDS: ignore undeclared fields, or rescue them (and top-level values that do not fit) as raw JSON in _rescued."
  type        = string
  default     = "ignore"
  validation {
    condition     = contains(["ignore", "rescue"], var.unknown_fields)
    error_message = "unknown_fields must be ignore or rescue."
  }
}

variable "ingested_at" {
  description = "INLET_INGESTED_AT: add an _ingested_at timestamp column."
  type        = bool
  default     = false
}

variable "partition_by" {
  description = "INLET_PARTITION_BY: comma-separated <column>=<source>, the source key, key:date or key:integer (the key's <column>=<value> segment), date(<field>) or hour(<field>) (a timestamp's UTC date or hour), value(<field>) (a field's value) or <field> (a timestamp's UTC date as text); \"\" for an unpartitioned table. Ignored when tables is set."
  type        = string
  default     = ""

  validation {
    condition     = var.partition_by == "" || can(regex("^[A-Za-z_][A-Za-z0-9_]*=(key(:(string|date|integer))?|(date|hour|value)\\([A-Za-z_][A-Za-z0-9_]*\\)|[A-Za-z_][A-Za-z0-9_.]*)(,[A-Za-z_][A-Za-z0-9_]*=(key(:(string|date|integer))?|(date|hour|value)\\([A-Za-z_][A-Za-z0-9_]*\\)|[A-Za-z_][A-Za-z0-9_.]*))*$", var.partition_by))
    error_message = "partition_by must be \"\" (unpartitioned) or comma-separated <column>=<source> with no spaces, the source key, key:date, key:integer, date(<field>), hour(<field>), value(<field>) or <field> (e.g. \"service=key,date=date(event_time),hour=hour(event_time)\")."
  }
  validation {
    condition     = var.partition_by == "" || length(distinct([for item in split(",", var.partition_by) : lower(split("=", item)[0])])) == length(split(",", var.partition_by))
    error_message = "partition_by names a column twice (Delta column names ignore case)."
  }
}

variable "min_compact_bytes" {
  description = "INLET_MIN_COMPACT_BYTES: a scheduled compaction leaves a partition with fewer staged bytes to grow..."
  type        = number
  default     = 67108864
  validation {
    condition     = var.min_compact_bytes >= 0
    error_message = "min_compact_bytes must not be negative."
  }
}

variable "freshness_seconds" {
  description = "INLET_FRESHNESS_SECONDS: ...until its oldest fragment is this old."
  type        = number
  default     = 60
  validation {
    condition     = var.freshness_seconds >= 0
    error_message = "freshness_seconds must not be negative."
  }
}

variable "complete_settle_seconds" {
  description = "INLET_COMPLETE_SETTLE_SECONDS: how long after a day (or an hour, for tables partitioned by hour(...)) ends the compactor waits for stragglers before it declares the window complete under the table's _inlet/complete/; it also waits as long as the ingest queue can keep a message unanswered (visibility timeout times max_receive_count)."
  type        = number
  default     = 900
  validation {
    condition     = var.complete_settle_seconds >= 0
    error_message = "complete_settle_seconds must not be negative."
  }
}

variable "optimize_min_files" {
  description = "INLET_OPTIMIZE_MIN_FILES: small table files in a partition that trigger their rewrite (0: on request only)."
  type        = number
  default     = 16
  validation {
    condition     = var.optimize_min_files >= 0
    error_message = "optimize_min_files must not be negative (0: on request only)."
  }
}

variable "abandon_after_seconds" {
  description = "INLET_ABANDON_AFTER_SECONDS: age after which a converter batch still unsealed is voided and its fragments deleted (its messages are redelivered)."
  type        = number
  default     = 900
}

variable "history_rebuild_seconds" {
  description = "INLET_HISTORY_REBUILD_SECONDS: most time one compactor run spends rebuilding a lost load history index before it saves its progress and stops (the next run continues)."
  type        = number
  default     = 600
  validation {
    condition     = var.history_rebuild_seconds >= 1
    error_message = "history_rebuild_seconds must be positive."
  }
}

variable "history_rebuild_save_files" {
  description = "INLET_HISTORY_REBUILD_SAVE_FILES: data files a load history rebuild reads between saves of its progress."
  type        = number
  default     = 1000
  validation {
    condition     = var.history_rebuild_save_files >= 1
    error_message = "history_rebuild_save_files must be positive."
  }
}

variable "checkpoint_interval" {
  description = "INLET_CHECKPOINT_INTERVAL: commits between Delta checkpoints (kept on the table: set at its creation, and by the compactor's next run after a change)."
  type        = number
  default     = 100
  validation {
    condition     = var.checkpoint_interval >= 1
    error_message = "checkpoint_interval must be positive."
  }
}

variable "delta_log_retention_days" {
  description = "INLET_LOG_RETENTION_DAYS: days Delta keeps commit files (kept on the table as checkpoint_interval is)."
  type        = number
  default     = 30
  validation {
    condition     = var.delta_log_retention_days >= 1
    error_message = "delta_log_retention_days must be at least 1."
  }
}

variable "table_properties" {
  description = "Other Delta table properties kept on every table as checkpoint_interval is (INLET_TABLE_PROPERTIES, as JSON), e.g. { \"delta.dataSkippingNumIndexedCols\" = \"8\" }; a table of `tables` can set its own with INLET_TABLE_PROPERTIES in its settings."
  type        = map(string)
  default     = {}
  validation {
    condition = alltrue([for name, value in var.table_properties : can(regex("^delta\\.(autoOptimize\\.(autoCompact|optimizeWrite)|checkpoint\\.writeStatsAs(Json|Struct)|dataSkipping(NumIndexedCols|StatsColumns)|deletedFileRetentionDuration|targetFileSize|tuneFileSizesForRewrites)$", name)) && trimspace(value) != ""
    && (name != "delta.deletedFileRetentionDuration" || can(regex("^interval [1-9][0-9]* (day|days|week|weeks)$", value)))])
    error_message = "table_properties may keep delta.dataSkippingNumIndexedCols, delta.dataSkippingStatsColumns, delta.deletedFileRetentionDuration (\"interval <n> days\", at least a day), delta.targetFileSize, delta.tuneFileSizesForRewrites, delta.autoOptimize.autoCompact, delta.autoOptimize.optimizeWrite, delta.checkpoint.writeStatsAsJson and delta.checkpoint.writeStatsAsStruct, each with a value; the log settings are checkpoint_interval and delta_log_retention_days, and other properties change how Inlet must write the table."
  }
}

variable "download_concurrency" {
  description = "INLET_DOWNLOAD_CONCURRENCY: source objects the converter downloads at once."
  type        = number
  default     = 16
  validation {
    condition     = var.download_concurrency >= 1 && var.download_concurrency <= 256
    error_message = "download_concurrency must be from 1 to 256."
  }
}

variable "decode_batch_rows" {
  description = "INLET_DECODE_BATCH_ROWS: rows per Arrow record batch when decoding NDJSON."
  type        = number
  default     = 1024
  validation {
    condition     = var.decode_batch_rows >= 1
    error_message = "decode_batch_rows must be positive."
  }
}

# ---------------------------------------------------------------- several tables, notifications, catalog

variable "tables" {
  description = "Several tables from one raw bucket, by name: each table's raw key prefix, its location in the lake bucket (table_prefix, default the name), its schema file, partitioning and per-table INLET_* settings. Empty: the one table of raw_prefix, table_prefix, schema_file and partition_by."
  type = map(object({
    raw_prefix   = string
    table_prefix = optional(string)
    schema_file  = string
    partition_by = optional(string, "")
    settings     = optional(map(string), {})
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.tables) : can(regex("^[a-z0-9][a-z0-9_-]{0,39}$", name))])
    error_message = "Each table name must be 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit (it names rules, alarms and the Glue table)."
  }
  validation {
    condition     = alltrue([for table in values(var.tables) : table.raw_prefix != "" && !strcontains(table.raw_prefix, "*")])
    error_message = "Each table needs a raw_prefix (e.g. \"web/\"), without '*': objects are routed to the table whose prefix is the longest match of their key."
  }
  validation {
    condition     = length(distinct([for table in values(var.tables) : table.raw_prefix])) == length(var.tables)
    error_message = "Two tables have the same raw_prefix: each prefix feeds one table."
  }
  validation {
    condition = alltrue([for table in values(var.tables) :
    table.partition_by == "" || can(regex("^[A-Za-z_][A-Za-z0-9_]*=(key(:(string|date|integer))?|(date|hour|value)\\([A-Za-z_][A-Za-z0-9_]*\\)|[A-Za-z_][A-Za-z0-9_.]*)(,[A-Za-z_][A-Za-z0-9_]*=(key(:(string|date|integer))?|(date|hour|value)\\([A-Za-z_][A-Za-z0-9_]*\\)|[A-Za-z_][A-Za-z0-9_.]*))*$", table.partition_by))])
    error_message = "A table's partition_by must be \"\" (unpartitioned) or comma-separated <column>=<source> with no spaces (key, key:date, key:integer, date(<field>), hour(<field>), value(<field>) or <field>)."
  }
  validation {
    condition = alltrue([for table in values(var.tables) :
    table.partition_by == "" || length(distinct([for item in split(",", table.partition_by) : lower(split("=", item)[0])])) == length(split(",", table.partition_by))])
    error_message = "A table's partition_by names a column twice (Delta column names ignore case)."
  }
  validation {
    condition = alltrue(flatten([for table in values(var.tables) : [for key in keys(table.settings) :
    startswith(key, "INLET_") && !contains(["INLET_TABLE_URI", "INLET_SCHEMA", "INLET_PARTITION_BY", "INLET_ROUTES"], key)]]))
    error_message = "A table's settings are INLET_* variables other than INLET_TABLE_URI, INLET_SCHEMA, INLET_PARTITION_BY and INLET_ROUTES (those come from the table itself)."
  }
  # Each per-table setting by name and value, as the functions read it at start: a mistyped
  # one is refused at plan instead of failing its table's cold starts.
  validation {
    condition = alltrue(flatten([for table in values(var.tables) : [for key, value in table.settings :
      contains(["INLET_TARGET_FILE_BYTES", "INLET_FRAGMENT_BYTES", "INLET_MAX_LINE_BYTES", "INLET_MAX_OBJECT_BYTES",
        "INLET_MAX_OBJECT_LINES", "INLET_PIECE_BYTES", "INLET_DEADLINE_MARGIN_SECONDS", "INLET_MIN_COMPACT_BYTES",
        "INLET_FRESHNESS_SECONDS", "INLET_ABANDON_AFTER_SECONDS", "INLET_HISTORY_REBUILD_SECONDS",
        "INLET_HISTORY_REBUILD_SAVE_FILES", "INLET_CHECKPOINT_INTERVAL", "INLET_LOG_RETENTION_DAYS",
      "INLET_DOWNLOAD_CONCURRENCY", "INLET_DECODE_BATCH_ROWS"], key) ? can(regex("^[1-9][0-9]*$", value)) :
      contains(["INLET_OPTIMIZE_MIN_FILES", "INLET_COMPLETE_SETTLE_SECONDS"], key) ? can(regex("^[0-9]+$", value)) :
      key == "INLET_FRAMING" ? can(regex("^(ndjson|concatenated|array|array:[^\"\\\\]+)$", value)) :
      key == "INLET_UNKNOWN_FIELDS" ? contains(["ignore", "rescue"], value) :
      key == "INLET_INGESTED_AT" ? contains(["true", "false"], value) :
      key == "INLET_TABLE_PROPERTIES" ? can(keys(jsondecode(value))) && alltrue([for name, property in try(jsondecode(value), {}) : can(regex("^delta\\.(autoOptimize\\.(autoCompact|optimizeWrite)|checkpoint\\.writeStatsAs(Json|Struct)|dataSkipping(NumIndexedCols|StatsColumns)|deletedFileRetentionDuration|targetFileSize|tuneFileSizesForRewrites)$", name)) && try(property == tostring(property) && trimspace(property) != "", false) && (name != "delta.deletedFileRetentionDuration" || can(regex("^interval [1-9][0-9]* (day|days|week|weeks)$", property)))]) :
      key == "INLET_RECONCILE_PREFIXES" ? alltrue([for prefix in split(",", value) : can(regex("^s3://[^/]+/", trimspace(prefix))) && strcontains(prefix, "{date}") && !can(regex("[{}]", replace(replace(prefix, "{date}", ""), "{hour}", "")))]) :
      !startswith(key, "INLET_") || contains(["INLET_TABLE_URI", "INLET_SCHEMA", "INLET_PARTITION_BY", "INLET_ROUTES"], key)
    ]]))
    error_message = "A table's setting is unknown or its value does not parse: sizes, counts and seconds are positive whole numbers (INLET_OPTIMIZE_MIN_FILES and INLET_COMPLETE_SETTLE_SECONDS may be 0), INLET_UNKNOWN_FIELDS is ignore or rescue, INLET_FRAMING ndjson, concatenated, array or array:<key>, INLET_INGESTED_AT true or false, INLET_TABLE_PROPERTIES a JSON object of delta.* properties as table_properties takes them, INLET_RECONCILE_PREFIXES s3://bucket/prefix templates holding {date} and no placeholder but {date} and {hour}. Deployment-wide settings (queues, the compactor function, the log format) are module variables, not per table."
  }
}

variable "notifications" {
  description = "How new raw objects reach the ingest queue: sqs (S3 notifications, one per table prefix; the module owns the bucket's notification configuration), eventbridge (S3 sends to EventBridge, a rule per table forwards to the queue; other consumers can share the bucket's events) or none (wire S3, SNS or EventBridge yourself; see notification_topic_arns and notification_rule_arns)."
  type        = string
  default     = "sqs"
  validation {
    condition     = contains(["sqs", "eventbridge", "none"], var.notifications)
    error_message = "notifications must be sqs, eventbridge or none."
  }
}

variable "notification_topic_arns" {
  description = "SNS topics allowed to send to the ingest queue (S3 -> SNS -> SQS fan-out wired by the user); the converter reads SNS envelopes."
  type        = list(string)
  default     = []
}

variable "notification_rule_arns" {
  description = "EventBridge rules allowed to send to the ingest queue (rules wired by the user, e.g. with notifications = \"none\")."
  type        = list(string)
  default     = []
}

variable "glue_database_name" {
  description = "Register each table in this Glue database as a Delta table (Athena engine 3, Spark on EMR or Glue read it); null registers nothing."
  type        = string
  default     = null
  validation {
    condition     = var.glue_database_name == null || can(regex("^[a-z0-9_]{1,255}$", var.glue_database_name))
    error_message = "glue_database_name must be lowercase letters, digits and '_' (Athena's rule)."
  }
}

variable "create_glue_database" {
  description = "Create glue_database_name; false registers the tables in an existing database."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- enterprise settings

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary attached to both functions' roles; null attaches none."
  type        = string
  default     = null
}

variable "vpc_config" {
  description = "Run both functions in these subnets with these security groups (they then need S3 and SQS VPC endpoints or a NAT); null runs them outside any VPC."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null
}

variable "raw_noncurrent_version_days" {
  description = "Days overwritten raw object versions are kept (created raw bucket only; more than the queue's 14-day retention); null keeps them forever."
  type        = number
  default     = 30
  validation {
    condition     = var.raw_noncurrent_version_days == null ? true : var.raw_noncurrent_version_days >= 15
    error_message = "raw_noncurrent_version_days must be at least 15: a notification can wait 14 days in the queue, and its version must still exist when it is read."
  }
}

variable "quarantine_retention_days" {
  description = "Days quarantined lines are kept under <table>/_inlet/quarantine/ (created lake bucket only); null keeps them forever."
  type        = number
  default     = 90
  validation {
    condition     = var.quarantine_retention_days == null ? true : var.quarantine_retention_days >= 1
    error_message = "quarantine_retention_days must be at least 1, or null."
  }
}

variable "create_alarm_topic" {
  description = "Create an SNS topic every alarm notifies (besides alarm_actions)."
  type        = bool
  default     = false
}

variable "alarm_emails" {
  description = "Email addresses subscribed to the alarm topic (create_alarm_topic)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for email in var.alarm_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", email))])
    error_message = "alarm_emails must be email addresses."
  }
}

variable "max_quarantined_lines" {
  description = "Alarm when a table quarantines more lines than this in 15 minutes (0: any)."
  type        = number
  default     = 0
}

variable "max_failed_messages" {
  description = "Alarm when a table's converter fails more notifications than this in 5 minutes (0: any). A failed message is delivered again and, after max_receive_count receives, lands in the DLQ: this alarm pages at the first failure instead of hours later."
  type        = number
  default     = 0
  validation {
    condition     = var.max_failed_messages >= 0
    error_message = "max_failed_messages must be 0 or more."
  }
}

variable "heartbeat_minutes" {
  description = "Alarm when a table staged rows in this many minutes but no compaction of it ran to its end (a stopped schedule, a compactor failing at start or on every run, a commit queue not consumed); keep it above the compaction schedule's interval. null: no heartbeat alarm."
  type        = number
  default     = 30
  validation {
    condition     = var.heartbeat_minutes == null || (var.heartbeat_minutes >= 10 && var.heartbeat_minutes <= 1440)
    error_message = "heartbeat_minutes must be null or between 10 and 1440."
  }
}

variable "dashboard" {
  description = "Create a CloudWatch dashboard for the deployment: its queues, and a row per table (rows staged and committed, freshness lag, failed and quarantined)."
  type        = bool
  default     = true
}
