"""Writes the inputs and outputs tables of infra/modules/inlet/README.md from variables.tf and
outputs.tf, between the `<!-- inputs -->` / `<!-- outputs -->` markers; `--check` (run by
infra/check.sh) fails when the README is out of date instead of writing it.
"""

import pathlib
import re
import sys


MODULE = pathlib.Path(__file__).resolve().parent / "modules" / "inlet"


def blocks(name: str, kind: str) -> list[tuple[str, str]]:
    """(name, body) of each top-level `kind "name" {` block, as written."""
    text = (MODULE / name).read_text()
    found = []
    for match in re.finditer(rf'^{kind} "([^"]+)" \{{\n(.*?)^\}}', text, re.DOTALL | re.MULTILINE):
        found.append((match.group(1), match.group(2)))
    return found


def attribute(body: str, name: str) -> str | None:
    """A top-level attribute's value as written; a multi-line value is summarised by its head."""
    match = re.search(rf"^  {name}\s*=\s*(.*)$", body, re.MULTILINE)
    if not match:
        return None
    value = match.group(1).strip()
    if value.endswith("({"):
        value = value[:-2] + "(...)"
        value += ")" * (value.count("(") - value.count(")"))
    return value


def cell(text: str) -> str:
    return text.replace('\\"', '"').replace("|", "\\|")


def inputs_table() -> str:
    rows = ["| Name | Description | Type | Default |", "|---|---|---|---|"]
    for name, body in blocks("variables.tf", "variable"):
        description = (attribute(body, "description") or '""')[1:-1]
        default = attribute(body, "default")
        shown = "required" if default is None else f"`{cell(default)}`"
        rows.append(f"| `{name}` | {cell(description)} | `{cell(attribute(body, 'type') or 'any')}` | {shown} |")
    return "\n".join(rows)


def outputs_table() -> str:
    rows = ["| Name | Description |", "|---|---|"]
    for name, body in blocks("outputs.tf", "output"):
        description = (attribute(body, "description") or '""')[1:-1]
        rows.append(f"| `{name}` | {cell(description)} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    for marker, table in (("inputs", inputs_table()), ("outputs", outputs_table())):
        pattern = re.compile(rf"(<!-- {marker} -->\n).*?(<!-- /{marker} -->)", re.DOTALL)
        if not pattern.search(readme):
            sys.exit(f"README.md has no <!-- {marker} --> ... <!-- /{marker} --> section")
        readme = pattern.sub(lambda match: match.group(1) + table + "\n" + match.group(2), readme)
    return readme


def main() -> None:
    path = MODULE / "README.md"
    current = path.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        if wanted != current:
            sys.exit("infra/modules/inlet/README.md is out of date: run `make infra-docs`")
        print("module README tables are up to date")
    else:
        path.write_text(wanted)


if __name__ == "__main__":
    main()
