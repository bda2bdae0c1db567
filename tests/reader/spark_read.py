"""Reads Parquet files with Spark's two Parquet readers (parquet-java: the vectorized one and
the row-by-row one) and compares every value with pyarrow's reading of the same file.

Usage: spark_read.py FILE... ; prints one JSON document: per file, its rows and columns and
the first difference found, if any. One JVM reads every file.

Spark gives Python datetimes only for years it can convert (not year 1), so timestamps and
dates are compared as microseconds and days since the epoch, computed inside Spark; binary as
hex; maps as sorted key-value pairs; NaN as a marker; decimals by their text (scale included).
"""

import datetime
import decimal
import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_DATE = datetime.date(1970, 1, 1)


def has_time(data_type):
    """Whether a Spark type holds a timestamp or date anywhere."""
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        return True
    if isinstance(data_type, T.StructType):
        return any(has_time(field.dataType) for field in data_type.fields)
    if isinstance(data_type, T.ArrayType):
        return has_time(data_type.elementType)
    if isinstance(data_type, T.MapType):
        return has_time(data_type.keyType) or has_time(data_type.valueType)
    return False


def times_as_numbers(column, data_type):
    """`column` with every timestamp as microseconds and every date as days since the epoch."""
    if not has_time(data_type):
        return column
    if isinstance(data_type, T.TimestampType):
        return F.unix_micros(column)
    if isinstance(data_type, T.TimestampNTZType):
        # The session's time zone is UTC: the wall-clock value, unshifted.
        return F.unix_micros(column.cast(T.TimestampType()))
    if isinstance(data_type, T.DateType):
        return F.unix_date(column)
    if isinstance(data_type, T.StructType):
        fields = [times_as_numbers(column[f.name], f.dataType).alias(f.name) for f in data_type.fields]
        return F.when(column.isNull(), F.lit(None)).otherwise(F.struct(*fields))
    if isinstance(data_type, T.ArrayType):
        return F.transform(column, lambda element: times_as_numbers(element, data_type.elementType))
    entries = F.transform(
        F.map_entries(column),
        lambda entry: F.struct(
            times_as_numbers(entry["key"], data_type.keyType).alias("key"),
            times_as_numbers(entry["value"], data_type.valueType).alias("value"),
        ),
    )
    return F.when(column.isNull(), F.lit(None)).otherwise(F.map_from_entries(entries))


def plain(value):
    """A value as comparable plain data, from either reader."""
    if value is None:
        return None
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else value
    if isinstance(value, decimal.Decimal):
        return "decimal:" + str(value)
    if isinstance(value, (bytes, bytearray)):
        return "binary:" + bytes(value).hex()
    if isinstance(value, dict):
        return {"map": sorted(([plain(k), plain(v)] for k, v in value.items()), key=json.dumps)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "asDict"):
        return {k: plain(v) for k, v in value.asDict(recursive=False).items()}
    return value


def arrow_plain(value, data_type):
    """A pyarrow value (from to_pylist) as `plain` gives Spark's, times as numbers."""
    if value is None:
        return None
    if pa.types.is_timestamp(data_type):
        naive = value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(
            datetime.timezone.utc).replace(tzinfo=None)
        return (naive - EPOCH) // datetime.timedelta(microseconds=1)
    if pa.types.is_date(data_type):
        return (value - EPOCH_DATE).days
    if pa.types.is_struct(data_type):
        return {data_type.field(i).name: arrow_plain(value[data_type.field(i).name], data_type.field(i).type)
                for i in range(data_type.num_fields)}
    if pa.types.is_map(data_type):
        pairs = [[arrow_plain(k, data_type.key_type), arrow_plain(v, data_type.item_type)] for k, v in value]
        return {"map": sorted(pairs, key=json.dumps)}
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return [arrow_plain(v, data_type.value_type) for v in value]
    return plain(value)


def first_difference(expected, got, path="$"):
    if type(expected) is not type(got) and not (isinstance(expected, (int, float)) and isinstance(got, (int, float))):
        return f"{path}: pyarrow {expected!r}, spark {got!r}"
    if isinstance(expected, dict):
        for key in sorted(set(expected) | set(got)):
            found = first_difference(expected.get(key), got.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if len(expected) != len(got):
            return f"{path}: pyarrow {len(expected)} items, spark {len(got)}"
        for index, (a, b) in enumerate(zip(expected, got)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if expected == got else f"{path}: pyarrow {expected!r}, spark {got!r}"


def main(paths):
    spark = (SparkSession.builder.master("local[1]").appName("inlet-parquet-check")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.files.maxPartitionBytes", str(1 << 30))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    report = []
    for path in paths:
        table = pq.ParquetFile(path).read()
        expected = [{name: arrow_plain(row[name], table.schema.field(name).type) for name in table.column_names}
                    for row in table.to_pylist()]
        entry = {"file": path, "rows": table.num_rows, "columns": table.column_names, "differences": {}}
        for reader, vectorized in (("vectorized", "true"), ("row", "false")):
            spark.conf.set("spark.sql.parquet.enableVectorizedReader", vectorized)
            spark.conf.set("spark.sql.parquet.enableNestedColumnVectorizedReader", vectorized)
            frame = spark.read.parquet(path)
            columns = [times_as_numbers(F.col(f"`{f.name}`"), f.dataType).alias(f.name) for f in frame.schema.fields]
            got = [{k: plain(v) for k, v in row.asDict(recursive=False).items()}
                   for row in frame.select(*columns).collect()]
            difference = first_difference(expected, got)
            if difference:
                entry["differences"][reader] = difference
        report.append(entry)
    spark.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
