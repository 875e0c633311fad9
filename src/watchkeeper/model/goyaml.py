"""YAML read as Go's decoder (yaml.v2, which Alertmanager uses) gives it to string fields.

YAML 1.1 makes `yes`, `On`, `TRUE` and the like booleans, and PyYAML gives Python's bool. Go
decodes such a scalar into a string field as its text (`ok_text: Yes` is "Yes"), and into a
bool field as the boolean. `load` keeps both: a boolean is a `YamlBool`, an int that is the
boolean wherever a bool is asked for and whose str() is the text as written.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlBool(int):
    """A YAML boolean that remembers how it was written."""

    text: str

    def __new__(cls, value: bool, text: str) -> YamlBool:
        made = super().__new__(cls, bool(value))
        made.text = text
        return made

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"YamlBool({bool(self)}, {self.text!r})"


class _Loader(yaml.SafeLoader):
    pass


def _boolean(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> YamlBool:
    return YamlBool(loader.construct_yaml_bool(node), str(node.value))


_Loader.add_constructor("tag:yaml.org,2002:bool", _boolean)


def load(text: str) -> Any:
    """Like yaml.safe_load, with booleans as YamlBool (yaml.YAMLError when not YAML)."""
    return yaml.load(text, Loader=_Loader)
