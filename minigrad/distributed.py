"""Data parallelism: K processes, each with the whole model, each computing gradients on its own
share of the batch; one collective per flat gradient buffer turns them into the mean over all K.

A communicator is the little that training needs from the K processes ("ranks"):
    rank, size              which process this is (0 .. size-1), and how many there are
    allreduce_mean_(buf)    buf <- the mean of every rank's buf, in place (buf: a flat (P,) array)
    broadcast_(buf)         buf <- rank 0's buf, in place
    broadcast_object(obj)   rank 0's obj (any picklable value, sent over the host)
    average(values)         the mean over the ranks of a few host floats (losses)
    barrier()               wait until every rank gets here
    abort(message)          print the message and end every process of the job
`communicator(device)` picks one of three implementations:
    Single    one process, as when started without mpiexec: every call does nothing
    MPIComm   `mpiexec -n K` on CPUs: mpi4py's Allreduce on the NumPy buffers, in place
    NCCLComm  the same with device "cuda": NCCL (through CuPy) on the GPU buffers, one GPU per
              rank, no copies to the host; MPI only starts it (rank 0 sends NCCL's id)
MPI is imported only when the process was started by mpiexec, so mpi4py stays optional.

Left out: overlapping the allreduce with the backward pass (PyTorch's DDP does it bucket by
bucket), sharding optimizer state (ZeRO), and surviving a failed rank: one failure ends the job.

gpt/train.py is where every rank draws the same global batch and keeps its slice.

Read next: as_torch.py.
"""
from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

# Set by mpiexec in each process it starts: MPICH/Intel MPI/Slurm (PMI), Open MPI, MVAPICH.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def launched_size() -> int:
    """How many processes mpiexec started in this job (1 when not started by mpiexec)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def launched_rank() -> int:
    """This process's rank as mpiexec numbered it (0 when not started by mpiexec), known before MPI starts."""
    for name in _RANK_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


class Communicator:
    """The interface (see the top of this file); each implementation fills in the collectives."""

    rank: int = 0
    size: int = 1

    def allreduce_mean_(self, buf: Any) -> None:
        raise NotImplementedError

    def broadcast_(self, buf: Any, root: int = 0) -> None:
        raise NotImplementedError

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        raise NotImplementedError

    def average(self, values: list[float]) -> list[float]:
        buf = np.array(values, dtype=np.float64)
        self.allreduce_mean_(buf)
        return buf.tolist()

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, message: str, code: int = 1) -> None:
        raise NotImplementedError


class Single(Communicator):
    """One process: the mean over one rank is the value itself."""

    def allreduce_mean_(self, buf: Any) -> None:
        pass

    def broadcast_(self, buf: Any, root: int = 0) -> None:
        pass

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def average(self, values: list[float]) -> list[float]:
        return list(values)

    def barrier(self) -> None:
        pass

    def abort(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr, flush=True)
        sys.exit(code)


class MPIComm(Communicator):
    """Collectives of MPI on host (NumPy) arrays, through mpi4py."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()

    def allreduce_mean_(self, buf: np.ndarray) -> None:
        from mpi4py import MPI

        _check_flat(buf)
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # buf = the sum over the ranks
        buf /= self.size

    def broadcast_(self, buf: np.ndarray, root: int = 0) -> None:
        _check_flat(buf)
        self.comm.Bcast(buf, root=root)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr, flush=True)
        time.sleep(0.5)  # mpiexec forwards our stderr from a pipe; Abort can kill it before it does (seen under load)
        self.comm.Abort(code)  # MPI ends every process of the job, wherever it is waiting
        os._exit(code)  # some MPIs return from Abort and end this process from outside, a moment later


class NCCLComm(MPIComm):
    """Collectives of NCCL on GPU (CuPy) arrays; MPI starts the communicator and carries host values.

    Each rank takes the GPU numbered by its rank among the processes on its machine (the local
    rank), so a machine runs at most one rank per GPU (NCCL refuses two ranks on one GPU).
    `cupy` and `nccl` can be given to test the bookkeeping without a GPU."""

    def __init__(self, comm: Any, cupy: Any = None, nccl: Any = None) -> None:
        super().__init__(comm)
        if cupy is None:
            import cupy
            from cupy.cuda import nccl
        if not getattr(nccl, "available", True):
            raise RuntimeError("CuPy finds no NCCL library: pip install nvidia-nccl-cu12 (or -cu13, matching CuPy)")
        self.cupy, self.nccl = cupy, nccl
        self.device = local_rank(comm)
        n_gpus = cupy.cuda.runtime.getDeviceCount()
        if self.device >= n_gpus:
            raise RuntimeError(
                f"rank {self.rank} is process {self.device} on its machine, which has {n_gpus} GPU(s): "
                f"NCCL needs one GPU per process (start at most {n_gpus} per machine)"
            )
        cupy.cuda.Device(self.device).use()
        uid = self.broadcast_object(nccl.get_unique_id() if self.rank == 0 else None)  # over MPI
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _dtype(self, buf: Any) -> int:
        types = {"float16": self.nccl.NCCL_FLOAT16, "float32": self.nccl.NCCL_FLOAT32,
                 "float64": self.nccl.NCCL_FLOAT64, "int64": self.nccl.NCCL_INT64}
        if str(buf.dtype) not in types:
            raise TypeError(f"NCCL: no collective for dtype {buf.dtype} (use one of {sorted(types)})")
        return types[str(buf.dtype)]

    def allreduce_mean_(self, buf: Any) -> None:
        _check_flat(buf)
        stream = self.cupy.cuda.get_current_stream().ptr  # queued after the backward pass's kernels
        ptr = buf.data.ptr
        self.nccl_comm.allReduce(ptr, ptr, buf.size, self._dtype(buf), self.nccl.NCCL_SUM, stream)
        buf /= self.size

    def average(self, values: list[float]) -> list[float]:
        buf = np.array(values, dtype=np.float64)  # a few host floats: over MPI, not via the GPU
        MPIComm.allreduce_mean_(self, buf)
        return buf.tolist()

    def broadcast_(self, buf: Any, root: int = 0) -> None:
        _check_flat(buf)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.nccl_comm.bcast(buf.data.ptr, buf.size, self._dtype(buf), root, stream)



def _check_flat(buf: Any) -> None:
    if buf.ndim != 1 or not buf.flags.c_contiguous:
        raise ValueError(f"collectives take flat contiguous buffers, got shape {tuple(buf.shape)}")


def local_rank(comm: Any) -> int:
    """This process's number among the job's processes on the same machine."""
    for name in _LOCAL_RANK_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    from mpi4py import MPI

    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


_communicators: dict[str, Communicator] = {}


def communicator(device: str = "cpu") -> Communicator:
    """The job's communicator for arrays on `device`: Single without mpiexec (or with one process),
    else MPI on "cpu" and NCCL on "cuda". Made once per process and device."""
    if device not in _communicators:
        size = launched_size()
        if size == 1:
            _communicators[device] = Single()
        elif device in ("cpu", "cuda"):
            world = _mpi_world(size)
            _communicators[device] = NCCLComm(world) if device == "cuda" else MPIComm(world)
        else:
            raise ValueError(f"data-parallel training runs on 'cpu' (MPI) or 'cuda' (NCCL), not on {device!r}")
    return _communicators[device]


def _mpi_world(size: int) -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError(
            f"this process is one of {size} started by mpiexec, but mpi4py is not installed: "
            "pip install -e '.[mpi]' (or run without mpiexec)"
        ) from None
    return MPI.COMM_WORLD


# ---- what training does with a communicator ---------------------------------------------------


def allreduce_grads(optimizer: Any, comm: Communicator) -> None:
    """Average every gradient over the ranks: one collective per parameter group's flat buffer."""
    if comm.size == 1:
        return
    for g in optimizer.param_groups:
        g.sync()  # a gradient that backward made afresh goes into the flat buffer first
        if g.grad is not None:  # None: the group has no trainable parameter
            comm.allreduce_mean_(g.grad)


def broadcast_parameters(optimizer: Any, comm: Communicator) -> None:
    """Make every rank's parameters and optimizer state rank 0's (they start equal from the same
    seed; this makes sure, as a different NumPy on another machine could draw other numbers)."""
    if comm.size == 1:
        return
    for g in optimizer.param_groups:
        g.sync()
        if g.flat is not None:
            for buf in (g.flat, *g.state.values()):
                comm.broadcast_(buf)


def rank_seed(seed: int, rank: int, it: int) -> int:
    """A seed for rank `rank`'s dropout at iteration `it`: ranks draw different masks, and a
    resumed run draws the masks the uninterrupted run would have drawn."""
    return int(np.random.SeedSequence([seed, rank, it]).generate_state(1)[0])


def abort_job_on_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Under mpiexec, an exception in any rank prints one line and ends every rank of the job.

    Without this, the other ranks would wait forever in their next collective for the rank that
    is gone (even a clean exit hangs: MPI_Finalize waits for them). Errors in the configuration
    or a diverged loss happen on every rank at once; a rank other than 0 gives rank 0 a second
    to report them first, so the job prints them once. MINIGRAD_TRACEBACK=1 prints the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if launched_size() == 1:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            world = MPIComm(_mpi_world(launched_size()))
            if world.rank > 0:
                time.sleep(1.0)
            if os.environ.get("MINIGRAD_TRACEBACK"):
                traceback.print_exc()
            where = "" if world.rank == 0 else f" on rank {world.rank}"
            world.abort(f"error{where}: {e} (stopping all {world.size} processes)")
            raise  # not reached: abort ends this process too

    return wrapper
