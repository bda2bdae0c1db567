"""Reads a partitioned Delta table's partition columns with three engines: delta-rs, DuckDB's
delta extension and Spark (discovering partitions from the data files' Hive directories, as
a reader without the Delta log does).

Usage: partition_values.py TABLE_DIR KEY COLUMN... ; prints one JSON document: per engine, the
type of each partition column and every row's (KEY, COLUMN...) as text, sorted.
"""

import datetime
import json
import sys

import duckdb
from deltalake import DeltaTable
from duckdb_extensions import import_extension
from pyspark.sql import SparkSession


def text(value):
    if value is None:
        return None
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def rows_of(records, names):
    return sorted([[text(record[name]) for name in names] for record in records], key=lambda r: r[0])


def main():
    root, key, columns = sys.argv[1], sys.argv[2], sys.argv[3:]
    names = [key] + columns
    table = DeltaTable(root)
    arrow = table.to_pyarrow_table(columns=names)
    result = {
        "delta_rs": {
            "types": {c: str(arrow.schema.field(c).type) for c in columns},
            "rows": rows_of(arrow.to_pylist(), names),
        }
    }

    con = duckdb.connect()
    import_extension("delta", con=con)
    con.sql("LOAD delta")
    selected = ", ".join(f'"{name}"' for name in names)
    duck = con.sql(f"SELECT {selected} FROM delta_scan('{root}')")
    result["duckdb"] = {
        "types": {c: str(t) for c, t in zip(duck.columns, duck.types) if c in columns},
        "rows": rows_of([dict(zip(names, row)) for row in duck.fetchall()], names),
    }

    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    files = [uri for uri in table.file_uris()]
    frame = spark.read.option("basePath", root).parquet(*files)
    result["spark"] = {
        "types": {f.name: f.dataType.simpleString() for f in frame.schema.fields if f.name in columns},
        "rows": rows_of([row.asDict() for row in frame.select(*names).collect()], names),
    }
    spark.stop()
    print(json.dumps(result))


main()
