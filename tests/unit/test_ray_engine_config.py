"""The engine file's ``backend: ray`` entries: fields, refusals, and a clear error when
the ``ray`` extra is missing (no cluster is started here)."""

from __future__ import annotations

import sys

import pytest

from primflow.engines.base import EngineKind
from primflow.engines.placement import CoreBudget
from primflow.session import fake_factory
from primflow.session.engine_config import (
    EngineConfigError,
    RayBackend,
    config_factory,
    parse_engine_config,
)
from primflow.session.stack import StackError


def test_a_ray_entry_keeps_its_placement_fields() -> None:
    config = parse_engine_config(
        {
            "engines": {
                "embedder": {
                    "backend": "ray",
                    "num_instances": 2,
                    "num_cpus": 0.5,
                    "resources": {"embed_node": 1},
                    "label_selector": {"role": "embed"},
                    "max_restarts": -1,
                }
            },
            "ray": {"address": "auto"},
        }
    )
    entry = config.engines["embedder"]
    assert isinstance(entry, RayBackend)
    assert (entry.num_instances, entry.num_cpus, entry.max_restarts) == (2, 0.5, -1)
    assert dict(entry.resources) == {"embed_node": 1}
    assert dict(entry.label_selector) == {"role": "embed"}
    assert config.ray is not None and config.ray.address == "auto"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_instances": 0}, "engines.embedder.ray.num_instances"),
        ({"num_cpu": 1}, "engines.embedder.ray.num_cpu"),
        ({"max_restarts": -2}, "engines.embedder.ray.max_restarts"),
    ],
)
def test_bad_ray_fields_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(EngineConfigError) as raised:
        parse_engine_config({"engines": {"embedder": {"backend": "ray", **fields}}}, "f.yaml")
    assert str(raised.value).startswith(f"f.yaml: {message}: ")


def test_a_vector_index_runs_as_one_instance() -> None:
    with pytest.raises(EngineConfigError, match=r"engines\.vector_index\.num_instances"):
        parse_engine_config({"engines": {"vector_index": {"backend": "ray", "num_instances": 2}}})


def test_without_the_ray_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "primflow.engines.ray_actors", None)  # import fails
    config = parse_engine_config({"engines": {"embedder": {"backend": "ray"}}})
    build = config_factory(config, fake_factory(0.0))
    with pytest.raises(StackError, match=r"pip install 'primflow\[ray\]'") as raised:
        build("embedder", EngineKind.EMBEDDER, CoreBudget(1), None)
    assert "'embedder'" in str(raised.value)
