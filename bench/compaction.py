"""Peers on the compactor's job: the same staged fragments merged into zstd Parquet table files.

`inlet-bench stage --out DIR` stages the reference workload's fragments under DIR once; then,
in rounds, each system runs in its own child process on a copy of them:
  inlet    `inlet-bench compact-staged` (a Delta commit of target-sized files)
  duckdb   read_parquet -> COPY ... (FORMAT parquet, COMPRESSION zstd)
  pyarrow  dataset -> write_dataset (zstd)
  delta-rs the fragments as a Delta table (convert_to_deltalake), then optimize.compact()
and one table of medians with Inlet/peer ratios taken within each round is printed, as for the
converter (bench/peers.py). Throughput is MiB of fragments in. With --converter-report (the
converter rounds' report.json) it also prints the whole pipeline, JSON in to table files out:
Inlet's convert + compact beside DuckDB's and pyarrow's one-step conversions.

    python bench/compaction.py --staged target/bench/staged --inlet-bench "target/perf/inlet-bench"
"""

import argparse
import glob
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import lower_median, report, run_child  # noqa: E402

TARGET_FILE_BYTES = 256 * 1024 * 1024


def fragments_of(staged):
    return sorted(glob.glob(os.path.join(staged, "_inlet", "fragments", "**", "*.parquet"), recursive=True))


def duckdb_compact(files, out, threads):
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"

    def run():
        connection.execute(
            f"COPY (SELECT * FROM read_parquet({listing})) TO '{out}' "
            f"(FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES {TARGET_FILE_BYTES})"
        )

    return run


def pyarrow_compact(files, out, threads):
    import pyarrow as pa
    import pyarrow.dataset as ds

    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    dataset = ds.dataset(files, format="parquet")
    options = ds.ParquetFileFormat().make_write_options(compression="zstd")

    def run():
        ds.write_dataset(dataset, out, format="parquet", file_options=options, use_threads=threads > 1,
                         existing_data_behavior="overwrite_or_ignore")

    return run


def deltars_compact(files, out, threads):
    from deltalake import DeltaTable, convert_to_deltalake

    os.makedirs(out)
    for index, path in enumerate(files):
        shutil.copy(path, os.path.join(out, f"part-{index:05d}.parquet"))
    convert_to_deltalake(out)
    table = DeltaTable(out)

    def run():
        table.optimize.compact(target_size=TARGET_FILE_BYTES, max_concurrent_tasks=threads)

    return run


def output_of(system, out):
    """(rows, bytes, files) of what a system wrote, counted after the clock stops."""
    import pyarrow.parquet as pq

    if system == "delta-rs":
        from deltalake import DeltaTable

        table = DeltaTable(out)
        paths = [os.path.join(out, path) for path in table.file_uris()]
    elif os.path.isdir(out):
        paths = sorted(glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True))
    else:
        paths = [out]
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    return rows, sum(os.path.getsize(path) for path in paths), len(paths)


def child(system, staged, threads):
    files = fragments_of(staged)
    input_bytes = sum(os.path.getsize(path) for path in files)
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out" if system != "duckdb" else "out")
        run = {"duckdb": duckdb_compact, "pyarrow": pyarrow_compact, "delta-rs": deltars_compact}[system](
            files, out, threads)
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows, output_bytes, output_files = output_of(system, out)
    print(json.dumps({
        "system": system,
        "threads": threads,
        "rows": rows,
        "input_mib": input_bytes / 1048576,
        "input_files": len(files),
        "output_mib": output_bytes / 1048576,
        "output_files": output_files,
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mib": after.ru_maxrss / 1024,
    }))


def pipeline(compactions, converter_report):
    """MiB of JSON per CPU-second from JSON to table files: Inlet's conversion plus its
    compaction (medians at 1 thread) beside the peers' one-step conversions."""
    if not os.path.exists(converter_report):
        print(f"\nno whole-pipeline figure: {converter_report} is missing (the converter rounds write it)")
        return None
    with open(converter_report) as handle:
        converter = json.load(handle)
    medians = {(run["system"], run["threads"]): run for run in converter["medians"]}
    inlet_convert = medians.get(("inlet", 1))
    inlet_compacts = [run for run in compactions if run["system"] == "inlet" and run["threads"] == 1]
    if not inlet_convert or not inlet_compacts:
        return None
    compact = lower_median(inlet_compacts, key=lambda run: run["cpu_seconds"])
    if inlet_convert.get("rows") != compact["rows"]:
        print(f"\nno whole-pipeline figure: {converter_report} is for another workload "
              f"({inlet_convert.get('rows')} rows converted, {compact['rows']} compacted)")
        return None
    json_mib = inlet_convert["json_mib"]
    figures = {"inlet": json_mib / (inlet_convert["cpu_seconds"] + compact["cpu_seconds"])}
    for system in ("duckdb", "pyarrow"):
        if (system, 1) in medians:
            figures[system] = medians[(system, 1)]["json_mib"] / medians[(system, 1)]["cpu_seconds"]
    print("\nwhole pipeline at 1 thread, MiB of JSON per CPU-s from JSON to table files "
          "(Inlet: convert + compact; peers: one step)")
    for system, figure in figures.items():
        print(f"  {system:<8} {figure:7.1f}")
    for system in ("duckdb", "pyarrow"):
        if system in figures:
            print(f"  Inlet / {system}: {figures['inlet'] / figures[system]:.2f}x")
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--staged", required=True, help="directory `inlet-bench stage --out` filled")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--systems", nargs="+", default=["duckdb", "pyarrow", "delta-rs"])
    parser.add_argument("--inlet-bench", help="command running inlet-bench (`target/perf/inlet-bench`)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--converter-report", help="the converter rounds' report.json, for the whole-pipeline figure")
    parser.add_argument("--report", help="where to write the combined JSON report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.staged, args.threads[0])
        return
    if not fragments_of(args.staged):
        sys.exit(f"no fragments under {args.staged}: run `inlet-bench stage --out {args.staged}` first")
    runs = []
    for round_index in range(args.rounds):
        for threads in args.threads:
            if args.inlet_bench:
                command = shlex.split(args.inlet_bench) + ["compact-staged", "--staged", args.staged,
                                                           "--threads", str(threads)]
                runs.append(dict(run_child(command, f"inlet compaction with {threads} threads"), round=round_index))
            for system in args.systems:
                command = [sys.executable, __file__, "--child", system, "--staged", args.staged,
                           "--threads", str(threads)]
                runs.append(dict(run_child(command, f"{system} with {threads} threads"), round=round_index))
        print(f"  round {round_index + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    if not args.inlet_bench:
        for run in runs:
            print(json.dumps(run))
        return
    report(runs, None, size_key="input_mib", size_label="frag MiB")
    figures = pipeline(runs, args.converter_report) if args.converter_report else None
    if args.report:
        with open(args.report, "w") as handle:
            json.dump({"runs": runs, "pipeline_mib_per_cpu_s": figures}, handle, indent=2)
        print(f"report: {args.report}")


if __name__ == "__main__":
    main()
