"""The Ray executor: each (configuration, conversation) cell is a Ray task.

Each task is pinned to one node and reserves all of that node's CPUs
(``num_cpus`` = the node's CPU count), so no other task of this or any other Ray
job shares the CPUs of a cell's real-time measurements. Every node runs one cell
at a time; nodes of different sizes each get their own reservation. The task runs
the same :func:`~benchmarks.sweep.cells.run_cell` as the local executor and sends
the bench's files back, so the results are stored and merged on this machine.

The nodes need Parley installed as here (same commit, with its models), and a
``--corpus`` folder at the same path; the built-in corpus is generated on a node
that lacks it. Ctrl-C cancels the running tasks (each stops its bench, which
measures what it played but is not kept) and keeps every cell already returned.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from benchmarks.sweep.cells import CellOutput, CellSpec, run_cell
from benchmarks.sweep.local import OnOutput, sigterm_interrupts

__all__ = ["LOOPBACK_ONLY", "RayError", "check_address", "cluster_nodes", "run_ray"]

log = logging.getLogger("parley.bench.sweep")
CANCEL_GRACE_S = 90.0


class RayError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or it has no usable node."""


def _ray_cell(spec_json: str) -> CellOutput:
    """The body of a Ray task: one cell on whichever node it was placed on."""
    import ray

    output = run_cell(CellSpec.model_validate_json(spec_json))
    context: Any = ray.get_runtime_context()
    output.resources = dict(context.get_assigned_resources())
    return output


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast, with a RayError naming the problem, when ``--ray address`` cannot work.

    Ray must be installed, and a ``HOST:PORT`` must accept connections (Ray itself
    retries an unreachable address for minutes).
    """
    if importlib.util.find_spec("ray") is None:
        raise RayError(
            "--ray needs Ray: pip install -e '.[sweep]' (scripts/setup.sh --dev installs it)"
        )
    if address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RayError(f"--ray {address}: expected auto, local or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayError(f"--ray {address}: no Ray cluster answers there ({exc})") from None


LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Makes a Ray started here use 127.0.0.1 (read when ray is first imported)."""


def _connect(address: str) -> Any:
    check_address(address)
    if address == "local":  # a one-node cluster for this sweep alone: keep it on loopback
        for key, value in LOOPBACK_ONLY.items():
            os.environ.setdefault(key, value)
    import ray

    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == "local":
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayError(f"--ray {address}: cannot connect to a Ray cluster: {exc}") from None
    return ray


def cluster_nodes(ray: Any) -> dict[str, int]:
    """Alive nodes with at least one CPU: node id to its CPU count."""
    return {
        node["NodeID"]: int(node["Resources"]["CPU"])
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= 1
    }


def run_ray(specs: Sequence[CellSpec], on_output: OnOutput, address: str) -> bool:
    """Run the cells on a Ray cluster, one per node at a time; False if interrupted.

    ``address`` is ``auto`` (the cluster this machine belongs to), ``local`` (a
    one-node cluster started for this sweep) or a cluster address ``HOST:PORT``.
    """
    ray = _connect(address)
    try:
        with sigterm_interrupts():  # after ray.init, which installs a SIGTERM handler that aborts
            return _schedule(ray, list(specs), on_output)
    finally:
        ray.shutdown()


def _schedule(ray: Any, queue: list[CellSpec], on_output: OnOutput) -> bool:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = cluster_nodes(ray)
    if not nodes:
        raise RayError("the Ray cluster has no alive node with a CPU")
    log.info("Ray nodes: %s", nodes)
    task = ray.remote(_ray_cell)
    idle = list(nodes)
    running: dict[Any, tuple[CellSpec, str]] = {}
    try:
        while queue or running:
            while queue and idle:
                node = idle.pop(0)
                spec = queue.pop(0)
                ref = task.options(
                    num_cpus=nodes[node],
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                ).remote(spec.model_dump_json())
                running[ref] = (spec, node)
            if not running:
                raise RayError("every Ray node failed; the cells left were not run")
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                spec, node = running.pop(ref)
                _collect(ray, ref, spec, on_output)
                if node in cluster_nodes(ray):
                    idle.append(node)
    except KeyboardInterrupt:
        _cancel(ray, running, on_output)
        return False
    return True


def _collect(ray: Any, ref: Any, spec: CellSpec, on_output: OnOutput) -> None:
    from ray.exceptions import RayError as RayFailure

    try:
        output = ray.get(ref)
    except RayFailure as exc:
        log.warning("cell %s failed on Ray: %s", spec.cell_id, exc)
        text = f"the Ray task failed: {exc}\n".encode()
        output = CellOutput(exit_code=-1, files={"bench.log": text})
    on_output(spec, output)


def _cancel(ray: Any, running: dict[Any, tuple[CellSpec, str]], on_output: OnOutput) -> None:
    """Cancel the running tasks; keep those that had already finished."""
    from ray.exceptions import RayError as RayFailure

    if not running:
        return
    for ref in running:
        ray.cancel(ref)
    done, _ = ray.wait(list(running), num_returns=len(running), timeout=CANCEL_GRACE_S)
    for ref in done:
        try:
            output = ray.get(ref)
        except (RayFailure, KeyboardInterrupt):
            continue
        if output.finished and output.exit_code not in (130, 143):
            on_output(running[ref][0], output)
