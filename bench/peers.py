"""Peers on the converter's job: *.json.zst files -> Parquet, with the same explicit schema.

Each system runs in its own child process (so its peak RSS is its own) on the workload
`inlet-bench` generated, one thread unless asked otherwise. Prints one JSON object per run:
  {"system", "threads", "rows", "json_mib", "output_mib", "wall_seconds", "cpu_seconds", "peak_rss_mib"}

    python bench/peers.py --data target/bench/data --schema schemas/events.schema.json [--threads 1]
"""

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def arrow_type(spec, pa):
    """Our schema's type names as Arrow types (maps become structs of strings: pyarrow.json has no map)."""
    if isinstance(spec, str):
        return {
            "string": pa.string(), "long": pa.int64(), "integer": pa.int32(), "double": pa.float64(),
            "boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
        }[spec]
    if "struct" in spec:
        return pa.struct([pa.field(f["name"], arrow_type(f["type"], pa)) for f in spec["struct"]])
    if "list" in spec:
        return pa.list_(arrow_type(spec["list"], pa))
    if "map" in spec:
        return None
    raise ValueError(spec)


def duckdb_type(spec):
    if isinstance(spec, str):
        return {
            "string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "double": "DOUBLE",
            "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ", "date": "DATE",
        }[spec]
    if "struct" in spec:
        return "STRUCT(" + ", ".join(f'"{f["name"]}" {duckdb_type(f["type"])}' for f in spec["struct"]) + ")"
    if "list" in spec:
        return duckdb_type(spec["list"]) + "[]"
    if "map" in spec:
        return f"MAP(VARCHAR, {duckdb_type(spec['map'])})"
    raise ValueError(spec)


def run_pyarrow(files, fields, out, threads):
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    # pyarrow.json cannot read a JSON object into a map column: `attributes` is left out.
    schema = pa.schema([pa.field(f["name"], t) for f in fields if (t := arrow_type(f["type"], pa)) is not None])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for path in files:
            with pa.input_stream(path, compression="zstd") as stream:
                table = pj.read_json(stream, parse_options=options, read_options=pj.ReadOptions(use_threads=threads > 1))
            writer.write_table(table)
            rows += table.num_rows
    return rows


def run_duckdb(files, fields, out, threads):
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    columns = "{" + ", ".join(f"'{f['name']}': '{duckdb_type(f['type'])}'" for f in fields) + "}"
    listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"
    connection.execute(
        f"COPY (SELECT * FROM read_ndjson({listing}, columns = {columns}, compression = 'zstd', format = 'newline_delimited')) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
    )
    return connection.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def child(system, data, schema_path, threads):
    files = sorted(glob.glob(os.path.join(data, "raw", "bench", "*.json.zst")))
    with open(schema_path) as handle:
        fields = json.load(handle)["fields"]
    json_bytes = 0
    import zstandard  # noqa: F401  (only to fail early with a clear message if the venv is incomplete)
    for path in files:
        with open(path, "rb") as handle:
            reader = zstandard.ZstdDecompressor().stream_reader(handle)
            while chunk := reader.read(1 << 20):
                json_bytes += len(chunk)
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out.parquet")
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        rows = {"pyarrow": run_pyarrow, "duckdb": run_duckdb}[system](files, fields, out, threads)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        output_bytes = os.path.getsize(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({
        "system": system,
        "threads": threads,
        "objects": len(files),
        "rows": rows,
        "json_mib": json_bytes / 1048576,
        "output_mib": output_bytes / 1048576,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mib": after.ru_maxrss / 1024,
    }))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--systems", nargs="+", default=["pyarrow", "duckdb"])
    parser.add_argument("--inlet", help="inlet-bench results (target/bench/inlet.json) to compare against")
    parser.add_argument("--report", help="where to write the combined JSON report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.schema, args.threads[0])
        return
    peers = []
    for system in args.systems:
        for threads in args.threads:
            result = subprocess.run(
                [sys.executable, __file__, "--child", system, "--data", args.data, "--schema", args.schema,
                 "--threads", str(threads)],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                sys.exit(f"{system} with {threads} threads failed:\n{result.stderr}")
            peers.append(json.loads(result.stdout))
            print(f"  {system} ({threads} thread{'s' if threads > 1 else ''}) done", file=sys.stderr, flush=True)
    if args.inlet:
        with open(args.inlet) as handle:
            inlet = [dict(run, system="inlet") for run in json.load(handle)]
        report(inlet, peers, args.report)
    else:
        for run in peers:
            print(json.dumps(run))


def per_cpu(run):
    return run["json_mib"] / run["cpu_seconds"]


def report(inlet, peers, path):
    """One table, Inlet and peers side by side, and Inlet/peer ratios at equal thread counts."""
    rows = inlet + peers
    for run in rows:
        run["mib_per_s"] = run["json_mib"] / run["wall_seconds"]
        run["mib_per_cpu_s"] = per_cpu(run)
    header = f"{'system':<8} {'threads':>7} {'rows':>8} {'JSON MiB':>9} {'out MiB':>8} {'MiB/s':>7} {'MiB/CPU-s':>9} {'peak RSS':>9}"
    print(header)
    print("-" * len(header))
    for run in rows:
        print(f"{run['system']:<8} {run['threads']:>7} {run['rows']:>8} {run['json_mib']:>9.1f} {run['output_mib']:>8.1f} "
              f"{run['mib_per_s']:>7.1f} {run['mib_per_cpu_s']:>9.1f} {run['peak_rss_mib']:>7.0f} M")
    ratios = {}
    for peer in peers:
        ours = next((run for run in inlet if run["threads"] == peer["threads"]), None)
        if ours is None:
            continue
        if ours["rows"] != peer["rows"]:
            sys.exit(f"row counts differ: inlet {ours['rows']}, {peer['system']} {peer['rows']}")
        key = f"{peer['system']}_{peer['threads']}t"
        ratios[key] = {
            "throughput_per_cpu": per_cpu(ours) / per_cpu(peer),
            "peak_rss": ours["peak_rss_mib"] / peer["peak_rss_mib"],
        }
        print(f"Inlet / {peer['system']} at {peer['threads']} thread(s): {ratios[key]['throughput_per_cpu']:.2f}x MiB per CPU-s, "
              f"{ratios[key]['peak_rss']:.2f}x peak RSS")
    if path:
        with open(path, "w") as handle:
            json.dump({"runs": rows, "ratios": ratios}, handle, indent=2)
        print(f"report: {path}")


if __name__ == "__main__":
    main()
