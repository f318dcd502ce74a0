"""A real local multi-node Ray cluster for the ``ray`` tier, shared by its tests.

Three nodes on the loopback, each with few CPUs and its own custom resource, so a test
can place an engine on a chosen node: the head (``head_node``, 1 CPU), ``llm_node``
(1 CPU) and ``embed_node`` (2 CPUs); the two workers also carry a node label
(``role: llm``, ``role: embed``) for placement by ``label_selector``. The driver
connects once; the cluster is always shut down at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Bind every Ray address to the loopback: Ray otherwise resolves 127.0.0.1 to the
# machine's outward address, and the tests talk only to this machine.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

LOOPBACK = "127.0.0.1"
NODES = {
    "head_node": {"num_cpus": 1},
    "llm_node": {"num_cpus": 1},
    "embed_node": {"num_cpus": 2},
}


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, str]]:
    """The running cluster: node resource name -> Ray node id."""
    node_args = {"node_ip_address": LOOPBACK, "object_store_memory": 80 * 1024 * 1024}
    head_args = {**node_args, **NODES["head_node"], "resources": {"head_node": 4}}
    local = Cluster(initialize_head=True, head_node_args={**head_args, "include_dashboard": False})
    try:
        for name in ("llm_node", "embed_node"):
            labels = {"role": name.removesuffix("_node")}  # for label_selector placement
            local.add_node(**node_args, **NODES[name], resources={name: 4}, labels=labels)
        local.wait_for_nodes()
        ray.init(
            address=local.address,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address=LOOPBACK,
        )
        ids = {}
        for node in ray.nodes():
            for name in NODES:
                if name in node["Resources"]:
                    ids[name] = node["NodeID"]
        yield ids
    finally:
        ray.shutdown()
        local.shutdown()
