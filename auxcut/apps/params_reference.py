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


def _checks(cls: type[BaseModel]) -> list[str]:
    """What a section's own validators check, from the messages they raise (up to the value they quote)."""
    found = []
    for decorator in cls.__pydantic_decorators__.model_validators.values():
        tree = ast.parse(textwrap.dedent(inspect.getsource(decorator.func)))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args
                    and getattr(node.exc.func, "id", "") == "ValueError"):
                message = node.exc.args[0]
                parts = message.values if isinstance(message, ast.JoinedStr) else [message]
                text = ""
                for part in parts:
                    if not isinstance(part, ast.Constant):
                        break
                    text += part.value
                found.append(re.split(r",? \(?got\b", text)[0].strip(" ,:"))
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


def _sections(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    return [(field.alias or name, field.annotation) for name, field in model.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)]


def _leaves(model: type[BaseModel], prefix: str) -> list[tuple[str, str, typing.Any]]:
    """(dotted key, field name, FieldInfo) of every leaf under a section, nested sections flattened."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += _leaves(field.annotation, key + ".")
        else:
            out.append((key, name, field))
    return out


def _get(values: dict, dotted: str) -> typing.Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def params_reference(params_path: str | Path = "params.yaml") -> str:
    """The markdown of docs/params.md: every key of the schema with its type, bounds, value and meaning."""
    text = Path(params_path).read_text()
    values = yaml.safe_load(text)
    comments = yaml_comments(text)
    # A section of a subclass (aux: AuxParams(TrainParams)) inherits the meaning of a field its parent's section states.
    section_of_class = {cls: key for key, cls in _sections(schema.Params)}

    def meaning(section_cls: type, key: str, name: str) -> str:
        if comments.get(key):
            return comments[key]
        for cls in section_cls.__mro__:
            if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or name not in cls.__dict__.get(
                    "__annotations__", {}):
                continue
            own = _field_comments(cls).get(name)
            if own:
                return own
            parent_key = section_of_class.get(cls)
            if cls is not section_cls and parent_key and comments.get(f"{parent_key}.{name}"):
                return comments[f"{parent_key}.{name}"]
        return GLOSS.get(name, "")

    lines = ["# Params reference", "",
             f"Generated from the params schema (`auxcut/pipeline/params.py`) and the values and comments of "
             f"`params.yaml` by `{COMMAND}`; do not edit it by hand (`tests/test_docs.py` fails when it is stale).", "",
             comments[""], "",
             inspect.cleandoc(schema.__doc__).split("\n\n")[1].replace("\n", " "), "",
             "Params that are each fine but wrong together are checked when any stage starts, before any training "
             "(`auxcut.pipeline.params.check_combinations`); bad values are one line naming the key, e.g. "
             "`params.yaml: base.epochs: input should be a valid integer (got 'ten')`.", ""]
    top = [(name, field) for name, field in schema.Params.model_fields.items()
           if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))]
    groups: list[tuple[str, type[BaseModel] | None, list]] = [("top level", None, [(n, n, f) for n, f in top])]
    groups += [(key, cls, _leaves(cls, key + ".")) for key, cls in _sections(schema.Params)]
    for title, cls, leaves in groups:
        lines += [f"## `{title}`" if cls is not None else f"## {title}", ""]
        if cls is not None and comments.get(title):
            lines += [f"In params.yaml: {comments[title]}", ""]
        if cls is not None and cls.__doc__ and cls.__doc__ is not BaseModel.__doc__:
            lines += [inspect.cleandoc(cls.__doc__).replace("\n", " "), ""]
        lines += ["| key | type and bounds | value | meaning |", "| --- | --- | --- | --- |"]
        checks: list[str] = []
        for key, name, field in leaves:
            section_cls = cls
            if cls is not None and key.count(".") > 1:  # a nested section (data.split): its own class
                section_cls = _get_model(cls, key.split(".")[1:-1])
            kind = describe_type(field.annotation)
            bounds = describe_bounds(field.metadata, field.annotation)
            own_meaning = meaning(section_cls, key, name) if section_cls is not None else (
                comments.get(key) or _field_comments(schema.Params).get(name, ""))
            lines.append(f"| `{key}` | {_cell(kind + (f'; {bounds}' if bounds else ''))} | "
                         f"`{_cell(_value(_get(values, key)))}` | {_cell(own_meaning)} |")
        for model in _models_under(cls):
            checks += _checks(model)
        if checks:
            lines += ["", "Checked together: " + "; ".join(checks) + "."]
        lines.append("")
    return "\n".join(lines)


def _get_model(cls: type[BaseModel], path: list[str]) -> type[BaseModel]:
    for part in path:
        cls = cls.model_fields[part].annotation
    return cls


def _models_under(cls: type[BaseModel] | None) -> list[type[BaseModel]]:
    if cls is None:
        return []
    return [cls] + [m for _, sub in _sections(cls) for m in _models_under(sub)]


def main() -> int:
    sys.stdout.write(params_reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
