# The tables this deployment feeds. With `tables` empty it is one table (table_prefix,
# schema_file, partition_by, raw_prefix) configured through INLET_TABLE_URI and INLET_SCHEMA, as
# before; with `tables` set, a routing file (INLET_ROUTES) sends each raw prefix to its table.

locals {
  several_tables = length(var.tables) > 0
  tables = local.several_tables ? {
    for name, table in var.tables : name => {
      raw_prefix   = table.raw_prefix
      table_prefix = trim(coalesce(table.table_prefix, name), "/")
      schema_file  = table.schema_file
      partition_by = table.partition_by
      settings     = table.settings
    }
    } : {
    # A constant key: resource addresses stay put whatever the deployment is called.
    table = {
      raw_prefix   = var.raw_prefix
      table_prefix = local.table_prefix
      schema_file  = var.schema_file
      partition_by = var.partition_by
      settings     = {}
    }
  }
  table_uris  = { for name, table in local.tables : name => "s3://${local.lake_bucket}/${table.table_prefix}" }
  schema_keys = { for name, table in local.tables : name => "${table.table_prefix}/_inlet/schema.json" }
  routes_key  = "_inlet/routes/${var.name}.json"
  routes_uri  = "s3://${local.lake_bucket}/${local.routes_key}"
  routes_document = jsonencode({
    routes = [for name, table in local.tables : merge(
      {
        name      = name
        bucket    = local.raw_bucket
        prefix    = table.raw_prefix
        table_uri = local.table_uris[name]
        schema    = "s3://${local.lake_bucket}/${local.schema_keys[name]}"
      },
      table.partition_by == "" ? {} : { partition_by = table.partition_by },
      length(table.settings) == 0 ? {} : { settings = table.settings },
    )]
  })
  raw_prefixes = distinct([for table in local.tables : table.raw_prefix])
  # Each table's scheduled reconciliation templates (none: not reconciled).
  reconcile_prefixes = {
    for name, table in local.tables : name => [
      for prefix in split(",", local.several_tables ? lookup(table.settings, "INLET_RECONCILE_PREFIXES", "") : var.reconcile_prefixes) :
      trimspace(prefix) if trimspace(prefix) != ""
    ]
  }
}

resource "aws_s3_object" "schema" {
  for_each     = { for name, table in local.tables : name => table if table.schema_file != null }
  bucket       = local.lake_bucket
  key          = local.schema_keys[each.key]
  source       = each.value.schema_file
  etag         = filemd5(each.value.schema_file)
  content_type = "application/json"
  tags         = var.tags
  # Written once the bucket keeps versions, so it is a version like every later object.
  depends_on = [aws_s3_bucket_versioning.lake]
}

resource "aws_s3_object" "routes" {
  count        = local.several_tables ? 1 : 0
  bucket       = local.lake_bucket
  key          = local.routes_key
  content      = local.routes_document
  content_type = "application/json"
  tags         = var.tags
  depends_on   = [aws_s3_bucket_versioning.lake]

  lifecycle {
    precondition {
      # S3 refuses two queue notifications whose prefixes overlap; EventBridge rules may.
      condition = var.notifications != "sqs" || alltrue([
        for a in local.raw_prefixes : alltrue([for b in local.raw_prefixes : a == b || !startswith(b, a)])
      ])
      error_message = "With notifications = \"sqs\" no table's raw_prefix may contain another's (S3 refuses overlapping notification prefixes); use notifications = \"eventbridge\" for nested prefixes."
    }
  }
}

# ---------------------------------------------------------------- Glue catalog (Athena, Spark on EMR/Glue)

resource "aws_glue_catalog_database" "tables" {
  count       = var.glue_database_name != null && var.create_glue_database ? 1 : 0
  name        = var.glue_database_name
  description = "Delta tables fed by Inlet (${var.name})"
  tags        = var.tags
}

# A Delta table needs no column list in Glue: Athena and Spark read the schema and partitions
# from the Delta log, so schema changes never have to be copied here.
resource "aws_glue_catalog_table" "tables" {
  for_each      = var.glue_database_name == null ? {} : local.tables
  name          = replace(local.several_tables ? each.key : var.name, "-", "_")
  database_name = var.create_glue_database ? aws_glue_catalog_database.tables[0].name : var.glue_database_name
  table_type    = "EXTERNAL_TABLE"
  description   = "Inlet Delta table ${local.table_uris[each.key]}"
  parameters = {
    EXTERNAL                     = "TRUE"
    table_type                   = "DELTA"
    "spark.sql.sources.provider" = "delta"
  }
  storage_descriptor {
    location = "${local.table_uris[each.key]}/"
  }
}
