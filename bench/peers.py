"""Peers on the converter's job: *.json.zst files -> Parquet, with the same explicit schema.

Each system runs in its own child process (so its peak RSS is its own) on the workload
`inlet-bench` generated, one thread unless asked otherwise. Prints one JSON object per run:
  {"system", "threads", "rows", "json_mib", "output_mib", "wall_seconds", "cpu_seconds", "peak_rss_mib"}

    python bench/peers.py --data target/bench/data-300 --schema schemas/events.schema.json [--threads 1]

With `--inlet-bench "target/perf/inlet-bench --objects 300"` it runs Inlet's converter core, and the
naive arrow-rs program (`inlet-bench naive`, 1 thread), in the same rounds and prints one table of
medians with Inlet/peer ratios (`--rounds`, default 3). With `--baseline "<an earlier build's inlet-bench>
--objects 300"` that build runs too, as system `baseline`: Inlet / baseline measures a change in the same rounds.
"""

import argparse
import glob
import json
import os
import resource
import shlex
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


def pyarrow_converter(fields, threads):
    """pyarrow's conversion, ready to run: returns `convert(files, out)`."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    # pyarrow.json cannot read a JSON object into a map column: `attributes` is left out.
    schema = pa.schema([pa.field(f["name"], t) for f in fields if (t := arrow_type(f["type"], pa)) is not None])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")

    def convert(files, out):
        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for path in files:
                with pa.input_stream(path, compression="zstd") as stream:
                    table = pj.read_json(stream, parse_options=options,
                                         read_options=pj.ReadOptions(use_threads=threads > 1))
                writer.write_table(table)

    return convert


def duckdb_converter(fields, threads):
    """DuckDB's conversion, ready to run: returns `convert(files, out)`."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    columns = "{" + ", ".join(f"'{f['name']}': '{duckdb_type(f['type'])}'" for f in fields) + "}"

    def convert(files, out):
        listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"
        connection.execute(
            f"COPY (SELECT * FROM read_ndjson({listing}, columns = {columns}, compression = 'zstd', "
            f"format = 'newline_delimited')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
        )

    return convert


def parquet_rows(path):
    """Rows in a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


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
    # Imports and connection setup stay outside the clock, as Inlet's process start and runtime
    # setup do: only the conversion itself is measured (the imports alone are 0.1-0.15 CPU-s).
    convert = {"pyarrow": pyarrow_converter, "duckdb": duckdb_converter}[system](fields, threads)
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out.parquet")
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        convert(files, out)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        # Counted from the file each system wrote, after the clock stops.
        rows = parquet_rows(out)
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


def run_child(command, label):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{label} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--systems", nargs="+", default=["pyarrow", "duckdb"])
    parser.add_argument("--inlet-bench", help="command running Inlet's converter core (`inlet-bench --objects N`), "
                        "measured in the same rounds as the peers")
    parser.add_argument("--baseline", help="another build's converter command (`inlet-bench --objects N` of an "
                        "earlier commit), run as system `baseline` in the same rounds: Inlet / baseline is the change")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every system back to back; medians are reported")
    parser.add_argument("--report", help="where to write the combined JSON report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.schema, args.threads[0])
        return
    # The host's speed drifts over minutes, so each round runs every system at one thread count
    # back to back, and ratios are taken within a round before their median is taken.
    runs = []
    for round_index in range(args.rounds):
        for threads in args.threads:
            for system, inlet_bench in (("inlet", args.inlet_bench), ("baseline", args.baseline)):
                if inlet_bench:
                    command = shlex.split(inlet_bench) + ["--data", args.data, "run", "--threads", str(threads),
                                                          "--convert-only"]
                    runs.append(dict(run_child(command, f"{system} with {threads} threads"), system=system,
                                     round=round_index))
            if args.inlet_bench and threads == 1:
                # The guide's naive arrow-rs program is single-threaded: it runs at 1 thread only.
                command = shlex.split(args.inlet_bench) + ["--data", args.data, "naive"]
                runs.append(dict(run_child(command, "naive arrow-rs"), system="arrow-rs", round=round_index))
            for system in args.systems:
                command = [sys.executable, __file__, "--child", system, "--data", args.data, "--schema", args.schema,
                           "--threads", str(threads)]
                runs.append(dict(run_child(command, f"{system} with {threads} threads"), round=round_index))
        print(f"  round {round_index + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    if args.inlet_bench:
        report(runs, args.report)
    else:
        for run in runs:
            print(json.dumps(run))


def lower_median(items, key=None):
    """The median item (the lower middle one for an even count)."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def report(runs, path, size_key="json_mib", size_label="JSON MiB"):
    """One table of medians, Inlet and peers side by side, and Inlet/peer ratios at equal thread
    counts: the median of the ratios within each round. Throughput is MiB of `size_key` (JSON
    for conversions, fragments for compactions)."""
    def per_cpu(run):
        return run[size_key] / run["cpu_seconds"]

    for run in runs:
        run["mib_per_s"] = run[size_key] / run["wall_seconds"]
        run["mib_per_cpu_s"] = per_cpu(run)
    rounds = 1 + max(run["round"] for run in runs)
    groups = {}
    for run in runs:
        groups.setdefault((run["system"], run["threads"]), []).append(run)
    medians = {key: lower_median(group, key=per_cpu) for key, group in groups.items()}
    header = (f"{'system':<8} {'threads':>7} {'rows':>8} {size_label:>9} {'out MiB':>8} {'MiB/s':>7} {'MiB/CPU-s':>9} "
              f"{'(range)':>13} {'peak RSS':>9}")
    print(f"medians of {rounds} round(s), each running every system back to back")
    print(header)
    print("-" * len(header))
    for (system, threads), run in sorted(medians.items(), key=lambda item: (item[0][0] != "inlet", item[0])):
        values = [per_cpu(r) for r in groups[(system, threads)]]
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"{system:<8} {threads:>7} {run['rows']:>8} {run[size_key]:>9.1f} {run['output_mib']:>8.1f} "
              f"{run['mib_per_s']:>7.1f} {run['mib_per_cpu_s']:>9.1f} {spread:>13} {run['peak_rss_mib']:>7.0f} M")
    ratios = {}
    for (system, threads) in sorted(medians):
        if system == "inlet" or ("inlet", threads) not in medians:
            continue
        per_round = []
        for round_index in range(rounds):
            ours = next(r for r in groups[("inlet", threads)] if r["round"] == round_index)
            peer = next(r for r in groups[(system, threads)] if r["round"] == round_index)
            if ours["rows"] != peer["rows"]:
                sys.exit(f"row counts differ: inlet {ours['rows']}, {system} {peer['rows']}")
            per_round.append(per_cpu(ours) / per_cpu(peer))
        key = f"{system}_{threads}t"
        ratios[key] = {
            "throughput_per_cpu": lower_median(per_round),
            "throughput_per_cpu_by_round": per_round,
            "peak_rss": medians[("inlet", threads)]["peak_rss_mib"] / medians[(system, threads)]["peak_rss_mib"],
        }
        print(f"Inlet / {system} at {threads} thread(s): {ratios[key]['throughput_per_cpu']:.2f}x MiB per CPU-s "
              f"(rounds: {', '.join(f'{r:.2f}x' for r in per_round)}), {ratios[key]['peak_rss']:.2f}x peak RSS")
    if path:
        with open(path, "w") as handle:
            json.dump({"runs": runs, "medians": [medians[key] for key in sorted(medians)], "ratios": ratios}, handle,
                      indent=2)
        print(f"report: {path}")


if __name__ == "__main__":
    main()
