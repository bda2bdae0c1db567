"""Runs the README's query snippets (blocks after a `<!-- query: NAME -->` marker) against a table.

Each snippet must leave `by_type`, a DuckDB relation or polars frame of (event_type, events).
Prints one JSON document: {NAME: {event_type: events}}. The snippets read INLET_TABLE_URI and
the AWS_* variables, as they would on a user's machine. DuckDB's extensions are installed from
their PyPI wheels first (its `INSTALL delta` would otherwise download them), into the
extension directory under $HOME, which the caller points at a scratch directory.
Usage: query_snippets.py README.md
"""

import contextlib
import json
import os
import re
import sys

import duckdb
from duckdb_extensions import import_extension

SNIPPET = re.compile(r"<!-- query: (\w+) -->\s*```python\n(.*?)```", re.DOTALL)


def counts(by_type) -> dict:
    if isinstance(by_type, duckdb.DuckDBPyRelation):
        rows = by_type.fetchall()
    else:  # polars
        rows = by_type.rows()
    return {str(event_type): int(events) for event_type, events in rows}


def main() -> None:
    readme = open(sys.argv[1], encoding="utf-8").read()
    snippets = SNIPPET.findall(readme)
    if not snippets:
        sys.exit("no <!-- query: NAME --> snippets in the README")
    connection = duckdb.connect()
    for extension in ("delta", "httpfs"):
        import_extension(extension, con=connection)
    connection.close()
    results = {}
    for name, code in snippets:
        scope: dict = {"__name__": f"readme_{name}"}
        # What a snippet prints goes to stderr: stdout carries only the result document.
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(code, f"README.md ({name})", "exec"), scope)
        if "by_type" not in scope:
            sys.exit(f"the {name} snippet left no `by_type`")
        results[name] = counts(scope["by_type"])
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A snippet may load delta-rs' bindings, which can abort during interpreter shutdown after
    # the result is out: leave without that shutdown.
    os._exit(0)
