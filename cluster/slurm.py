"""s2cube on a SLURM cluster with dask-jobqueue (``pip install dask-jobqueue``).

Run it on the login node (the driver and the scheduler live there; each SLURM job is one
worker):

    export S2CUBE_STORE=s3://bucket/mosaic.zarr AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
    python cluster/slurm.py --workers 8 --account PROJECT            # CPU jobs
    python cluster/slurm.py --workers 2 --account PROJECT --gpu      # GPU jobs (--gres=gpu:1)
    python cluster/slurm.py --print-job-script --account PROJECT     # what sbatch gets

Workers get s2cube from a conda environment made once on the shared file system
(``conda env create -p $HOME/envs/s2cube -f environment.yml``; with ``--gpu`` add
``pip install 's2cube[gpu]'`` and CUDA torch), activated by ``job_script_prologue``. Workers
inherit the AWS_* variables of the submitting shell (SLURM's default ``--export=ALL``). A
store on a shared file system (Lustre/GPFS) also works: give an absolute path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def make_cluster(
    *,
    account: str | None = None,
    queue: str | None = None,
    gpu: bool = False,
    env_prefix: str = "$HOME/envs/s2cube",
    walltime: str = "04:00:00",
    dashboard_address: str = ":8787",
) -> Any:
    """A ``SLURMCluster``: one job = one worker (4 cores, 2 threads × 2 processes for CPU;
    one GPU, ``GPU=1`` resource and ``dask cuda worker`` for GPU)."""
    from dask_jobqueue import SLURMCluster

    prologue = [f"source activate {env_prefix} || conda activate {env_prefix}"]
    common_kwargs: dict[str, Any] = {
        "account": account,
        "queue": queue,
        "walltime": walltime,
        "job_script_prologue": prologue,
        "local_directory": "$TMPDIR",  # node-local scratch for spilling, not the shared FS
        "log_directory": "dask-logs",
        "scheduler_options": {"dashboard_address": dashboard_address},
        "python": "python",  # the activated environment's, not this login node's interpreter
    }
    if gpu:
        return SLURMCluster(
            cores=8,
            processes=1,
            memory="64GB",
            job_extra_directives=["--gres=gpu:1"],
            worker_command="dask cuda worker",  # dask-cuda: pins the worker to its GPU
            worker_extra_args=["--resources", "GPU=1"],
            **common_kwargs,
        )
    return SLURMCluster(
        cores=4,
        processes=2,
        memory="16GB",
        **common_kwargs,
    )


def main() -> None:
    ap = common.arguments(__doc__ or "")
    ap.add_argument("--account", default=os.environ.get("SLURM_ACCOUNT"))
    ap.add_argument("--queue", help="SLURM partition")
    ap.add_argument("--print-job-script", action="store_true")
    args = ap.parse_args()
    cluster = make_cluster(account=args.account, queue=args.queue, gpu=args.gpu)
    if args.print_job_script:
        print(cluster.job_script())
        return
    from distributed import Client

    cluster.scale(jobs=args.workers)
    with Client(cluster) as client:
        client.wait_for_workers(1, timeout="30 min")  # the queue decides when jobs start
        common.run(client, args)
    cluster.close()


if __name__ == "__main__":
    main()
