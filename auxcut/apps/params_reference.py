"""The params reference (docs/params.md), generated from the params schema so that it cannot drift from it.

Every key of `auxcut.pipeline.params.Params`, dotted, with its type, allowed values and bounds (read off the pydantic
fields), its value in params.yaml, and its meaning: the comment beside the key in params.yaml, else the comment beside
the field in the schema, else the comment of the same inherited field where its parent section states it, else a
short gloss of a generic training field. Regenerate with

    python -m auxcut.apps.params_reference > docs/params.md

(tests/test_docs.py fails when the committed page differs from what this writes).
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path

import annotated_types
import yaml
from pydantic import BaseModel

from auxcut.pipeline import params as schema

COMMAND = "python -m auxcut.apps.params_reference > docs/params.md"

# Generic training fields that params.yaml leaves uncommented (their meaning is the same in every section).
GLOSS = {
    "epochs": "most training epochs (early stopping may end sooner)",
    "batch_size": "images per training batch (the global batch when several processes train)",
    "lr": "learning rate",
    "weight_decay": "weight decay (L2 penalty on the weights)",
    "patience": "early stopping: epochs without a better val loss before training stops",
    "augment": "random flips + small crops while training",
    "max_iter": "most iterations of the solver",
    "ci": "confidence level of the bootstrap intervals",
    "train": "share of each class's images in the train split (seeded, stratified)",
    "val": "share of each class's images in the validation split (seeded, stratified)",
    "test": "share of each class's images in the test split (seeded, stratified)",
    "sets": "which occluded copies of the test split to build and score",
}

_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*):(.*)$")


def yaml_comments(text: str) -> dict[str, str]:
    """The comment beside every key of a YAML file, by dotted key; '' holds the file's opening comment.

    A comment-only line indented deeper than the key above it continues that key's comment; a blank line ends it."""
    comments: dict[str, str] = {"": ""}
    path: list[tuple[int, str]] = []
    current, current_indent = "", -1
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            current, current_indent = None, -1
            continue
        if stripped.startswith("#"):
            indent = len(line) - len(line.lstrip())
            if current is not None and (current == "" or indent > current_indent):
                comments[current] = (comments[current] + " " + stripped.lstrip("#").strip()).strip()
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            current = None
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key))
        current, current_indent = ".".join(k for _, k in path), indent
        comment = re.search(r"\s#\s?(.*)$", rest)
        comments[current] = comment.group(1).strip() if comment else ""
    return comments


def _field_comments(cls: type) -> dict[str, str]:
    """The comment on the line of each field in a class's own source (`name: type = ...  # comment`)."""
    out: dict[str, str] = {}
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            match = re.match(r"\s*([A-Za-z_]\w*)\s*:", lines[tok.start[0] - 1])
            if match:
                out[match.group(1)] = tok.string.lstrip("#").strip()
    return out


def _raised_messages(func: typing.Callable) -> list[str]:
    """The ValueError messages a validator raises, a quoted value shown as … and a trailing "got …" left out."""
    messages = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(func)))):
        if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args
                and getattr(node.exc.func, "id", "") == "ValueError"):
            message = node.exc.args[0]
            parts = message.values if isinstance(message, ast.JoinedStr) else [message]
            text = "".join(part.value if isinstance(part, ast.Constant) else "…" for part in parts)
            messages.append(re.split(r",? \(?got\b", text)[0].strip(" ,:"))
    return messages


def _checks(cls: type[BaseModel], prefix: str) -> list[str]:
    """What a section's own validators check, from the messages they raise: across its fields, then per field."""
    decorators = cls.__pydantic_decorators__
    found = [m for d in decorators.model_validators.values() for m in _raised_messages(d.func)]
    for decorator in decorators.field_validators.values():
        fields = ", ".join(f"`{prefix}{name}`" for name in decorator.info.fields)
        found += [f"{fields}: {m}" for m in _raised_messages(decorator.func)]
    return found


def _literal(values: tuple) -> str:
    return ", ".join(f"`{v}`" for v in values)


def describe_type(annotation: typing.Any) -> str:
    """A type annotation in words: `int`, one of `a`, `b`, list of ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return f"one of {_literal(args)}" if len(args) > 1 else f"`{args[0]}`"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is list:
        return f"list of ({describe_type(args[0])})" if typing.get_origin(args[0]) is typing.Literal \
            else f"list of {describe_type(args[0])}"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def describe_bounds(metadata: list, annotation: typing.Any) -> str:
    """The constraints pydantic keeps in a field's metadata, in words."""
    unit = ("character", "characters") if annotation is str else ("entry", "entries")
    low = high = ""
    words = []
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            low = f"> {item.gt}"
        elif isinstance(item, annotated_types.Ge):
            low = f"≥ {item.ge}"
        elif isinstance(item, annotated_types.Lt):
            high = f"< {item.lt}"
        elif isinstance(item, annotated_types.Le):
            high = f"≤ {item.le}"
        elif isinstance(item, annotated_types.MinLen):
            words.append(f"at least {item.min_length} {unit[item.min_length != 1]}" if item.min_length else "")
        elif item == schema.Distinct:
            words.append("no repeats")
    return ", ".join(w for w in [low, high, *words] if w)


def _value(value: typing.Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()
    return text.removesuffix("...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _is_section(annotation: typing.Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _sections(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(key, model) of the nested sections of a model, in schema order."""
    return [(field.alias or name, field.annotation) for name, field in model.model_fields.items()
            if _is_section(field.annotation)]


def _leaves(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel], str, typing.Any]]:
    """(dotted key, the model that holds it, field name, FieldInfo) of every leaf of a model, nested ones flattened."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out += _leaves(field.annotation, key + ".") if _is_section(field.annotation) else [(key, model, name, field)]
    return out


def _models_under(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel]]]:
    """A section's model and its nested sections' models, each with the dotted prefix of its keys."""
    return [(prefix, model)] + [m for key, sub in _sections(model) for m in _models_under(sub, f"{prefix}{key}.")]


def _get(values: dict, dotted: str) -> typing.Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def params_reference(params_path: str | Path = "params.yaml") -> str:
    """The markdown of docs/params.md: every key of the schema with its type, bounds, value and meaning."""
    text = Path(params_path).read_text()
    values = yaml.safe_load(text)
    comments = yaml_comments(text)
    section_of_class: dict[type, str] = {}  # a class shared by sections (TrainParams): the first section built on it
    for key, model in _sections(schema.Params):
        for cls in model.__mro__:
            section_of_class.setdefault(cls, key)

    def meaning(holder: type[BaseModel], key: str, name: str) -> str:
        """The comment beside the key in params.yaml; else beside the field in the schema; else beside the same key
        of the section whose class declares the field (aux.patience: base.patience, both TrainParams); else a gloss."""
        declaring = next(c for c in holder.__mro__ if name in vars(c).get("__annotations__", {}))
        inherited = comments.get(f"{section_of_class[declaring]}.{name}") if declaring in section_of_class else ""
        return comments.get(key) or _field_comments(declaring).get(name) or inherited or GLOSS.get(name, "")

    lines = ["# Params reference", "",
             f"Generated from the params schema (`auxcut/pipeline/params.py`) and the values and comments of "
             f"`params.yaml` by `{COMMAND}`; do not edit it by hand (`tests/test_docs.py` fails when it is stale).", "",
             comments[""], "",
             inspect.cleandoc(schema.__doc__).split("\n\n")[1].replace("\n", " "), "",
             "Params that are each fine but wrong together are checked when any stage starts, before any training "
             "(`auxcut.pipeline.params.check_combinations`); bad values are one line naming the key, e.g. "
             "`params.yaml: base.epochs: input should be a valid integer (got 'ten')`.", ""]
    top_level = [leaf for leaf in _leaves(schema.Params, "") if "." not in leaf[0]]
    groups = [("top level", None, top_level)]
    groups += [(key, model, _leaves(model, key + ".")) for key, model in _sections(schema.Params)]
    for title, model, leaves in groups:
        lines += [f"## `{title}`" if model else f"## {title}", ""]
        if model and comments.get(title):
            lines += [f"In params.yaml: {comments[title]}", ""]
        if model and vars(model).get("__doc__"):
            lines += [inspect.cleandoc(model.__doc__).replace("\n", " "), ""]
        lines += ["| key | type and bounds | value | meaning |", "| --- | --- | --- | --- |"]
        for key, holder, name, field in leaves:
            kind = describe_type(field.annotation)
            bounds = describe_bounds(field.metadata, field.annotation)
            lines.append(f"| `{key}` | {_cell(kind + (f'; {bounds}' if bounds else ''))} | "
                         f"`{_cell(_value(_get(values, key)))}` | {_cell(meaning(holder, key, name))} |")
        checks = [c for prefix, sub in (_models_under(model, f"{title}.") if model else []) for c in _checks(sub, prefix)]
        if checks:
            lines += ["", "Also checked: " + "; ".join(checks) + "."]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    sys.stdout.write(params_reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
