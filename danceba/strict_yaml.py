"""YAML for configuration files: safe, no duplicate keys, and only ``true``/``false`` as booleans.

``yaml.safe_load`` keeps the last of two equal keys (a silent override) and reads YAML 1.1's
``yes``/``no``/``on``/``off`` as booleans (``mode: on`` becomes ``True``). :func:`load_strict_yaml`
refuses duplicate keys, naming the line, and keeps those words as strings, so a typed loader
reports them as what they are. Python tags (``!!python/...``) are refused as by ``safe_load``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_BOOL_TAG = "tag:yaml.org,2002:bool"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 booleans and a refusal of duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (line {line}; first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(_BOOL_TAG, _YAML12_BOOL, list("tTfF"))


def load_strict_yaml(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader` (raises ``yaml.YAMLError`` naming the line)."""
    return yaml.load(text, Loader=StrictLoader)
