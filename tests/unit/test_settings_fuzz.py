"""Every configuration field, nested collector fields and probes included, fuzzed with bad values.

Each bad value must give a ConfigError whose problems name exactly that field's path
(``collectors.statements.top_n``, ``probes.0.timeout``), never another exception.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from dbpulse.settings import (
    CollectorsSettings,
    ConfigError,
    ProbeSettings,
    Settings,
    load_settings,
)

BASE_PROBE = {"name": "p", "sql": "SELECT 1 AS n"}


def _leaves(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_leaves(ann, f"{prefix}{name}."))
        elif name != "probes":
            out.append((f"{prefix}{name}", info))
    return out


FIELDS = _leaves(Settings, "") + _leaves(ProbeSettings, "probes.0.")


def test_field_list_covers_nested_collectors_and_probes() -> None:
    """The fuzzer reaches every leaf: top-level fields, every collector field and every probe field."""
    paths = {p for p, _ in FIELDS}
    assert "collectors.statements.top_n" in paths
    assert "collectors.migrations.seq_scan_min_rows" in paths
    assert "probes.0.max_rows" in paths
    assert len([p for p in paths if p.startswith("collectors.")]) >= 6 * 4 + 3 + 4
    assert len([p for p in paths if p.startswith("probes.0.")]) == len(ProbeSettings.model_fields)


def _base_type(info: FieldInfo) -> Any:
    ann = info.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, type(int | None)) and len(args) == 1:
        return args[0]
    return ann


def _wrong_types(info: FieldInfo) -> st.SearchStrategy[Any]:
    """Values of a type the field can never accept (no lax coercion applies)."""
    base = _base_type(info)
    containers = st.one_of(
        st.lists(st.integers(), min_size=1, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), min_size=1, max_size=2),
    )
    if base in (int, float):
        junk = st.text(min_size=1, max_size=10).filter(lambda s: not _numeric(s))
        return st.one_of(containers, junk)
    if base is bool:
        return st.one_of(containers, st.sampled_from(["maybe", "2", "yess"]), st.just(2.5))
    if base in (str, SecretStr, Path):
        return containers
    if typing.get_origin(base) is typing.Literal:
        return st.one_of(containers, st.sampled_from(["verbose", "xml", "DEBUG!", ""]))
    if typing.get_origin(base) is list:
        return st.one_of(st.integers(), st.dictionaries(st.just("k"), st.integers(), min_size=1))
    if typing.get_origin(base) is dict:
        return st.one_of(st.integers(), st.lists(st.integers(), min_size=1, max_size=3))
    raise AssertionError(f"no wrong-type strategy for {base!r}")


def _numeric(text: str) -> bool:
    try:
        float(text.strip().replace("_", ""))
    except ValueError:
        return False
    return True


def _num(bound: object) -> float:
    # annotated_types types bounds as comparable protocols; ours are always numbers.
    assert isinstance(bound, int | float)
    return float(bound)


def _out_of_range(info: FieldInfo) -> list[float]:
    bad: list[float] = []
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Gt):
            bad += [_num(meta.gt), _num(meta.gt) - 1]
        if isinstance(meta, annotated_types.Ge):
            bad.append(_num(meta.ge) - 1)
        if isinstance(meta, annotated_types.Le):
            bad.append(_num(meta.le) * 2 + 1)
    return bad


COLLECTORS = list(CollectorsSettings.model_fields)
RANGED = [(p, info, v) for p, info in FIELDS for v in _out_of_range(info)]


def _document(path: str, bad: Any) -> dict[str, Any]:
    """A config dict that is valid except for ``bad`` at ``path``."""
    parts = path.split(".")
    if parts[0] == "probes":
        probe = dict(BASE_PROBE)
        probe[parts[2]] = bad
        return {"probes": [probe]}
    doc: dict[str, Any] = {}
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = bad
    return doc


def _load(doc: Any) -> ConfigError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
    return info.value


def _int_field(info: FieldInfo) -> bool:
    return _base_type(info) is int


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_wrong_types_name_their_field(data: st.DataObject) -> None:
    """A value of the wrong type anywhere is a ConfigError naming exactly that field."""
    path, info = data.draw(st.sampled_from(FIELDS))
    bad = data.draw(_wrong_types(info))
    err = _load(_document(path, bad))
    paths = [p for p, _ in err.problems]
    assert paths, err
    assert all(p == path or p.startswith(path + ".") for p in paths), (path, bad, paths)
    assert all(msg for _, msg in err.problems)


@pytest.mark.parametrize(("path", "info", "bad"), RANGED, ids=[f"{p}={v}" for p, _, v in RANGED])
def test_out_of_range_values_name_their_field(path: str, info: FieldInfo, bad: float) -> None:
    """Each bound (gt/ge/le) violated is a ConfigError naming the field and the bound."""
    value: float | int = int(bad) if _int_field(info) else bad
    err = _load(_document(path, value))
    assert [p for p, _ in err.problems] == [path]
    assert any(word in err.problems[0][1] for word in ("greater", "less")), err.problems


@settings(max_examples=100, deadline=None)
@given(
    where=st.sampled_from(
        ["", "collectors.", *[f"collectors.{c}." for c in COLLECTORS], "probes.0."]
    ),
    key=st.from_regex(r"\A[a-z][a-z_]{0,15}\Z"),
)
def test_unknown_keys_at_every_level(where: str, key: str) -> None:
    """An unknown key at the top, in collectors, in any collector or in a probe is 'unknown setting' at its path."""
    known = {p.rsplit(".", 1)[-1] for p, _ in FIELDS if p.startswith(where)} | {"collectors"}
    if key in known or (where == "" and key in {"probes", *Settings.model_fields}):
        return
    err = _load(_document(where + key, 1))
    assert err.problems == [(where + key, "unknown setting")]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"collectors": 5}, "collectors"),
        ({"collectors": {"locks": "on"}}, "collectors.locks"),
        ({"probes": {"name": "p"}}, "probes"),
        ({"probes": [BASE_PROBE, BASE_PROBE]}, "probes"),
        ({"probes": [{"sql": "SELECT 1"}]}, "probes.0.name"),
        ({"probes": [{**BASE_PROBE, "labels": ["__x"]}]}, "probes.0.labels"),
    ],
)
def test_wrong_shapes_name_their_field(doc: dict[str, Any], path: str) -> None:
    """A section of the wrong shape, a duplicate or a missing probe field is reported at its path."""
    err = _load(doc)
    assert path in [p for p, _ in err.problems], err.problems


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "collectors:\n  statements:\n    top_n: lots\n    timeout: -1\n",
            [
                "collectors.statements.top_n: Input should be a valid integer",
                "collectors.statements.timeout: Input should be greater than 0",
            ],
        ),
        (
            "probes:\n- name: q\n  sql: SELECT 1\n  max_rows: 0\n  colour: red\n",
            ["probes.0.max_rows: Input should be greater than or equal to 1", "probes.0.colour"],
        ),
        ("interval: [1\n", ["expected ',' or ']'"]),
    ],
)
def test_check_config_cli_exits_2_with_field_paths(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    """`dbpulse check-config` on a bad file: exit code 2, one line per problem with its path, no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dbpulse", "check-config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert all(line.startswith("dbpulse: config error: ") for line in result.stderr.splitlines())
