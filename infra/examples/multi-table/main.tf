# Two tables from one raw bucket: s3://<raw>/web/... -> s3://<lake>/web_events (partitioned by
# date), s3://<raw>/api/... -> s3://<lake>/api_events. S3 sends its events to EventBridge and a
# rule per table forwards that table's objects to the one ingest queue, so other consumers can
# subscribe to the same bucket's events. Each table is registered in Glue for Athena.
#   terraform init && terraform apply -var release=0.1.0 -var raw_bucket=... -var lake_bucket=...
# (a release's packages in dist/), or after make build-lambdas without -var release.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { application = "inlet" }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Deployment name."
  type        = string
  default     = "inlet-platform"
}

variable "raw_bucket" {
  description = "Bucket services write to (created)."
  type        = string
}

variable "lake_bucket" {
  description = "Bucket of the Delta tables (created)."
  type        = string
}

variable "glue_database" {
  description = "Glue database the tables are registered in (created); null registers nothing."
  type        = string
  default     = "inlet_lake"
}

variable "release" {
  description = "Version of released packages in package_dir (make dist writes them to dist/, a release publishes them); null deploys the zips make build-lambdas built."
  type        = string
  default     = null
}

variable "architecture" {
  description = "Lambda architecture of the packages: arm64 or x86_64."
  type        = string
  default     = "arm64"
}

variable "package_dir" {
  description = "Where the zips are; by default dist/ for a release, else target/lambda/<architecture>."
  type        = string
  default     = null
}

locals {
  package_dir = coalesce(var.package_dir, var.release != null ? "${path.module}/../../../dist" : "${path.module}/../../../target/lambda/${var.architecture}")
  # A release's zips are named by function, version and architecture; a build's by function.
  packages = {
    for function in ["converter", "compactor"] : function => (
      var.release != null
      ? "${local.package_dir}/inlet-${function}-${var.release}-${var.architecture}.zip"
      : "${local.package_dir}/${function}/bootstrap.zip"
    )
  }
}

variable "converter_package" {
  description = "Override of the converter package (e.g. an S3 object); defaults to the local zip."
  type        = object({ filename = optional(string), s3_bucket = optional(string), s3_key = optional(string) })
  default     = null
}

variable "compactor_package" {
  description = "Override of the compactor package; defaults to the local zip."
  type        = object({ filename = optional(string), s3_bucket = optional(string), s3_key = optional(string) })
  default     = null
}

variable "force_destroy" {
  description = "Let destroy empty the buckets (demos and tests)."
  type        = bool
  default     = false
}

variable "alarm_emails" {
  description = "Addresses the alarm topic notifies."
  type        = list(string)
  default     = []
}

module "inlet" {
  source = "../../modules/inlet"

  name             = var.name
  raw_bucket_name  = var.raw_bucket
  lake_bucket_name = var.lake_bucket
  notifications    = "eventbridge"
  tables = {
    web = {
      raw_prefix   = "web/"
      table_prefix = "web_events"
      schema_file  = "${path.module}/../../../schemas/events.schema.json"
      partition_by = "date=key"
      # The scheduled reconciliation lists the window's dates only.
      settings = { INLET_RECONCILE_PREFIXES = "s3://${var.raw_bucket}/web/date={date}/" }
    }
    api = {
      raw_prefix   = "api/"
      table_prefix = "api_events"
      schema_file  = "${path.module}/schemas/api.schema.json"
      # Fewer, smaller objects: smaller files keep this table's freshness.
      settings = { INLET_TARGET_FILE_BYTES = "67108864" }
    }
  }
  glue_database_name = var.glue_database
  # Every hour, the two hours of writes that closed an hour ago: objects whose notification
  # never arrived are alarmed on and sent through the pipeline.
  reconcile          = {}
  create_alarm_topic = true
  alarm_emails       = var.alarm_emails
  tags               = { cost-center = "data-platform" }
  force_destroy      = var.force_destroy
  architecture       = var.architecture
  converter_package  = coalesce(var.converter_package, { filename = local.packages.converter })
  compactor_package  = coalesce(var.compactor_package, { filename = local.packages.compactor })
}

output "table_uris" {
  description = "The Delta tables, by name."
  value       = module.inlet.table_uris
}

output "glue_tables" {
  description = "Glue tables (database.table) for Athena."
  value       = module.inlet.glue_tables
}

output "dlq_url" {
  description = "Dead-letter queue."
  value       = module.inlet.dlq_url
}

output "queue_url" {
  description = "Ingest queue (inlet backfill --queue-url)."
  value       = module.inlet.queue_url
}

output "compactor_function" {
  description = "Compactor function: {\"table\": \"web\"} compacts one table, {} every table."
  value       = module.inlet.compactor_function
}

output "cli_environment" {
  description = "Settings for the inlet command: eval \"$(terraform output -raw cli_exports)\"."
  value       = module.inlet.cli_environment
}

output "cli_exports" {
  description = "cli_environment as shell export lines."
  value       = module.inlet.cli_exports
}
