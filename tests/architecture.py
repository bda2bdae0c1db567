#!/usr/bin/env python3
"""Keeps the library's shape: run by `make lint`, fails with one line per finding.

Three rules over `shared/src` (test code apart: `tests.rs` files, `#[cfg(test)]` items, and
`testing/`, which only tests and benchmarks compile), the function length also over the
functions' and the command's own code:

* a file holds at most MAX_FILE_LINES lines of library code;
* a function spans at most MAX_FN_LINES lines, from its signature to its closing brace;
* a module imports only from its own layer or a lower one (LAYERS): the folders follow the
  data path, so the fragment format never reaches up into the functions that write or read it,
  the converter and the compactor never reach into each other, and nothing but the command
  reaches into `ops/` (the compactor's main runs its scheduled reconciliation).
"""

import pathlib
import re
import sys

MAX_FILE_LINES = 600
MAX_FN_LINES = 80

# Lowest first. A module may import from its own top-level module and from any lower layer;
# modules of one layer other than the first do not import each other.
LAYERS = [
    # The vocabulary every part shares: errors, settings, schema, paths, identity, routes.
    {"error", "faults", "layout", "lineage", "metrics", "telemetry", "aws", "memory", "config",
     "schema", "partition", "properties", "routes", "framing"},
    # The fragment format and the stores both functions write and read.
    {"stage"},
    # What a function builds once at cold start.
    {"context"},
    # The converter and the compactor.
    {"ingest", "commit"},
    # What only the command does.
    {"ops"},
]
SHARED_LAYER = 0
EXEMPT = {"testing"}

ROOT = pathlib.Path(__file__).resolve().parent.parent / "shared" / "src"


def layer_of(module):
    for index, members in enumerate(LAYERS):
        if module in members:
            return index
    return None


def blank_out(text):
    """The source with comments, strings and char literals replaced by spaces (newlines
    kept), so braces and paths can be found by position."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif re.match(r'(b|c)?r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b|c)?r(#*)"', text[i:])
            closing = '"' + m.group(2)
            j = text.find(closing, i + m.end())
            j = n if j < 0 else j + len(closing)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' or (c in "bc" and text.startswith('"', i + 1) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (1 if c == '"' else 2)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), else a lifetime or label.
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def item_end(code, start):
    """End of the item starting at `start`: its closing brace, or the `;` before any brace."""
    j = start
    while j < len(code) and code[j] not in "{;":
        j += 1
    if j < len(code) and code[j] == "{":
        return matching_brace(code, j)
    return j


def test_spans(code):
    """Character spans of `#[cfg(test)]` items and `#[test]` functions."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]|#\[(tokio::)?test(\([^)]*\))?\]", code):
        spans.append((m.start(), item_end(code, m.end())))
    return spans


def inside(spans, at):
    return any(start <= at <= end for start, end in spans)


def line_of(code, at):
    return code.count("\n", 0, at) + 1


def module_path(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def use_roots(tree):
    """First segments of every path a `use` tree names, with the tree's own prefix."""
    tree = re.sub(r"\s+", "", tree)
    roots = []

    def walk(prefix, rest):
        if "{" not in rest:
            roots.append(prefix + rest.split(",")[0])
            return
        head, _, body = rest.partition("{")
        body = body[: body.rfind("}")]
        depth, start = 0, 0
        for k, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = body[start:k]
                if part:
                    walk(prefix + head, part)
                start = k + 1

    walk("", tree)
    return roots


def resolve(path, here):
    """The top-level module a path names, for paths that start in this crate."""
    segments = path.split("::")
    if segments[0] == "crate":
        rest = segments[1:]
    elif segments[0] in ("super", "self"):
        base = list(here)
        while segments and segments[0] in ("super", "self"):
            if segments.pop(0) == "super":
                base = base[:-1]
        rest = base + segments
    else:
        return None
    return rest[0] if rest else None


def check_lengths_only(path, findings):
    """The length rules for a binary's own code (the functions' mains, the command)."""
    text = path.read_text()
    code = blank_out(text)
    tests = test_spans(code)
    rel = path.relative_to(ROOT.parent.parent)
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", code):
        if inside(tests, m.start()):
            continue
        end = item_end(code, m.end())
        first, last = line_of(code, m.start()), line_of(code, end)
        if code[end] == "}" and last - first + 1 > MAX_FN_LINES:
            findings.append(f"{rel}:{first}: fn {m.group(1)} spans {last - first + 1} lines (at most {MAX_FN_LINES})")


def check(path, findings):
    text = path.read_text()
    code = blank_out(text)
    here = module_path(path)
    top = here[0] if here else ""
    is_test_file = path.name == "tests.rs" or top in EXEMPT
    tests = [(0, len(code))] if is_test_file else test_spans(code)
    rel = path.relative_to(ROOT.parent.parent)

    if not is_test_file:
        test_lines = set()
        for start, end in tests:
            test_lines.update(range(line_of(code, start), line_of(code, end) + 1))
        library_lines = text.count("\n") + 1 - len(test_lines)
        if library_lines > MAX_FILE_LINES:
            findings.append(f"{rel}: {library_lines} lines of library code (at most {MAX_FILE_LINES})")

    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", code):
        if inside(tests, m.start()):
            continue
        end = item_end(code, m.end())
        if code[end] != "}":
            continue
        first, last = line_of(code, m.start()), line_of(code, end)
        if last - first + 1 > MAX_FN_LINES:
            findings.append(f"{rel}:{first}: fn {m.group(1)} spans {last - first + 1} lines (at most {MAX_FN_LINES})")

    own = layer_of(top)
    if top in EXEMPT or own is None:
        return
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        if not inside(tests, m.start()):
            paths += [(m.start(), p) for p in use_roots(m.group(1))]
    for m in re.finditer(r"\b(crate|super)(::[A-Za-z_][A-Za-z0-9_]*)+", code):
        if not inside(tests, m.start()):
            paths.append((m.start(), m.group(0)))
    for at, p in paths:
        target = resolve(p, here)
        if target is None or target == top or target not in ROOT_MODULES:
            continue
        theirs = layer_of(target)
        if target in EXEMPT:
            findings.append(f"{rel}:{line_of(code, at)}: library code imports {target} (test support)")
        elif theirs is None:
            findings.append(f"{rel}:{line_of(code, at)}: {target} has no layer in tests/architecture.py")
        elif theirs > own or (theirs == own and own != SHARED_LAYER):
            findings.append(f"{rel}:{line_of(code, at)}: {top} imports {target}, a layer above it or beside it")


ROOT_MODULES = {p.stem for p in ROOT.glob("*.rs")} | {p.name for p in ROOT.iterdir() if p.is_dir()}


def self_test():
    """The parsing this check relies on, on cases that once fooled simpler checks."""
    code = blank_out('let s = "fn x() { crate::ops::y }"; // crate::ops::z {\nlet c = \'{\'; let r = r#"}"#;')
    assert "crate::ops" not in code and "{" not in code.replace("x() {", ""), code
    assert sorted(use_roots("crate::{ingest::{a, b}, commit::c, self}")) == [
        "crate::commit::c", "crate::ingest::a", "crate::ingest::b", "crate::self"]
    assert resolve("super::super::ops::x", ["ingest", "converter", "large"]) == "ingest"
    assert resolve("super::super::super::ops::x", ["ingest", "converter", "large"]) == "ops"
    tests = test_spans(blank_out("fn a() {}\n#[cfg(test)]\nmod tests { fn b() {} }\n"))
    assert len(tests) == 1


def main():
    self_test()
    findings = []
    for path in sorted(ROOT.rglob("*.rs")):
        check(path, findings)
    for path in sorted(list((ROOT.parent.parent / "cli" / "src").rglob("*.rs"))
                       + list((ROOT.parent.parent / "functions").glob("*/src/**/*.rs"))):
        check_lengths_only(path, findings)
    unplaced = ROOT_MODULES - {"lib"} - EXEMPT - set().union(*LAYERS)
    findings += [f"shared/src/{m}: a module with no layer in tests/architecture.py" for m in sorted(unplaced)]
    for finding in findings:
        print(finding)
    if findings:
        print(f"architecture: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    print("architecture: files, functions and layers as they should be")
    return 0


if __name__ == "__main__":
    sys.exit(main())
