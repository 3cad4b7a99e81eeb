"""The cluster recipes in examples/cluster: the Ray cluster-launcher YAML passes Ray's own config
schema, the KubeRay RayJob has the shape the operator reads, both give each worker one GPU, and the
sdbench command each runs is a valid invocation (parsed by the CLI's click command, not run).
They cannot be launched here (no cloud account, no Kubernetes, no GPU)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import typer
import yaml

from sdbench import registry
from sdbench.cli import app
from sdbench.errors import UserError

CLUSTER = Path(__file__).resolve().parents[1] / "examples" / "cluster"


def parse_sdbench(command: str) -> tuple[str, dict]:
    """The subcommand and parsed parameters of an ``sdbench ...`` command line, through the real
    click command's ``make_context`` (parsing and type conversion, no execution)."""
    argv = shlex.split(command)
    starts = [i for i, a in enumerate(argv) if Path(a).name == "sdbench"]
    assert starts, f"no sdbench executable in {command!r}"
    args = argv[starts[0] + 1 :]
    group = typer.main.get_command(app)
    name, rest = args[0], args[1:]
    sub = group.get_command(None, name)
    assert sub is not None, f"unknown sdbench command {name!r}"
    ctx = sub.make_context(name, list(rest))  # raises click's UsageError on an unknown option or a bad value
    return name, ctx.params


def _check_sweep(params: dict) -> None:
    """What `sdbench sweep` would check first: the losses exist, the steps are positive, and the
    output is on the shared path every node mounts."""
    for loss in ",".join(params["loss"]).split(","):
        registry.LOSSES.get(loss)  # UserError on an unknown name
    assert params["address"] == "auto"
    assert params["steps"] > 0 and params["workers"] >= 1
    assert str(params["out"]).startswith("/shared/")


def test_parse_sdbench_rejects_a_bad_invocation():
    """The validator can fail: an unknown option, a bad integer, a missing argument."""
    from sdbench.cli import _click_exceptions

    for bad in ("sdbench sweep prompts.txt --loss vdm --adress auto", "sdbench sweep p.txt --steps many", "sdbench sweep"):
        with pytest.raises(_click_exceptions("UsageError")):
            parse_sdbench(bad)
    name, params = parse_sdbench("sdbench sweep p.txt --loss nope --address auto --workers 1 --steps 5 --out /shared/x")
    with pytest.raises(UserError, match="unknown loss"):
        _check_sweep(params)


def test_ray_cluster_launcher_yaml():
    from ray.autoscaler._private.util import prepare_config, validate_config

    text = (CLUSTER / "ray-cluster.yaml").read_text()
    config = yaml.safe_load(text)
    validate_config(prepare_config(config))  # Ray's own schema (ray-schema.json), with the AWS defaults filled in
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert workers and all(v["resources"]["GPU"] == 1 for v in workers.values())
    assert config["available_node_types"][config["head_node_type"]]["resources"]["CPU"] == 0  # no trials on the head
    # the README's install on every node, and Ray started from that venv (the pinned Ray)
    assert any(
        re.search(r"make install|python3 -m venv \.venv && \.venv/bin/pip install -e \.", c) for c in config["setup_commands"]
    )
    for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert re.search(r"(^|[;&] *)~/sdbench/\.venv/bin/ray (start|stop)", c), c
    # the command it runs: one `# sdbench:` line
    commands = re.findall(r"^# sdbench: (.+)$", text, flags=re.M)
    assert len(commands) == 1
    name, params = parse_sdbench(commands[0])
    assert name == "sweep" and params["prompts_file"] == Path("prompts.txt") and params["loss"] == ["vdm"]
    _check_sweep(params)
    assert params["workers"] == sum(v["max_workers"] for v in workers.values())  # one trial per GPU


def test_kuberay_rayjob_manifest():
    import ray

    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__  # the pinned Ray
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert [c["name"] for c in head["template"]["spec"]["containers"]] == ["ray-head"]
    gpus = 0
    for group in cluster["workerGroupSpecs"]:
        assert {"groupName", "replicas", "rayStartParams", "template"} <= set(group)
        (container,) = group["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # one GPU per worker
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/shared" in mounts
        gpus += group["replicas"]
    name, params = parse_sdbench(spec["entrypoint"])
    assert name == "sweep" and params["prompts_file"].name == "prompts.txt" and params["loss"] == ["vdm"]
    _check_sweep(params)
    assert params["workers"] == gpus
    assert spec["shutdownAfterJobFinishes"] is True


def test_the_image_pins_rays_and_pythons_versions():
    import ray

    dockerfile = (CLUSTER / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert base == f"rayproject/ray:{ray.__version__}-py{sys.version_info.major}{sys.version_info.minor}-gpu"
    assert "pip install --no-cache-dir -e ." in dockerfile
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    prompts = parse_sdbench(job["spec"]["entrypoint"])[1]["prompts_file"]
    assert prompts == Path("/home/ray/sdbench/prompts.txt") and "/home/ray/sdbench" in dockerfile
    assert (CLUSTER.parents[1] / "prompts.txt").is_file()
