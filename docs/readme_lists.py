#!/usr/bin/env python3
"""Writes the README's metric and alarm lists from their sources, so they cannot drift.

The metric list comes from `METRICS` in shared/src/metrics.rs (a test there checks it against
the metrics the code emits); the alarm list from the `aws_cloudwatch_metric_alarm` resources
of infra/modules/inlet/monitoring.tf and its `table_alarms` map. Each replaces the text between
its marker lines in README.md. `--check` writes nothing and fails when the README differs;
`make lint` runs it. Both modes fail when an alarm watches an Inlet metric that `METRICS` does
not list for that function: such an alarm could never fire.
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
METRICS_RS = ROOT / "shared" / "src" / "metrics.rs"
MONITORING_TF = ROOT / "infra" / "modules" / "inlet" / "monitoring.tf"
ALARM_RESOURCE = "aws_cloudwatch_metric_alarm"
TABLE_ALARMS = "table_alarms"
# What a per-table alarm's name says in place of the table's route name.
TABLE = "<table>"
OPERATORS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


class SourceError(Exception):
    """A source this script reads does not have the shape it expects."""


# ---- Rust: METRICS ----

def rust_string(literal):
    """The value of a Rust string literal's body: the escapes the registry may use, and line
    continuations (a backslash, the newline and the next line's indentation)."""
    simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    out, i = [], 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = literal[i + 1]
        if nxt == "\n":
            i += 2
            while i < len(literal) and literal[i] in " \t\n\r":
                i += 1
        elif nxt in simple:
            out.append(simple[nxt])
            i += 2
        else:
            raise SourceError(f"unsupported escape \\{nxt} in {METRICS_RS.name}")
    return "".join(out)


def parse_metrics(text):
    """The entries of `METRICS`, as dicts of their string fields, in order."""
    start = re.search(r"pub const METRICS\s*:\s*&\[MetricDoc\]\s*=\s*&\[", text)
    if not start:
        raise SourceError(f"no `pub const METRICS: &[MetricDoc]` in {METRICS_RS}")
    string = r'"(?:[^"\\]|\\.)*"'
    entry = re.compile(r'\s*MetricDoc\s*\{((?:[^"}]|' + string + r")*)\}\s*,?", re.S)
    field = re.compile(r"(\w+)\s*:\s*(" + string + ")", re.S)
    metrics, at = [], start.end()
    while True:
        match = entry.match(text, at)
        if not match:
            break
        fields = {name: rust_string(value[1:-1]) for name, value in field.findall(match.group(1))}
        missing = {"name", "function", "unit", "description"} - fields.keys()
        if missing:
            raise SourceError(f"a METRICS entry lacks {sorted(missing)} as string literals: {match.group(0).strip()}")
        metrics.append(fields)
        at = match.end()
    if not re.match(r"\s*\]\s*;", text[at:]):
        raise SourceError(f"METRICS in {METRICS_RS.name} holds something other than MetricDoc literals near: "
                          f"{text[at:at + 80].strip()!r}")
    if not metrics:
        raise SourceError(f"METRICS in {METRICS_RS.name} is empty")
    return metrics


# ---- HCL: just enough of it for monitoring.tf ----

def skip_string(text, i):
    """The index after the string literal opening at `i`, interpolations included."""
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
        elif text.startswith("${", i) or text.startswith("%{", i):
            i = skip_nested(text, i + 1)
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise SourceError(f"unterminated string in {MONITORING_TF.name}")


def skip_comment(text, i):
    """The index after the comment starting at `i`, or `i` when none does."""
    if text.startswith("#", i) or text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i)
        return len(text) if end < 0 else end + 2
    return i


def skip_nested(text, i):
    """The index after the bracket opening at `i` and its match."""
    depth = 0
    while i < len(text):
        after_comment = skip_comment(text, i)
        if after_comment != i:
            i = after_comment
            continue
        c = text[i]
        if c == '"':
            i = skip_string(text, i)
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise SourceError(f"unbalanced brackets in {MONITORING_TF.name}")


def expression_end(text, i):
    """Where the expression starting at `i` ends: a newline or comma outside brackets."""
    while i < len(text):
        c = text[i]
        if c == '"':
            i = skip_string(text, i)
        elif c in "{[(":
            i = skip_nested(text, i)
        elif c in "\n,}" or skip_comment(text, i) != i:
            return i
        else:
            i += 1
    return i


def parse_body(text):
    """A block's or object's body: its attributes (name to expression text) and nested blocks
    (a list of (type, labels, body text))."""
    attributes, blocks, i = {}, [], 0
    while i < len(text):
        after_comment = skip_comment(text, i)
        if after_comment != i or text[i] in " \t\r\n,":
            i = max(after_comment, i + 1)
            continue
        key = re.compile(r'([A-Za-z_][\w-]*|"[^"]*")\s*').match(text, i)
        if not key:
            raise SourceError(f"cannot read {MONITORING_TF.name} near: {text[i:i + 60]!r}")
        name, i = key.group(1).strip('"'), key.end()
        if text[i] in "=:" and text[i + 1] != "=":
            end = expression_end(text, i + 1)
            attributes[name] = text[i + 1:end].strip()
            i = end
            continue
        labels = []
        while text[i] == '"':
            end = skip_string(text, i)
            labels.append(text[i + 1:end - 1])
            i = end
            while text[i] in " \t":
                i += 1
        if text[i] != "{":
            raise SourceError(f"cannot read {MONITORING_TF.name} near: {text[i:i + 60]!r}")
        end = skip_nested(text, i)
        blocks.append((name, labels, text[i + 1:end - 1]))
        i = end
    return attributes, blocks


def parse_object(expression):
    """The attributes of an object expression `{ ... }`."""
    expression = expression.strip()
    if not (expression.startswith("{") and expression.endswith("}")):
        raise SourceError(f"not an object: {expression[:60]!r}")
    return parse_body(expression[1:-1])[0]


def split_top_level(expression, separator):
    """`expression` split at its first `separator` outside strings and brackets, or None."""
    i = 0
    while i < len(expression):
        c = expression[i]
        if c == '"':
            i = skip_string(expression, i)
        elif c in "{[(":
            i = skip_nested(expression, i)
        elif expression.startswith(separator, i):
            return expression[:i].strip(), expression[i + len(separator):].strip()
        else:
            i += 1
    return None


def arguments(expression):
    """The arguments of a function call's text between its parentheses."""
    parts, rest = [], expression
    while (split := split_top_level(rest, ",")) is not None:
        parts.append(split[0])
        rest = split[1]
    return parts + [rest.strip()] if rest.strip() else parts


# ---- Reading expressions aloud ----

class Scope:
    """What `each.key` and `each.value...` stand for in one alarm (expression texts); what is
    not given is the table of a per-table alarm."""

    def __init__(self, values=None):
        self.values = values or {}


def resolve(expression, scope):
    """`expression` with the `each` references of `scope` followed."""
    expression = expression.strip()
    while expression in scope.values:
        expression = scope.values[expression].strip()
    return expression


def evaluate(expression, scope):
    """The expression as README text: literals as written, references to the module's inputs
    as their names in backticks, a table's URI as "the table"."""
    expression = expression.strip()
    if expression.startswith('"') and skip_string(expression, 0) == len(expression):
        return template(expression[1:-1], scope)
    conditional = split_top_level(expression, "?")
    if conditional:
        condition, branches = conditional
        when_true, when_false = split_top_level(branches, ":")
        return choose(condition, evaluate(when_true, scope), evaluate(when_false, scope), scope)
    call = re.fullmatch(r"replace\((.*)\)", expression, re.S)
    if call:
        subject, old, new = (evaluate(argument, scope) for argument in arguments(call.group(1)))
        return subject.replace(old, new)
    if expression in scope.values:
        return evaluate(resolve(expression, scope), scope)
    if re.fullmatch(r"local\.table_uris\[.*\]", expression):
        return "the table"
    if re.fullmatch(r"-?\d+(\.\d+)?", expression):
        return expression
    if expression in ("each.key", "each.value.table"):
        return TABLE
    return "`" + re.sub(r"\b(var|local)\.", "", expression) + "`"


def template(body, scope):
    """A string literal's body with its interpolations read aloud."""
    out, i = [], 0
    while i < len(body):
        if body.startswith("${", i):
            end = skip_nested(body, i + 1)
            out.append(evaluate(body[i + 2:end - 1], scope))
            i = end
        elif body[i] == "\\":
            out.append({"n": "\n", "t": "\t"}.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def choose(condition, when_true, when_false, scope):
    """The branch of a conditional the README shows: the one a comparison of `each` values
    selects; otherwise the one naming the table (a deployment of several tables), else the
    true one."""
    comparison = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", condition)
    if comparison and comparison.group(1).startswith("each."):
        equal = evaluate(comparison.group(1), scope) == evaluate(comparison.group(3), scope)
        return when_true if equal == (comparison.group(2) == "==") else when_false
    if TABLE in when_false and TABLE not in when_true:
        return when_false
    return when_true


def condition_text(condition):
    """A `var.x`-style condition as README text."""
    condition = re.sub(r"\bvar\.(\w+)", r"`\1`", condition.strip())
    condition = re.sub(r"\s*==\s*null$", " is null", condition)
    return re.sub(r"\s*!=\s*null$", " set", condition)


def availability(attributes):
    """When the alarm exists, if only under a condition of the module's inputs."""
    for meta in ("count", "for_each"):
        conditional = split_top_level(attributes.get(meta, ""), "?")
        if conditional:
            condition, branches = conditional
            when_true, _ = split_top_level(branches, ":")
            absent = when_true.strip() in ("0", "{}", "[]")
            return ("unless " if absent else "with ") + condition_text(condition)
    return ""


def period_text(expression, scope):
    """A period in seconds as minutes when whole."""
    expression = resolve(expression, scope)
    if re.fullmatch(r"\d+", expression):
        seconds = int(expression)
        return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
    minutes = re.fullmatch(r"(.+?)\s*\*\s*60", expression)
    if minutes:
        return f"{evaluate(minutes.group(1), scope)} min"
    return f"{evaluate(expression, scope)} s"


def dimension_text(expression, scope):
    """What a dimension's value says beside the metric; nothing for the table, implied."""
    expression = resolve(expression, scope)
    resource = re.fullmatch(r"aws_(\w+)\.(\w+)(\[\d+\])?\.\w+", expression)
    if resource:
        return f"{resource.group(1).split('_')[-1]} `{resource.group(2)}`"
    value = evaluate(expression, scope)
    return "" if value == "the table" else value


def metric_text(attributes, scope):
    """`namespace/metric` and what its dimensions pick."""
    namespace = evaluate(attributes["namespace"], scope)
    metric = evaluate(attributes["metric_name"], scope)
    dimensions = parse_object(attributes["dimensions"]) if "dimensions" in attributes else {}
    picked = [text for text in (dimension_text(value, scope) for value in dimensions.values()) if text]
    return f"`{namespace}/{metric}`" + (f" ({', '.join(picked)})" if picked else "")


# ---- Alarms ----

def resource_blocks(text, resource_type):
    """(name, body) of each top-level `resource "<resource_type>"` block, in file order."""
    pattern = re.compile(r'^resource\s+"' + re.escape(resource_type) + r'"\s+"([\w-]+)"\s*\{', re.M)
    for match in pattern.finditer(text):
        end = skip_nested(text, match.end() - 1)
        yield match.group(1), text[match.end():end - 1]


def locals_attributes(text):
    """Every attribute of the file's top-level `locals` blocks."""
    attributes = {}
    for match in re.finditer(r"^locals\s*\{", text, re.M):
        end = skip_nested(text, match.end() - 1)
        attributes.update(parse_body(text[match.end():end - 1])[0])
    return attributes


def alarm_row(attributes, blocks, scope):
    """One row of the alarm table: name, metric, when it fires, meaning, the metrics watched."""
    name = evaluate(attributes["alarm_name"], scope)
    name = re.sub(r"^`name`", "", name).lstrip("-")
    operator = OPERATORS.get(evaluate(attributes["comparison_operator"], scope), "?")
    threshold = evaluate(attributes["threshold"], scope)
    queries = [parse_body(body) for kind, _, body in blocks if kind == "metric_query"]
    if queries:
        watched = [parse_body(body)[0] for _, query_blocks in queries
                   for kind, _, body in query_blocks if kind == "metric"]
        metric = "metric math over " + ", ".join(metric_text(query, scope) for query in watched)
        result = next(query for query, _ in queries if query.get("return_data") == "true")
        what = evaluate(result["label"], scope) if "label" in result else f"`{evaluate(result['expression'], scope)}`"
        periods = {period_text(query["period"], scope) for query in watched}
        above_zero = operator == ">" and threshold == "0"
        fires = what + ("" if above_zero else f" ({operator} {threshold})") + f" in {', '.join(sorted(periods))}"
    else:
        watched = [attributes]
        metric = metric_text(attributes, scope)
        statistic = evaluate(attributes["statistic"], scope)
        period = period_text(attributes["period"], scope)
        count = evaluate(attributes.get("evaluation_periods", "1"), scope)
        fires = f"{statistic} {operator} {threshold} " + (f"over {period}" if count == "1" else
                                                         f"for {count} periods of {period} in a row")
    shown = f"`{name}`"
    condition = availability(attributes)
    if condition:
        shown += f" ({condition})"
    return {
        "name": shown,
        "metric": metric,
        "fires": fires,
        "meaning": evaluate(attributes["alarm_description"], scope),
        "watched": [(evaluate(query["namespace"], scope), evaluate(query["metric_name"], scope),
                     evaluate(parse_object(query.get("dimensions", "{}")).get("Function", '""'), scope), name)
                    for query in watched],
    }


def parse_alarms(text):
    """The rows of the alarm table, in file order: a resource per deployment-wide alarm or
    set of alarms, and the `table_alarms` map for the per-table resource built from it."""
    local_values = locals_attributes(text)
    if TABLE_ALARMS not in local_values:
        raise SourceError(f"no `{TABLE_ALARMS}` local in {MONITORING_TF}")
    from_map = {name for name, value in local_values.items() if f"local.{TABLE_ALARMS}" in value}
    rows = []
    for _, body in resource_blocks(text, ALARM_RESOURCE):
        attributes, blocks = parse_body(body)
        for_each = attributes.get("for_each", "")
        if for_each.startswith("local.") and for_each[len("local."):] in from_map:
            for key, spec in parse_object(local_values[TABLE_ALARMS]).items():
                values = {f"each.value.{field}": value for field, value in parse_object(spec).items()}
                values.update({"each.value.alarm": f'"{key}"', "each.value.table": f'"{TABLE}"'})
                row = alarm_row(attributes, blocks, Scope(values))
                # The resource appends the table's URI, which the README's "per table" says.
                row["meaning"] = evaluate(values["each.value.description"], Scope(values))
                # An entry with `enabled` exists only when its condition holds.
                if "each.value.enabled" in values:
                    row["name"] += f" (with {condition_text(values['each.value.enabled'])})"
                rows.append(row)
        elif for_each.strip().startswith("{"):
            for key, value in parse_object(for_each).items():
                rows.append(alarm_row(attributes, blocks, Scope({"each.key": f'"{key}"', "each.value": value})))
        else:
            rows.append(alarm_row(attributes, blocks, Scope()))
    if not rows:
        raise SourceError(f"no {ALARM_RESOURCE} resources in {MONITORING_TF}")
    return rows


# ---- Markdown ----

def markdown(text):
    """`text` for a table cell: pipes escaped, paths and snake_case names as code (so `<table>`
    is not read as HTML, nor `_inlet/` as emphasis)."""
    pieces = text.replace("\n", " ").replace("|", "\\|").split("`")
    for index in range(0, len(pieces), 2):
        pieces[index] = re.sub(r"[^\s]+", code_if_needed, pieces[index])
    return "`".join(pieces)


def code_if_needed(word):
    """A word with its core in backticks when it is a path, a placeholder or a snake_case name."""
    match = re.fullmatch(r"(\(?)(.*?)([.,;:)]*)", word.group(0))
    lead, core, trail = match.groups()
    if "<" in core or core.startswith("_") or re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", core):
        return f"{lead}`{core}`{trail}"
    return word.group(0)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_section(metrics):
    rows = [[f"`{m['name']}`", m["function"], m["unit"], markdown(m["description"])] for m in metrics]
    return table(["Metric", "Function", "Unit", "Meaning"], rows)


def alarms_section(alarms):
    note = ("Every alarm's name starts with the deployment's `name` and a hyphen, left out here. An alarm\n"
            "named `<table>-...` exists once per table, `<table>` being its route's name; in a deployment\n"
            "without `tables` (one table) that part is absent.")
    rows = [[a["name"], a["metric"], a["fires"], markdown(a["meaning"])] for a in alarms]
    return note + "\n\n" + table(["Alarm", "Metric", "Fires when", "Meaning"], rows)


def unemitted_alarm_metrics(alarms, metrics):
    """Alarms on an Inlet metric that `METRICS` does not list for the alarm's function."""
    emitted = {(m["name"], m["function"]) for m in metrics}
    names = {m["name"] for m in metrics}
    problems = []
    for alarm in alarms:
        for namespace, metric, function, alarm_name in alarm["watched"]:
            if namespace != "Inlet":
                continue
            known = (metric, function) in emitted if function else metric in names
            if not known:
                problems.append(f"{MONITORING_TF.relative_to(ROOT)}: alarm {alarm_name} watches Inlet metric "
                                f"{metric} of function {function or '(any)'}, which METRICS does not list")
    return problems


def replace_between(text, section, body):
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SourceError(f"README.md needs one `{begin}` line and, after it, one `{end}` line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when README.md is stale")
    args = parser.parse_args()
    try:
        metrics = parse_metrics(METRICS_RS.read_text())
        alarms = parse_alarms(MONITORING_TF.read_text())
        readme = README.read_text()
        with_metrics = replace_between(readme, "metrics", metrics_section(metrics))
        updated = replace_between(with_metrics, "alarms", alarms_section(alarms))
    except SourceError as error:
        print(f"readme_lists: {error}", file=sys.stderr)
        return 1
    problems = unemitted_alarm_metrics(alarms, metrics)
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        stale = []
        if with_metrics != readme:
            stale.append("README.md's metric list is stale: run make readme-lists")
        if updated != with_metrics:
            stale.append("README.md's alarm list is stale: run make readme-lists")
        for message in stale:
            print(message, file=sys.stderr)
        return 1 if stale or problems else 0
    if updated != readme:
        README.write_text(updated)
        print("README.md: metric and alarm lists rewritten")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
