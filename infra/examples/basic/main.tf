# One Inlet pipeline: s3://<raw>/service/... *.json.zst -> Delta table s3://<lake>/events.
# With a release's packages (downloaded into dist/, or written there by make dist):
#   terraform init && terraform apply -var release=0.1.0 -var raw_bucket=... -var lake_bucket=...
# Or with packages built from this checkout:
#   make build-lambdas          # target/lambda/arm64/{converter,compactor}/bootstrap.zip
#   terraform init && terraform apply -var raw_bucket=... -var lake_bucket=...

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
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Pipeline name."
  type        = string
  default     = "inlet-events"
}

variable "raw_bucket" {
  description = "Bucket services write to (created)."
  type        = string
}

variable "lake_bucket" {
  description = "Bucket of the Delta table (created)."
  type        = string
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
  description = "Addresses the alarm topic notifies (each confirms its subscription by email)."
  type        = list(string)
  default     = []
}

module "inlet" {
  source = "../../modules/inlet"

  name              = var.name
  raw_bucket_name   = var.raw_bucket
  lake_bucket_name  = var.lake_bucket
  table_prefix      = "events"
  schema_file       = "${path.module}/../../../schemas/events.schema.json"
  partition_by      = "date=key"
  force_destroy     = var.force_destroy
  architecture      = var.architecture
  converter_package = coalesce(var.converter_package, { filename = local.packages.converter })
  compactor_package = coalesce(var.compactor_package, { filename = local.packages.compactor })
  # Every alarm notifies one topic; subscribe on-call addresses with alarm_emails.
  create_alarm_topic = true
  alarm_emails       = var.alarm_emails
}

output "table_uri" {
  description = "The Delta table."
  value       = module.inlet.table_uri
}

output "queue_url" {
  description = "Ingest queue."
  value       = module.inlet.queue_url
}

output "dlq_url" {
  description = "Dead-letter queue."
  value       = module.inlet.dlq_url
}

output "compactor_function" {
  description = "Compactor function."
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
