"""The dask/xarray engine against the numpy single pass (the oracle)."""

from __future__ import annotations

import sys

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2cube.errors import InputError
from s2cube.models import predict
from s2cube.models.engine import ModelRef, get_module

torch = pytest.importorskip("torch")
xr = pytest.importorskip("xarray")

SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _chunks(draw: st.DrawFn, n: int) -> tuple[int, ...]:
    sizes = []
    left = n
    while left:
        s = draw(st.integers(1, left))
        sizes.append(s)
        left -= s
    return tuple(sizes)


@st.composite
def cases(draw: st.DrawFn):
    t = draw(st.integers(1, 2))
    h, w = draw(st.integers(4, 60)), draw(st.integers(4, 60))
    window = draw(st.sampled_from([8, 16, 24]))
    overlap = draw(st.integers(0, window // 2))
    chunks = (draw(st.sampled_from([1, t])), 3, _chunks(draw, h), _chunks(draw, w))
    seed = draw(st.integers(0, 2**16))
    return t, h, w, window, overlap, chunks, seed


@SETTINGS
@given(case=cases(), batch_size=st.integers(1, 5))
def test_dask_equals_numpy_for_any_chunking(small_net, case, batch_size) -> None:
    t, h, w, window, overlap, chunks, seed = case
    x = np.random.default_rng(seed).random((t, 3, h, w), dtype=np.float32)
    ref = predict(small_net, x, window=window, overlap=overlap, batch_size=batch_size)
    out = predict(
        small_net,
        da.from_array(x, chunks=chunks),
        window=window,
        overlap=overlap,
        batch_size=batch_size,
    )
    assert out.chunks[2:] == chunks[2:]
    np.testing.assert_allclose(out.compute(scheduler="sync"), ref, atol=2e-6)


@SETTINGS
@given(case=cases())
def test_small_halo_stays_close_to_numpy(small_net, case) -> None:
    """With a halo smaller than the window the result is approximate: bounded difference."""
    t, h, w, window, overlap, chunks, seed = case
    x = np.random.default_rng(seed).random((t, 3, h, w), dtype=np.float32)
    ref = predict(small_net, x, window=window, overlap=overlap)
    out = predict(
        small_net, da.from_array(x, chunks=chunks), window=window, overlap=overlap, halo=window // 2
    ).compute(scheduler="sync")
    assert np.abs(out - ref).max() < 0.2
    assert np.isclose(out.sum(axis=1), 1, atol=1e-5).all()


def test_three_dims_and_window_sizes(small_net) -> None:
    x = np.random.default_rng(0).random((3, 64, 48), dtype=np.float32)
    a = predict(small_net, x, window=16, overlap=4)
    b = predict(small_net, da.from_array(x, chunks=(3, 20, 30)), window=16, overlap=4)
    assert a.shape == (2, 64, 48) and b.shape == (2, 64, 48)
    np.testing.assert_allclose(b.compute(), a, atol=2e-6)
    # a different window changes only the context near window edges
    c = predict(small_net, x, window=32, overlap=8)
    assert (a.argmax(0) == c.argmax(0)).mean() > 0.8


def test_xarray_keeps_dims_and_coords(small_net) -> None:
    x = np.random.default_rng(0).random((2, 3, 20, 24), dtype=np.float32)
    arr = xr.DataArray(
        da.from_array(x, chunks=(1, 3, 10, 12)),
        dims=("time", "band", "y", "x"),
        coords={
            "time": [1, 2],
            "band": ["a", "b", "c"],
            "y": np.arange(20.0),
            "x": np.arange(24.0),
        },
        attrs={"crs": "EPSG:32633"},
    )
    out = predict(small_net, arr, window=8, overlap=2)
    assert out.dims == ("time", "channel", "y", "x")
    assert out.chunks is not None and list(out.channel.values) == [0, 1]
    assert (out.y.values == arr.y.values).all() and out.attrs["crs"] == "EPSG:32633"
    np.testing.assert_allclose(out.values, predict(small_net, x, window=8, overlap=2), atol=2e-6)


def test_bf16_and_fp16_stay_close_to_fp32(small_net) -> None:
    x = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    ref = predict(small_net, x, window=16, overlap=4)
    for precision in ("bf16", "fp16"):
        out = predict(small_net, x, window=16, overlap=4, precision=precision)
        assert out.dtype == np.float32
        assert np.abs(out - ref).max() < 0.05


def test_distributed_workers_load_the_model_once(small_net) -> None:
    from distributed import Client, LocalCluster

    from s2cube.models import register_model

    x = np.random.default_rng(5).random((1, 3, 40, 40), dtype=np.float32)
    ref = predict(small_net, x, window=16, overlap=4)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        token = register_model(client, small_net).token
        out = predict(
            small_net, da.from_array(x, chunks=(1, 3, 13, 17)), window=16, overlap=4
        ).compute()
    np.testing.assert_allclose(out, ref, atol=2e-6)
    cached = [
        k for k in __import__("s2cube.models.runtime", fromlist=["_CACHE"])._CACHE if k[0] == token
    ]
    assert cached == [(token, "cpu")]


def test_worker_processes_receive_the_model(small_net) -> None:
    """Real serialisation: the model and the plugin cross a process boundary."""
    from distributed import Client, LocalCluster

    from s2cube.models import register_model

    x = np.random.default_rng(6).random((2, 3, 30, 30), dtype=np.float32)
    ref = predict(small_net, x, window=16, overlap=4)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        register_model(client, small_net)
        out = predict(
            small_net, da.from_array(x, chunks=(1, 3, 16, 16)), window=16, overlap=4
        ).compute()
        loaded = client.run(
            lambda: len(__import__("s2cube.models.runtime", fromlist=["_CACHE"])._CACHE)
        )
    np.testing.assert_allclose(out, ref, atol=2e-6)
    assert list(loaded.values()) == [1]  # one instance in the worker process


def test_module_cache_returns_one_instance(small_net) -> None:
    ref = ModelRef.of(small_net)
    assert ModelRef.of(small_net).token == ref.token
    assert get_module(ref, torch.device("cpu")) is get_module(ref, torch.device("cpu"))


def test_cuda_device_annotates_gpu_resource(small_net) -> None:
    x = da.zeros((1, 3, 16, 16), dtype=np.float32, chunks=8)
    out = predict(small_net, x, window=8, overlap=2, device="cuda")
    layer = out.dask.layers[out.name]
    assert layer.annotations == {"resources": {"GPU": 1}}
    cpu = predict(small_net, x, window=8, overlap=2, device="cpu")
    assert not cpu.dask.layers[cpu.name].annotations
    assert "dask_cuda" not in sys.modules


def test_graph_has_one_task_per_chunk_plus_halo_strips(small_net) -> None:
    x = da.zeros((1, 3, 64, 64), dtype=np.float32, chunks=(1, 3, 32, 32))
    out = predict(small_net, x, window=16, overlap=4)
    layer = dict(out.dask.layers[out.name])
    main = [k for k in layer if isinstance(k, tuple) and k[0] == out.name]
    assert len(main) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 18}, "multiple of 4"),
        ({"precision": "int8"}, "precision"),
        ({"halo": -1}, "halo"),
        ({"overlap": 16, "window": 16}, "overlap"),
        ({"device": "tpu:x"}, "device"),
    ],
)
def test_bad_arguments_fail_at_graph_build_time(small_net, kwargs, match) -> None:
    x = da.zeros((3, 32, 32), dtype=np.float32, chunks=16)
    with pytest.raises(InputError, match=match):
        predict(small_net, x, **{"window": 16, "overlap": 4, **kwargs})


def test_integer_input_is_rejected(small_net) -> None:
    with pytest.raises(InputError, match="reflectance"):
        predict(small_net, np.zeros((3, 16, 16), dtype=np.uint16), window=16, overlap=4)


@pytest.mark.gpu
def test_cuda_matches_cpu(small_net) -> None:
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    cpu = predict(small_net, x, window=32, overlap=8, device="cpu")
    gpu = predict(
        small_net, da.from_array(x, chunks=(1, 3, 32, 32)), window=32, overlap=8, device="cuda"
    ).compute(scheduler="sync")
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    bf16 = predict(small_net, x, window=32, overlap=8, device="cuda", precision="bf16")
    assert np.abs(bf16 - cpu).max() < 0.05


@pytest.mark.gpu
def test_cuda_graph_runner_equals_eager() -> None:
    """The CUDA-graph runner (the default on GPUs) returns what the eager forward pass returns
    (the real ukis-csmask network: ~450 torch calls per pass after fusion).

    Same batch shape: the same kernels, equal results (H200, 2026-12-04: 0.0 at fp32).  A
    smaller batch padded into the graph of a larger one runs the larger shape's cuDNN
    algorithms, which eager execution of the smaller shape need not pick: TF32 round-off
    (measured 3.5e-4 in probabilities at fp32), bounded here at 1e-3; bf16 at 2e-2.
    """
    from s2cube.models import load_model
    from s2cube.models.runtime import GraphedRunner, get_module, make_runner, resolve_device

    model = load_model("csmask-l2a-4b")
    device = resolve_device("cuda")
    module = get_module(ModelRef.of(model), device)
    rng = np.random.default_rng(0)
    for precision, same_shape, padded in (("fp32", 1e-5, 1e-3), ("bf16", 2e-2, 2e-2)):
        graphed = make_runner(module, device, precision)
        eager = make_runner(module, device, precision, graphs=False)
        assert isinstance(graphed, GraphedRunner)
        for n in (8, 5, 8):
            x = torch.from_numpy(rng.random((n, 4, 256, 256), dtype=np.float32) * 0.4)
            x = x.to(device)
            got, ref = graphed(x).cpu().numpy(), eager(x).cpu().numpy()
            assert graphed.mode == "cuda-graph", graphed.mode
            assert got.shape == ref.shape == (n, 3, 256, 256)
            err = float(np.abs(got - ref).max())
            print(f"{precision} batch {n}: max |graph - eager| = {err:.2e}")
            assert err < (same_shape if n == 8 else padded)
        assert len(graphed._graphs) == 1  # the batch of 5 replayed the batch-8 graph


def test_input_scale_and_argmax_equal_the_float_path(small_net) -> None:
    """uint16 DN scaled on the device and the class index taken there give exactly what the
    float32 reflectance path and a host argmax give, numpy and dask alike."""
    rng = np.random.default_rng(3)
    dn = rng.integers(0, 12000, (2, 3, 48, 40), dtype=np.uint16)
    refl = dn.astype(np.float32) * np.float32(1e-4)
    probs = predict(small_net, refl, window=16, overlap=4)
    index = predict(small_net, dn, window=16, overlap=4, input_scale=1e-4, reduce="argmax")
    assert index.dtype == np.uint8 and index.shape == (2, 48, 40)
    np.testing.assert_array_equal(index, probs.argmax(1))
    lazy = predict(
        small_net,
        da.from_array(dn, chunks=(1, 3, 24, 20)),
        window=16,
        overlap=4,
        input_scale=1e-4,
        reduce="argmax",
    )
    assert lazy.shape == (2, 48, 40) and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), index)
    with pytest.raises(InputError, match="reduce"):
        predict(small_net, refl, window=16, overlap=4, reduce="max")
    with pytest.raises(InputError, match="input_scale"):
        predict(small_net, dn, window=16, overlap=4, input_scale=-1.0)
