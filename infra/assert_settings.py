"""Assertions on the Inlet Terraform module's key settings (run by infra/check.sh).

Parses the .tf files with python-hcl2 and checks what a review would: the event source mapping
reports partial batch failures, the queue outlives a converter run, the compactor runs once
per table at a time, the IAM policies grant no wildcard actions, logs expire, the alarms exist.
"""

import json
import pathlib
import re
import sys

import hcl2

MODULE = pathlib.Path(__file__).resolve().parent / "modules" / "inlet"


def load_module():
    resources, data, variables, locals_ = {}, {}, {}, {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    resources[f"{kind}.{name}"] = unwrap(body)
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    data[f"{kind}.{name}"] = unwrap(body)
        for block in parsed.get("variable", []):
            variables.update(unwrap(block))
        for block in parsed.get("locals", []):
            locals_.update(unwrap(block))
    return resources, data, variables, locals_


def first(value):
    """python-hcl2 wraps attribute values and nested blocks in one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def unwrap(body):
    """A resource body with its one-element wrappers removed (lists of several stay lists)."""
    if isinstance(body, dict):
        return {key: unwrap(first(value)) for key, value in body.items()}
    if isinstance(body, list):
        return [unwrap(item) for item in body]
    return body


failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def main():
    resources, data, variables, locals_ = load_module()

    esm = resources["aws_lambda_event_source_mapping.converter"]
    check("ReportBatchItemFailures" in json.dumps(esm["function_response_types"]),
          "event source mapping must report batch item failures")
    check("maximum_concurrency" in first(esm["scaling_config"]), "event source mapping needs a maximum concurrency")
    for knob in ("batch_size", "maximum_batching_window_in_seconds"):
        check(str(esm.get(knob, "")).startswith("${var."), f"event source mapping {knob} must be a variable")

    queue = resources["aws_sqs_queue.ingest"]
    check(queue["visibility_timeout_seconds"] == "${local.visibility_timeout}", "queue visibility must be derived")
    check("6 * var.converter_timeout_seconds" in str(locals_.get("visibility_timeout")),
          "visibility timeout must be six converter timeouts")
    check("deadLetterTargetArn" in json.dumps(queue["redrive_policy"]), "ingest queue needs a redrive policy")

    compactor = resources["aws_lambda_function.compactor"]
    # One run per table at a time: the commit queue's message groups serialise each table, the
    # concurrency is reserved (one, or one per table with the commit queue).
    check(compactor.get("reserved_concurrent_executions") == "${local.compactor_reserved}",
          "compactor concurrency must be reserved, from local.compactor_reserved")
    check("var.commit_queue ? max(2,length(local.tables)) : 1" in str(locals_.get("compactor_concurrency")),
          "compactor concurrency: one per table with the commit queue, else one")
    commits = resources["aws_sqs_queue.commits"]
    check(commits.get("fifo_queue") is True, "commit queue must be FIFO (a message group per table)")
    check("deadLetterTargetArn" in json.dumps(commits["redrive_policy"]), "commit queue needs a redrive policy")
    commits_esm = resources["aws_lambda_event_source_mapping.commits"]
    check("ReportBatchItemFailures" in json.dumps(commits_esm["function_response_types"]),
          "commit queue mapping must report batch item failures")
    check("aws_cloudwatch_event_rule.compact" in resources, "compactor needs a schedule rule")
    for name in ("converter", "compactor"):
        function = resources[f"aws_lambda_function.{name}"]
        check(function["runtime"] == "provided.al2023", f"{name}: provided.al2023 runtime")
        check(function["architectures"] == ["${var.architecture}"], f"{name}: architecture from a variable")
        group = resources[f"aws_cloudwatch_log_group.{name}"]
        check(group.get("retention_in_days") == "${var.log_retention_days}", f"{name}: log retention")

    # Least privilege: no wildcard actions, no policy on "*" resources for data.
    for key, body in data.items():
        if not key.startswith("aws_iam_policy_document."):
            continue
        # Deny statements (the TLS-only bucket policy) may name every action: they take rights away.
        body = dict(body, statement=[
            statement for statement in (body.get("statement") if isinstance(body.get("statement"), list) else [body.get("statement")])
            if not (isinstance(statement, dict) and statement.get("effect") == "Deny")
        ]) if "statement" in body else body
        text = json.dumps(body)
        for action in re.findall(r'"([a-z0-9]+:[A-Za-z*]+)"', text):
            check("*" not in action, f"{key}: wildcard action {action}")
        check('"resources": ["*"]' not in text, f"{key}: a statement on every resource")

    for bucket in ("raw", "lake"):
        block = resources.get(f"aws_s3_bucket_public_access_block.{bucket}", {})
        for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            check(block.get(flag) is True, f"{bucket} bucket: public access block {flag}")
        check(block.get("bucket") == f"${{aws_s3_bucket.{bucket}[0].id}}", f"{bucket}: public access block bucket")

    for alarm in ("dlq_not_empty", "queue_age", "function_errors", "table", "heartbeat"):
        check(f"aws_cloudwatch_metric_alarm.{alarm}" in resources, f"missing alarm {alarm}")
    table_alarms = locals_.get("table_alarms", {})
    for alarm in ("freshness_lag", "abandoned_rows", "superseded_versions", "quarantined_lines", "failed_messages", "table_unavailable"):
        check(alarm in table_alarms, f"missing per-table alarm {alarm}")

    # The converter writes only its own areas under each table's _inlet/, never the schema,
    # the load history or the Delta log.
    converter = json.dumps(data["aws_iam_policy_document.converter"])
    check('"${table}/_inlet/*"' not in converter and '/_inlet/*"]' not in converter.split("StageFragmentsAndQuarantine")[1].split("sid")[0],
          "converter PutObject must be narrowed to fragments, batches, quarantine, superseded and failures")
    for area in ("fragments", "batches", "quarantine", "superseded", "failures"):
        check(f"'{area}'" in converter, f"converter may stage {area}")

    # Every INLET_* knob is a module variable passed to the functions.
    settings = locals_["settings"]
    inlet_keys = [key for key in settings if key.startswith("INLET_")]
    check(len(inlet_keys) >= 17, f"expected every INLET_* setting in local.settings, found {len(inlet_keys)}")
    check(variables["kms_key_arn"]["default"] is None, "KMS must be optional (off by default)")

    if failures:
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"{len(resources)} resources, {len(variables)} variables: settings as expected")


if __name__ == "__main__":
    main()
