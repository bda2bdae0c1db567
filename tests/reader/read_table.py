"""Reads a Delta table with delta-rs' Python bindings, independently of Inlet's Rust code.

Prints one JSON document: version, files (path, size), row count and rows (or a sample).
Usage: read_table.py TABLE_URI [--rows N | --all-rows]
LocalStack is reached through AWS_ENDPOINT_URL and the usual AWS_* variables.
"""

import argparse
import datetime
import json
import os
import sys

import pyarrow
from deltalake import DeltaTable


def storage_options() -> dict:
    options = {}
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if os.environ.get(name):
            options[name] = os.environ[name]
    options.setdefault("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    return options


def plain(value):
    """Arrow values as the JSON a service would have written."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # map entries
            return {k: plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--all-rows", action="store_true")
    args = parser.parse_args()

    table = DeltaTable(args.uri, storage_options=storage_options())
    data = table.to_pyarrow_table()
    actions = pyarrow.table(table.get_add_actions(flatten=True)).to_pylist()
    rows = data.to_pylist() if args.all_rows else data.slice(0, args.rows).to_pylist()
    json.dump(
        {
            "version": table.version(),
            "files": [{"path": a["path"], "size": a["size_bytes"]} for a in actions],
            "num_rows": data.num_rows,
            "columns": data.column_names,
            "rows": [plain(row) for row in rows],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # delta-rs' bindings can abort while the interpreter shuts down ("terminate called without
    # an active exception") after every byte of the answer is out: leave without that shutdown.
    os._exit(code)
