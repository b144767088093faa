"""s2cube on Coiled (https://coiled.io; ``pip install coiled``, ``coiled login`` once).

    export S2CUBE_STORE=s3://bucket/mosaic.zarr
    python cluster/coiled_run.py --workers 20            # CPU workers near the data (us-west-2)
    python cluster/coiled_run.py --workers 4 --gpu       # GPU workers, GPU=1 resource

Workers get s2cube by Coiled's package sync (the local environment, including an editable
s2cube, is replicated on the workers), or pass ``--container ghcr.io/s2cube/s2cube:0.1.0``
(the image of ../Dockerfile; ``-cuda`` for GPU). Credentials: Coiled forwards the local AWS
session (``credentials="local"``) to the workers, scoped and short-lived; nothing is written
into the recipe. Earth Search's imagery is in us-west-2: run there to avoid egress.

Not run here (needs a Coiled account and the network); tests/test_cluster_recipes.py checks
that it compiles and that its keywords are ones ``coiled.Cluster`` accepts when coiled is
installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def cluster_kwargs(*, workers: int, gpu: bool, container: str | None = None) -> dict[str, Any]:
    """Keywords of ``coiled.Cluster`` for an s2cube run."""
    kwargs: dict[str, Any] = {
        "name": "s2cube",
        "n_workers": workers,
        "region": "us-west-2",
        "credentials": "local",
        "worker_memory": "16 GiB",
        "idle_timeout": "30 minutes",
    }
    if gpu:
        kwargs["worker_gpu"] = 1
        kwargs["worker_options"] = {"resources": {"GPU": 1}}
    if container:
        kwargs["container"] = container
    return kwargs


def main() -> None:
    ap = common.arguments(__doc__ or "")
    ap.add_argument("--container", help="a worker image instead of package sync")
    args = ap.parse_args()
    import coiled

    cluster = coiled.Cluster(
        **cluster_kwargs(workers=args.workers, gpu=args.gpu, container=args.container)
    )
    with cluster.get_client() as client:
        common.run(client, args)
    cluster.close()


if __name__ == "__main__":
    main()
