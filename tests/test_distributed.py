"""Data parallelism: K ranks train exactly what one process trains; one failing rank ends the job.

The MPI tests start `mpiexec -n K python -m gpt train ...` as a subprocess and skip without
mpi4py or mpiexec (`pip install -e '.[mpi]'`). The NCCL path is tested here on its host-side
bookkeeping with stand-ins for CuPy and NCCL; with two GPUs, MINIGRAD_TEST_DEVICES=cpu,cuda also
runs the equality test on them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import need

import minigrad
from gpt.checkpoint import load_checkpoint
from gpt.data import Batches
from minigrad import distributed, nn, optim

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them.\n\n"
) * 60
# A tiny model in float64 with two micro-batches per step, evaluated and checkpointed every 3 steps.
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--dropout", "0",
        "--dtype", "float64", "--grad_accum", "2", "--eval_interval", "3", "--eval_iters", "2", "--log_interval", "1",
        "--warmup_iters", "2", "--learning_rate", "1e-2", "--min_lr", "1e-3", "--lr_decay_iters", "6",
        "--no-progress", "--sample_tokens", "0"]


def _mpiexec() -> str:
    need("mpi4py")
    beside_python = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it there
    exe = str(beside_python) if beside_python.exists() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install -e '.[mpi]')")
    return exe


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run cmd in its own process group, which is killed whole if it outlives timeout (a hang)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    env.pop("MINIGRAD_TRACEBACK", None)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} ... hung for {timeout} s:\n{err[-2000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def train_cmd(ranks: int, data: Path, out: Path, batch_size: int, *extra: str) -> list[str]:
    args = ["-m", "gpt", "train", "--data", str(data), "--out_dir", str(out), "--batch_size", str(batch_size),
            *TINY, *extra]
    return [sys.executable, *args] if ranks == 1 else [_mpiexec(), "-n", str(ranks), sys.executable, *args]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Same losses, gradient norms and learning rates logged, same final weights and Adam moments."""
    ra, rb = records(a), records(b)
    assert [r["iter"] for r in ra] == [r["iter"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("loss", "grad_norm", "lr", "train", "val"):
            assert (key in x) == (key in y)
            if key in x:
                np.testing.assert_allclose(y[key], x[key], rtol=1e-12, err_msg=f"{key} at iteration {x['iter']}")
    meta_a, model_a, optim_a = load_checkpoint(a / "ckpt.npz")
    meta_b, model_b, optim_b = load_checkpoint(b / "ckpt.npz")
    assert meta_a["iter"] == meta_b["iter"] and meta_a["data_rng"] == meta_b["data_rng"]
    for name, w in model_a.items():  # (atol: key biases have zero gradient, softmax ignores a constant
        # added to a row of scores, so they move by rounding noise alone, ~1e-14 after a few steps)
        np.testing.assert_allclose(model_b[name], w, rtol=1e-12, atol=1e-13, err_msg=name)
    for j, state in optim_a["state"].items():
        for n, s in state.items():
            np.testing.assert_allclose(optim_b["state"][j][n], s, rtol=1e-10, atol=1e-16, err_msg=f"{n} of {j}")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[Path, Path]:
    """The reference: one process, batches of 12, six steps. Returns (data file, out_dir)."""
    d = tmp_path_factory.mktemp("dp")
    data = d / "input.txt"
    data.write_text(TEXT, encoding="utf-8")
    result = run(train_cmd(1, data, d / "one", 12, "--max_iters", "6"))
    assert result.returncode == 0, result.stderr
    return data, d / "one"


def _gpus() -> int:
    if "cuda" not in os.environ.get("MINIGRAD_TEST_DEVICES", "") or "cuda" not in minigrad.available_devices():
        return 0
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


needs_two_gpus = pytest.mark.skipif(_gpus() < 2, reason="MINIGRAD_TEST_DEVICES=cpu,cuda on a machine with 2 GPUs and NCCL")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_two_gpus)])
def test_two_ranks_train_exactly_as_one_process(one_process, tmp_path, device):
    data, one = one_process
    result = run(train_cmd(2, data, tmp_path / "two", 6, "--max_iters", "6", "--device", device))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"iter": 6') == 1  # rank 0 alone printed the summary
    assert_same_run(one, tmp_path / "two")
    assert all("allreduce_ms" in r for r in records(tmp_path / "two") if "loss" in r)


def test_resume_with_another_number_of_ranks(one_process, tmp_path):
    """Three ranks of 4 train three steps; one process of 12 resumes and finishes: the same run."""
    data, one = one_process
    result = run(train_cmd(3, data, tmp_path / "run", 4, "--max_iters", "3"))
    assert result.returncode == 0, result.stderr
    result = run(train_cmd(1, data, tmp_path / "run", 12, "--max_iters", "6", "--resume"))
    assert result.returncode == 0, result.stderr
    assert_same_run(one, tmp_path / "run")


COLLECTIVES = """
import numpy as np
from minigrad import distributed
comm = distributed.communicator("cpu")
r, k = comm.rank, comm.size
buf = np.arange(5.0) * (r + 1)
comm.allreduce_mean_(buf)
assert np.array_equal(buf, np.arange(5.0) * (k + 1) / 2), buf  # the mean of 1, 2, ..., k times arange
buf = np.full(3, float(r))
comm.broadcast_(buf)
assert np.array_equal(buf, np.zeros(3)), buf
assert comm.broadcast_object({"from": r})["from"] == 0
assert comm.average([r, 2.0 * r]) == [(k - 1) / 2, k - 1.0]
comm.barrier()
print(f"rank {r} of {k}: ok", flush=True)
"""


def test_mpi_collectives_on_three_ranks():
    result = run([_mpiexec(), "-n", "3", sys.executable, "-c", COLLECTIVES])
    assert result.returncode == 0, result.stderr
    assert sorted(re.findall(r"rank \d of 3: ok", result.stdout)) == [f"rank {r} of 3: ok" for r in range(3)]


FAULTY_RANK = """
import os, sys
import gpt.train
from gpt.cli import main
fault, at = sys.argv[1], int(sys.argv[2])
calls, clip = 0, gpt.train.clip_grad_norm_
def faulty_clip(params, max_norm):  # called once per step, on this rank only
    global calls
    calls += 1
    if calls == at:
        if fault == "exit":
            os._exit(3)
        raise RuntimeError("injected fault")
    return clip(params, max_norm)
gpt.train.clip_grad_norm_ = faulty_clip
sys.exit(main(["train", *sys.argv[3:]]))
"""


@pytest.mark.parametrize("fault", ["raise", "exit"])
def test_a_failing_rank_ends_the_job_and_keeps_the_checkpoint(one_process, tmp_path, fault):
    """Rank 1 raises (or dies) in step 4, after the checkpoint of step 3: both ranks end within
    seconds (not hanging), one message says why, and ckpt.npz still holds step 3."""
    data, _ = one_process
    cmd = train_cmd(2, data, tmp_path / "out", 6, "--max_iters", "6")
    args = cmd[cmd.index("-m"):][3:]  # the flags after `-m gpt train`
    mpmd = [cmd[0], "-n", "1", sys.executable, "-m", "gpt", "train", *args,
            ":", "-n", "1", sys.executable, "-c", FAULTY_RANK, fault, "5", *args]
    result = run(mpmd)  # a rank left waiting in a collective would hang: run() fails it after 120 s
    assert result.returncode != 0
    if fault == "raise":
        assert result.stderr.count("injected fault") == 1, result.stderr
        assert "error on rank 1: injected fault (stopping all 2 processes)" in result.stderr
    meta, _, _ = load_checkpoint(tmp_path / "out" / "ckpt.npz")
    assert meta["iter"] == 3


def test_a_missing_file_on_one_rank_ends_the_job(one_process, tmp_path):
    data, _ = one_process
    cmd = train_cmd(2, data, tmp_path / "out", 6, "--max_iters", "6")
    args = cmd[cmd.index("-m"):][3:]
    missing = [a if a != str(data) else str(tmp_path / "nowhere.txt") for a in args]
    mpmd = [cmd[0], "-n", "1", sys.executable, "-m", "gpt", "train", *args,
            ":", "-n", "1", sys.executable, "-m", "gpt", "train", *missing]
    result = run(mpmd)
    assert result.returncode != 0
    assert result.stderr.count("does not exist") == 1, result.stderr
    assert "error on rank 1: data file" in result.stderr


# ---- without MPI: the interface, the choice of path, the bookkeeping ---------------------------


@pytest.fixture
def fresh(monkeypatch):
    """No communicator made yet, and no mpiexec variables in the environment."""
    monkeypatch.setattr(distributed, "_communicators", {})
    for name in distributed._SIZE_VARIABLES + distributed._RANK_VARIABLES + distributed._LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_without_mpiexec(fresh):
    comm = distributed.communicator("cpu")
    assert isinstance(comm, distributed.Single) and (comm.rank, comm.size) == (0, 1)
    assert distributed.communicator("cpu") is comm
    buf = np.arange(4.0)
    comm.allreduce_mean_(buf)
    comm.broadcast_(buf)
    comm.barrier()
    np.testing.assert_array_equal(buf, np.arange(4.0))
    assert comm.broadcast_object({"a": 1}) == {"a": 1} and comm.average([1.5, 2.5]) == [1.5, 2.5]


class FakeWorld:
    """Stands in for mpi4py's COMM_WORLD as seen by one rank."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size, self.sent = rank, size, []

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def bcast(self, obj, root=0):
        self.sent.append(obj)
        return ("id", "from rank 0") if self.rank != root else obj


def test_the_path_follows_mpiexec_and_the_device(fresh):
    fresh.setenv("PMI_SIZE", "2")
    made = []
    fresh.setattr(distributed, "_mpi_world", lambda size: FakeWorld(0, size))
    fresh.setattr(distributed, "MPIComm", lambda world: made.append(("mpi", world.size)) or "mpi comm")
    fresh.setattr(distributed, "NCCLComm", lambda world: made.append(("nccl", world.size)) or "nccl comm")
    assert distributed.launched_size() == 2 and distributed.launched_rank() == 0
    fresh.setenv("PMI_RANK", "1")
    assert distributed.launched_rank() == 1
    assert distributed.communicator("cpu") == "mpi comm" and distributed.communicator("cuda") == "nccl comm"
    assert made == [("mpi", 2), ("nccl", 2)]
    with pytest.raises(ValueError, match="'cpu' \\(MPI\\) or 'cuda' \\(NCCL\\), not on 'fakegpu'"):
        distributed.communicator("fakegpu")


def test_mpiexec_without_mpi4py_says_what_to_install(fresh):
    fresh.setenv("OMPI_COMM_WORLD_SIZE", "4")
    fresh.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r"one of 4 started by mpiexec, but mpi4py is not installed: pip install"):
        distributed.communicator("cpu")


class FakeDeviceArray:
    """A flat array as NCCL sees a CuPy array: a device pointer, a length, a dtype."""

    def __init__(self, values) -> None:
        self.host = np.ascontiguousarray(values)
        self.data = SimpleNamespace(ptr=1000 + id(self) % 1000)
        self.size, self.dtype, self.ndim, self.shape, self.flags = (
            self.host.size, self.host.dtype, self.host.ndim, self.host.shape, self.host.flags)

    def __itruediv__(self, k):
        self.host /= k
        return self


def fake_cuda(n_gpus: int, available: bool = True):
    """Stand-ins for cupy and cupy.cuda.nccl that record what is asked of them. The "other rank"
    of the allreduce holds [10, 20, ...], so the sum is checkable."""
    log = []
    buffers = {}

    class Communicator:
        def __init__(self, ndev, uid, rank):
            log.append(("init", ndev, uid, rank))

        def allReduce(self, send, recv, count, dtype, op, stream):
            log.append(("allReduce", send, recv, count, dtype, op, stream))
            buffers[recv].host += 10.0 * np.arange(1, count + 1)

        def bcast(self, buf, count, dtype, root, stream):
            log.append(("bcast", buf, count, dtype, root, stream))

    nccl = SimpleNamespace(available=available, NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_INT64=4,
                           NCCL_SUM=0, get_unique_id=lambda: ("id", "made here"), NcclCommunicator=Communicator)
    cuda = SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: n_gpus),
                           Device=lambda i: SimpleNamespace(use=lambda: log.append(("use GPU", i))),
                           get_current_stream=lambda: SimpleNamespace(ptr=77))
    return SimpleNamespace(cuda=cuda), nccl, log, buffers


def test_nccl_bookkeeping_without_a_gpu(fresh):
    fresh.setenv("MPI_LOCALRANKID", "1")
    cupy, nccl, log, buffers = fake_cuda(n_gpus=2)
    world = FakeWorld(rank=1, size=2)
    comm = distributed.NCCLComm(world, cupy=cupy, nccl=nccl)
    assert (comm.rank, comm.size, comm.device) == (1, 2, 1)
    # GPU 1 chosen before NCCL starts; the id comes from rank 0 over MPI (this rank sent None)
    assert log == [("use GPU", 1), ("init", 2, ("id", "from rank 0"), 1)]
    assert world.sent == [None]

    buf = FakeDeviceArray([1.0, 2.0, 3.0])
    buffers[buf.data.ptr] = buf
    comm.allreduce_mean_(buf)  # in place on the device: send and receive are the same pointer
    assert log[-1] == ("allReduce", buf.data.ptr, buf.data.ptr, 3, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 77)
    np.testing.assert_array_equal(buf.host, [5.5, 11.0, 16.5])  # ([1, 2, 3] + [10, 20, 30]) / 2

    buf32 = FakeDeviceArray(np.ones(5, np.float32))
    buffers[buf32.data.ptr] = buf32
    comm.allreduce_mean_(buf32)
    assert log[-1][4] == nccl.NCCL_FLOAT32
    comm.broadcast_(buf32)
    assert log[-1] == ("bcast", buf32.data.ptr, 5, nccl.NCCL_FLOAT32, 0, 77)
    host = []
    fresh.setattr(distributed.MPIComm, "allreduce_mean_", lambda self, buf: host.append(buf.copy()))
    assert comm.average([2.5, 3.5]) == [2.5, 3.5] and host[0].tolist() == [2.5, 3.5]  # losses go over MPI
    with pytest.raises(TypeError, match="no collective for dtype int8"):
        comm.allreduce_mean_(FakeDeviceArray(np.ones(2, np.int8)))
    with pytest.raises(ValueError, match="flat contiguous buffers, got shape \\(2, 2\\)"):
        comm.allreduce_mean_(FakeDeviceArray(np.ones((2, 2))))


def test_nccl_refuses_two_ranks_on_one_gpu_and_a_missing_library(fresh):
    fresh.setenv("MPI_LOCALRANKID", "1")
    cupy, nccl, _, _ = fake_cuda(n_gpus=1)
    with pytest.raises(RuntimeError, match="process 1 on its machine, which has 1 GPU.*one GPU per process"):
        distributed.NCCLComm(FakeWorld(1, 2), cupy=cupy, nccl=nccl)
    cupy, nccl, _, _ = fake_cuda(n_gpus=2, available=False)
    with pytest.raises(RuntimeError, match="pip install nvidia-nccl-cu12"):
        distributed.NCCLComm(FakeWorld(1, 2), cupy=cupy, nccl=nccl)


class RecordingComm(distributed.Single):
    """Two ranks, where the other rank's gradients are all zero: the mean halves them."""

    size = 2

    def __init__(self) -> None:
        self.reduced, self.sent = [], []

    def allreduce_mean_(self, buf) -> None:
        self.reduced.append(buf)
        buf /= 2

    def broadcast_(self, buf, root=0) -> None:
        self.sent.append(buf)


def test_one_allreduce_per_flat_gradient_buffer():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim == 1]
    opt = optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}, {"params": []}], lr=0.1)
    model(minigrad.randn(5, 3)).sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    comm = RecordingComm()
    distributed.allreduce_grads(opt, comm)
    assert [id(b) for b in comm.reduced] == [id(g.grad) for g in opt.param_groups[:2]]  # the empty group: none
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad.numpy(), g / 2)
    distributed.broadcast_parameters(opt, comm)
    assert [id(b) for b in comm.sent] == [id(b) for g in opt.param_groups[:2] for b in (g.flat, *g.state.values())]


def test_ranks_slice_one_global_batch():
    tokens = np.arange(1000) % 97
    whole = Batches(tokens, 8, 12, seed=3).sample("train", "cpu")[0].numpy()
    parts = [Batches(tokens, 8, 4, seed=3, rank=r, world_size=3).sample("train", "cpu")[0].numpy() for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_rank_seeds_differ_by_rank_and_iteration():
    seeds = {distributed.rank_seed(1337, r, it) for r in range(4) for it in range(4)}
    assert len(seeds) == 16 and distributed.rank_seed(1337, 2, 3) == distributed.rank_seed(1337, 2, 3)
