"""Reading YAML text: libyaml when present, duplicate keys found, syntax errors in plain words.

Separate because only a text being checked or stored needs PyYAML: a command that runs a stored
definition reads it pre-parsed (``workflows.loader.documents``) and never imports this module's
parser (PyYAML is imported on the first text parsed, not with the module).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _keyed(base: type[Any]) -> type[Any]:
    """``base`` (a safe loader) that records every duplicate key of a mapping with both lines.

    PyYAML keeps the last of two equal keys without a word, so a second ``dest:`` silently
    replaced the first; the constructor sees each key node with its mark, so it can say where.
    """
    import yaml

    class _DuplicateKeyLoader(base):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.duplicates: list[str] = []

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node)
                    line = key_node.start_mark.line + 1
                    if key in first:
                        self.duplicates.append(
                            f"line {line}: duplicate key {key!r} (first at line {first[key]}): "
                            "YAML would silently keep only the last one; remove one of them"
                        )
                    else:
                        first[key] = line
            return super().construct_mapping(node, deep)

    def timestamp(loader: Any, node: yaml.ScalarNode) -> Any:
        # PyYAML's own constructor raises a bare ValueError (a traceback) for 2021-13-01.
        try:
            return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
            ) from None

    _DuplicateKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", timestamp)
    return _DuplicateKeyLoader


@cache
def _loaders() -> tuple[type[Any] | None, type[Any] | None, type[Any]]:
    """(libyaml's safe loader, its keyed form, the pure-Python keyed loader).

    PyYAML is imported here, on the first text parsed, not with the module: a command that runs
    a stored definition reads it pre-parsed (``load_document``) and never needs it. libyaml's
    loader, when PyYAML has it, reads the same documents about 5x faster.
    """
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    return fast, (_keyed(fast) if fast is not None else None), _keyed(yaml.SafeLoader)


def _load_keyed(loader_cls: type[Any], text: str) -> tuple[Any, list[str]]:
    loader = loader_cls(text)
    try:
        return loader.get_single_data(), list(loader.duplicates)
    finally:
        loader.dispose()


def _syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    """A plain-words guess at the cause of a PyYAML syntax error (its own words are terse)."""
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    if "is not a valid date" in problem:
        return "write a date as YYYY-MM-DD with a real month and day"
    if "\\t" in problem or "\t" in problem:
        return "a tab character: YAML indents with spaces only, replace the tab by spaces"
    if "could not find expected ':'" in problem:
        where = exc.context_mark.line + 1 if exc.context_mark else None
        at = f" (on line {where})" if where else ""
        return f"a key without its colon{at}: write 'key: value'"
    if "mapping values are not allowed" in problem:
        return (
            "a ': ' inside a value (put the value in double quotes) or a line indented more "
            "than the key above it"
        )
    if "expected <block end>" in problem or "did not find expected" in problem:
        return (
            "check the indentation: the keys of one mapping and the '-' items of one list must "
            "start in the same column"
        )
    if "flow" in context or "expected ',' or" in problem:
        return "a '[' or '{' that is not closed on this or a later line"
    if "quoted scalar" in context:
        return "a quote that is not closed"
    return "check the indentation, the colons and the quotes near this place"


def parse_yaml(text: str, source: str, legacy: bool = False) -> tuple[Any, list[str]]:
    """The document and its problems: a syntax error (with a hint), or its duplicate keys.

    ``legacy`` (a stored version) skips the duplicate-key check.
    """
    import yaml

    fast, keyed_fast, keyed_safe = _loaders()
    if fast is not None and keyed_fast is not None:
        try:
            if legacy:
                return yaml.load(text, Loader=fast), []  # a safe loader (CSafeLoader)
            return _load_keyed(keyed_fast, text)
        except yaml.YAMLError:
            pass  # the pure-Python loader below words the problem as it always has
    try:
        if legacy:
            return yaml.safe_load(text), []
        return _load_keyed(keyed_safe, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        return None, [f"{where}: YAML syntax: {exc.problem or exc} (hint: {_syntax_hint(exc)})"]
    except yaml.YAMLError as exc:
        return None, [f"YAML syntax: {exc}"]
