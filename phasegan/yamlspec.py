"""Reading spec YAML: safe, strict about duplicate keys, plain about numbers.

PyYAML implements YAML 1.1, whose implicit types surprise people writing
numbers: ``1e-3`` stays a string (a float needs a dot there), ``010`` is the
octal 8, ``1:20`` is the sexagesimal 80, and ``yes``/``no``/``on`` are
booleans. A sweep spec is mostly numbers, so the loader here resolves plain
scalars the way YAML 1.2's core schema does: decimal integers, floats with or
without a dot (``1e-3``, ``.5``, ``2.5E+3``, ``.inf``, ``.nan``), and only
``true``/``false`` as booleans. Everything else is PyYAML's safe loader.
"""

from __future__ import annotations

import re

import yaml

from phasegan.errors import InputError

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")

_REPLACED_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
}


class _SpecLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.2 core numbers and booleans."""

    def construct_yaml_int(self, node):
        return int(self.construct_scalar(node), 10)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node).lower()
        if text.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if text == ".nan":
            return float("nan")
        return float(text)

    def construct_yaml_bool(self, node):
        return self.construct_scalar(node).lower() == "true"


# Drop YAML 1.1's implicit int/float/bool rules, keep the others (null...).
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in rules if tag not in _REPLACED_TAGS]
    for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
# Integers first: "10" matches both patterns and must stay an int.
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")
)
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_constructor("tag:yaml.org,2002:float", _SpecLoader.construct_yaml_float)
_SpecLoader.add_constructor("tag:yaml.org,2002:bool", _SpecLoader.construct_yaml_bool)


def load_yaml(text: str, source: str = "spec"):
    """Parse one YAML document; duplicate keys and syntax errors are `InputError`.

    Parameters
    ----------
    text : str
        The YAML text.
    source : str
        What to call the text in error messages (a file name, ``--set``).
    """
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _reject_duplicate_keys(node, ())
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise InputError(source, "is not valid YAML", hint=_describe(exc)) from None
    finally:
        loader.dispose()


def _reject_duplicate_keys(node, path: tuple[str, ...]):
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                field = ".".join(path + (key,))
                raise InputError(
                    field,
                    "is given twice; every key may appear once",
                    hint=f"delete one of the two (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1})",
                )
            seen[key] = key_node.start_mark.line + 1
            _reject_duplicate_keys(value_node, path + (key,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, path + (str(index),))


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def dump_yaml(data) -> str:
    """YAML text of plain data, in the given key order, readable by `load_yaml`."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=88)
