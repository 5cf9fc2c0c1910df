"""Property tests of every file loader a user feeds: schema, migration, queue rules and
feedback mapping files. Whatever the file holds, loading it gives the model or one
ConfigError (exit 2) of one line that names the file; never a traceback. A schema that
loads always gives a label config that is valid XML and names its own version.

The files are mutations of the checked-in ones (a node replaced by anything YAML can
hold, a key dropped or added) and plain random text.
"""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.rules import parse_rules
from ls_llmtrace.records.feedback import parse_mapping
from ls_llmtrace.schema.labelconfig import build_instructions, build_label_config
from ls_llmtrace.schema.labelconfig import schema_version_of as version_in_config
from ls_llmtrace.schema.migration import check_migration, parse_migration
from ls_llmtrace.schema.model import AnnotationSchema, load_schema, parse_schema

from .paths import LABEL_CONFIGS, ROOT

# per loader; `make stress` runs this file again with FUZZ_EXAMPLES (test_fuzz_stress.py)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))

RULES = """\
queues:
  - name: thumbs-down
    triggers: {thumbs_down: true}
  - name: judge-low
    triggers: {judge_score_below: 0.5, judge: groundedness}
  - name: billing-sample
    filters: {product_area: [billing], environment: [prod]}
    sample_rate: 0.05
  - name: model-a-vs-b
    pairwise: {compare: model_version}
"""
V1 = load_schema(LABEL_CONFIGS / "default.v1.yaml")
V2 = load_schema(LABEL_CONFIGS / "default.v2.yaml")


def _check_migration(text: str, origin: str) -> Any:
    migration = parse_migration(text, origin)
    check_migration(migration, V1, V2)
    return migration


def _check_schema(text: str, origin: str) -> AnnotationSchema:
    schema = parse_schema(text, origin)
    config = build_label_config(schema)
    ET.fromstring(config)  # valid XML, whatever the title, rubric or labels hold
    assert version_in_config(config) == schema.version_id
    build_instructions(schema)
    return schema


TARGETS: dict[str, tuple[Callable[[str, str], Any], str]] = {
    "schema": (_check_schema, (LABEL_CONFIGS / "default.v2.yaml").read_text()),
    "migration": (_check_migration,
                  (LABEL_CONFIGS / "migrations" / "default.v1-to-v2.yaml").read_text()),
    "rules": (parse_rules, RULES),
    "mapping": (parse_mapping,
                (ROOT / "src" / "ls_llmtrace" / "data" / "feedback_mapping.yaml").read_text()),
}

text_chars = st.characters(codec="utf-8") | st.sampled_from(
    ["\x00", "\x01", "\x0b", "\x1f", "\x7f", "\ufffe", "\n", "\t", " ", "|", ",", "(", "<"])
scalars = (st.none() | st.booleans() | st.integers(-2**66, 2**66)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(text_chars, max_size=16)
           | st.sampled_from(["fail", " fail ", "fail\n", "pass", "hallucination", "(a+)+$",
                              "(schema evil@v9)", "x (schema evil@v9)", "[", "*", "\ud800",
                              "-.inf", 0, 1, 2, -1, 1e308]))
yaml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(scalars.filter(lambda v: v is None or isinstance(
                               v, str | int | bool)), inner, max_size=3), max_leaves=8)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*at, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base_text: str) -> str:
    doc = copy.deepcopy(yaml.safe_load(base_text))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(yaml_values)
            continue
        parent = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        try:
            if action == "replace":
                parent[path[-1]] = draw(yaml_values)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(yaml_values)
            elif isinstance(parent, list):
                parent.append(draw(yaml_values))
        except (KeyError, IndexError, TypeError):
            continue
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:  # e.g. a lone surrogate: write it as an escape instead
        return yaml.safe_dump(doc, allow_unicode=False)


def files(base: str) -> st.SearchStrategy[str]:
    return st.one_of(mutated(base), mutated(base), mutated(base),
                     st.text(text_chars, max_size=200),
                     st.sampled_from(["{", "a: [", "- - -", ": :", "!!python/object:os.system x",
                                      "a: &x [*x]", "[" * 600, "key: {" * 300]))


def _load(target: str, text: str) -> None:
    load, _base = TARGETS[target]
    origin = f"/tmp/fuzz/{target}.yaml"
    try:
        load(text, origin)
    except ConfigError as exc:
        message = str(exc)
        assert exc.exit_code == 2
        assert "\n" not in message and "\r" not in message, repr(message)
        assert message.startswith(origin), message
        message.encode("utf-8")  # printable as it is: no lone surrogate in it


def _property(target: str) -> Callable[[], None]:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=files(TARGETS[target][1]))
    def run(text: str) -> None:
        _load(target, text)

    return run


test_schema_files = _property("schema")
test_migration_files = _property("migration")
test_rules_files = _property("rules")
test_mapping_files = _property("mapping")


def test_the_base_files_load() -> None:
    for load, text in TARGETS.values():
        load(text, "base.yaml")


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    from ls_llmtrace.records.feedback import load_mapping

    missing = tmp_path / "nope.yaml"
    try:
        load_mapping(missing)
    except ConfigError as exc:
        assert str(missing) in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("a missing mapping file loaded")
