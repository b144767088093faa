"""The cluster recipes in cluster/ and the Dockerfiles: what can be checked offline, checked.

* SLURM: dask-jobqueue renders the real job scripts (``cluster.job_script()``), bash parses them.
* Kubernetes: the DaskCluster / DaskWorkerGroup manifests validate against the dask-kubernetes
  operator's CRD schemas (vendored, tests/schemas/dask-kubernetes), unknown fields refused as the
  API server's strict field validation does; the Helm values use only the dask chart's keys.
* dask-gateway: the recipe's functions run against a real dask-gateway server (local backend)
  on 127.0.0.1: options set, credentials forwarded, workers import s2cube.
* Coiled: the recipe's keywords are ``coiled.Cluster``'s (when coiled is installed).
* Dockerfiles: hadolint, and what they COPY / install exists in this repository. Not built here
  when no docker daemon answers (then that test is skipped with the reason).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def load_recipe(name: str) -> ModuleType:
    sys.path.insert(0, str(CLUSTER))
    try:
        spec = importlib.util.spec_from_file_location(f"s2cube_recipe_{name}", CLUSTER / name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(CLUSTER))


# --------------------------------------------------------------------------- every recipe
@pytest.mark.parametrize("name", ["slurm.py", "coiled_run.py", "gateway_run.py", "examples.py"])
def test_recipe_scripts_run_their_help(name: str) -> None:
    res = subprocess.run(
        [sys.executable, str(CLUSTER / name), "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "--store" in res.stdout


# --------------------------------------------------------------------------- SLURM
def test_slurm_job_scripts_render() -> None:
    pytest.importorskip("dask_jobqueue")
    slurm = load_recipe("slurm.py")
    scripts = {}
    for gpu in (False, True):
        cluster = slurm.make_cluster(account="proj42", queue="gpu" if gpu else "cpu", gpu=gpu,
                                     dashboard_address=":0")  # fmt: skip
        try:
            scripts[gpu] = cluster.job_script()
        finally:
            cluster.close()
    for gpu, script in scripts.items():
        lines = script.splitlines()
        assert lines[0] == "#!/usr/bin/env bash"
        directives = [x for x in lines if x.startswith("#SBATCH")]
        assert "#SBATCH -A proj42" in directives
        assert "#SBATCH -t 04:00:00" in directives
        assert f"#SBATCH -p {'gpu' if gpu else 'cpu'}" in directives
        worker = next(i for i, x in enumerate(lines) if " worker " in x or "dask_worker" in x)
        activate = next(i for i, x in enumerate(lines) if "activate $HOME/envs/s2cube" in x)
        assert activate < worker  # the environment with s2cube first, then the worker
        cmd = lines[worker]
        assert cmd.startswith("python -m "), cmd  # the activated env's python
        assert "--local-directory $TMPDIR" in cmd
        check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    cpu, gpu_script = scripts[False], scripts[True]
    assert "#SBATCH --cpus-per-task=4" in cpu and "--nworkers 2" in cpu
    assert "--gres" not in cpu and "GPU=1" not in cpu
    assert "#SBATCH --gres=gpu:1" in gpu_script
    assert "python -m dask cuda worker" in gpu_script
    assert "--resources GPU=1" in gpu_script


# --------------------------------------------------------------------------- Kubernetes
def crd_schema(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / "dask-kubernetes" / f"{name}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def unknown_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare (the API server drops or, strictly, refuses them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(doc, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if props is not None and key in props:
                out += unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += unknown_fields(value, extra, f"{path}.{key}")
            elif props is not None or extra is False:
                out.append(f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(doc):
            out += unknown_fields(value, schema["items"], f"{path}[{i}]")
    return out


def check_manifest(doc: dict[str, Any], crd: str) -> list[str]:
    import jsonschema

    schema = crd_schema(crd)
    errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    return errors + [f"unknown field {f}" for f in unknown_fields(body, schema)]


MANIFESTS = {
    "daskcluster.yaml": ("daskcluster", "DaskCluster"),
    "daskworkergroup-gpu.yaml": ("daskworkergroup", "DaskWorkerGroup"),
}


def load_manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "kubernetes" / name).read_text())


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_kubernetes_manifests_match_the_operator_crds(name: str) -> None:
    crd, kind = MANIFESTS[name]
    doc = load_manifest(name)
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == kind
    assert check_manifest(doc, crd) == []
    # the check refuses a typo and a wrong type: it can fail
    bad = copy.deepcopy(doc)
    bad["spec"]["worker"]["replica"] = bad["spec"]["worker"].pop("replicas")
    assert check_manifest(bad, crd) == ["unknown field .spec.worker.replica"]
    bad = copy.deepcopy(doc)
    bad["spec"]["worker"]["replicas"] = "four"
    assert any("is not of type 'integer'" in e for e in check_manifest(bad, crd))
    # every container: s2cube's image, credentials only from a Secret
    containers = doc["spec"]["worker"]["spec"]["containers"]
    if kind == "DaskCluster":
        containers = containers + doc["spec"]["scheduler"]["spec"]["containers"]
    for c in containers:
        assert c["image"].startswith("ghcr.io/s2cube/s2cube:")
        for env in c.get("env", []):
            if env["name"].startswith("AWS_") and env["name"] != "AWS_DEFAULT_REGION":
                assert "value" not in env and "secretKeyRef" in env["valueFrom"]


def test_gpu_worker_group_asks_for_a_gpu_and_advertises_it() -> None:
    doc = load_manifest("daskworkergroup-gpu.yaml")
    assert doc["spec"]["cluster"] == load_manifest("daskcluster.yaml")["metadata"]["name"]
    (c,) = doc["spec"]["worker"]["spec"]["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"  # CRD: quantities are strings
    assert c["args"][:3] == ["dask", "cuda", "worker"]
    assert "--resources" in c["args"] and c["args"][c["args"].index("--resources") + 1] == "GPU=1"
    assert c["image"].endswith("-cuda")


def helm_unknown_keys(values: dict[str, Any], known: dict[str, Any]) -> list[str]:
    keys, free = set(known["keys"]) | set(known["template_only"]), set(known["free_form"])
    out = []

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            path = f"{prefix}.{k}" if prefix else k
            if path not in keys:
                out.append(path)
            elif isinstance(v, dict) and path not in free:
                walk(v, path)

    walk(values, "")
    for group in values.get("additional_worker_groups", []):
        # each group takes the worker's options (the chart's additional-worker template)
        walk({"worker": {k: v for k, v in group.items() if k != "name"}}, "")
    return out


def test_helm_values_use_only_the_chart_keys() -> None:
    known = json.loads((SCHEMAS / "dask-helm-chart" / "keys.json").read_text())
    values = yaml.safe_load((CLUSTER / "kubernetes" / "helm-values.yaml").read_text())
    assert helm_unknown_keys(values, known) == []
    typo = copy.deepcopy(values)
    typo["worker"]["replica"] = 4
    typo["additional_worker_groups"][0]["extra_args"] = []
    assert helm_unknown_keys(typo, known) == ["worker.replica", "worker.extra_args"]
    (gpu,) = values["additional_worker_groups"]
    assert gpu["extraArgs"] == ["--resources", "GPU=1"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"]["dask_worker"] == "dask-cuda-worker"


# --------------------------------------------------------------------------- dask-gateway
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway_address(tmp_path: Path) -> Iterator[str]:
    """A real dask-gateway server (UnsafeLocalBackend: clusters are local processes)."""
    pytest.importorskip("dask_gateway_server")
    pytest.importorskip("sqlalchemy", reason="dask-gateway-server's local backend needs it")
    pytest.importorskip("dask_gateway")
    api, proxy = _free_port(), _free_port()
    config = tmp_path / "gateway_config.py"
    config.write_text(
        f"""
import sys
from dask_gateway_server.options import Mapping, Options, String

c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{proxy}"
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]


def handler(options):
    return {{"environment": {{**options.environment, "S2CUBE_IMAGE": options.image}},
            "worker_cores": 1, "worker_memory": "1 G"}}


c.Backend.cluster_options = Options(
    String("image", default="ghcr.io/dask/dask"), Mapping("environment", default={{}}),
    handler=handler,
)
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = [sys.executable, "-m", "dask_gateway_server", "-f", str(config)]
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(server, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "dask-gateway-server did not start"
            try:  # the proxy routes the API once the gateway has registered with it
                with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/api/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{proxy}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


GATEWAY_CLIENT = """
import json, os, sys
sys.path.insert(0, sys.argv[2])
import gateway_run
from dask_gateway import Gateway

gateway = Gateway(sys.argv[1])
cluster = gateway_run.start_cluster(gateway, workers=2, image="ghcr.io/s2cube/s2cube:0.1.0")
try:
    with cluster.get_client() as client:
        client.wait_for_workers(2, timeout=60)

        def facts():
            import s2cube
            return [os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("S2CUBE_IMAGE"),
                    s2cube.__name__]

        print(json.dumps(list(client.run(facts).values())))
finally:
    cluster.shutdown()
"""


def test_gateway_recipe_on_a_real_gateway_server(gateway_address: str, tmp_path: Path) -> None:
    # the client side runs in its own process: dask-gateway's Gateway.__del__ raises on a
    # stopped event loop at garbage collection, which must not land in this test process
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "forwarded-key", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(
        [sys.executable, "-c", GATEWAY_CLIENT, gateway_address, str(CLUSTER)],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    # both workers: the credential of the submitting shell (the server never had it), the
    # image option, and s2cube importable
    assert seen == [["forwarded-key", "ghcr.io/s2cube/s2cube:0.1.0", "s2cube"]] * 2

    class NoImage:
        def cluster_options(self) -> dict[str, Any]:
            return {}

    with pytest.raises(SystemExit, match="no 'image' option"):
        load_recipe("gateway_run.py").start_cluster(NoImage(), workers=1, image="x")


# --------------------------------------------------------------------------- Coiled
def test_coiled_recipe_keywords() -> None:
    coiled_run = load_recipe("coiled_run.py")
    cpu = coiled_run.cluster_kwargs(workers=20, gpu=False)
    gpu = coiled_run.cluster_kwargs(workers=4, gpu=True, container="ghcr.io/s2cube/s2cube:x")
    assert cpu["credentials"] == "local" and "worker_gpu" not in cpu
    assert gpu["worker_gpu"] == 1 and gpu["worker_options"] == {"resources": {"GPU": 1}}
    coiled = pytest.importorskip("coiled", reason="coiled is not installed: keywords unchecked")
    import inspect

    accepted = set(inspect.signature(coiled.Cluster).parameters)
    assert set(gpu) <= accepted, set(gpu) - accepted


# --------------------------------------------------------------------------- Dockerfiles
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_lints_and_matches_the_repository(name: str) -> None:
    DockerfileParser = pytest.importorskip("dockerfile_parse").DockerfileParser
    text = (REPO / name).read_text()
    hadolint = shutil.which("hadolint")
    if hadolint:
        res = subprocess.run([hadolint, str(REPO / name)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    assert instructions[0]["instruction"] == "FROM"
    assert ":" in parser.baseimage and not parser.baseimage.endswith(":latest")
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for ins in instructions:
        if ins["instruction"] == "COPY":
            *sources, _ = ins["value"].split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is docker-ignored"
        if ins["instruction"] == "USER":
            assert ins["value"].isdigit() and ins["value"] != "0"  # not root
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    (wanted,) = re.findall(r'pip install --no-cache-dir "\.\[([a-z0-9,]+)\]"', text)
    assert set(wanted.split(",")) <= extras
    assert ("gpu" in wanted.split(",")) == name.endswith(".cuda")
    (torch_pin,) = [d for d in project["optional-dependencies"]["ml"] if d.startswith("torch")]
    assert torch_pin in text  # the same torch as the ml extra, from PyTorch's index
    index = "whl/cu" if name.endswith(".cuda") else "whl/cpu"
    assert f"download.pytorch.org/{index}" in text


def test_dockerfile_builds() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: the images are not built here")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        pytest.skip(f"no docker daemon answers ({info.stderr.strip()[-200:]})")
    res = subprocess.run(
        [docker, "build", "-t", "s2cube-test:cpu", str(REPO)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = subprocess.run(
        [docker, "run", "--rm", "s2cube-test:cpu", "s2cube", "--version"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "s2cube" in run.stdout
