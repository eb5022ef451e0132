"""Training on several processes with DistributedDataParallel (DDP), as `torchrun` starts them.

`torchrun --nproc_per_node N script.py` starts N copies of the script and tells each its place
through environment variables: RANK (0..N-1 over all machines), LOCAL_RANK (on this machine),
WORLD_SIZE (N). Each process holds a full copy of the model and computes gradients on its own
share of the batch; DDP averages the gradients across processes during backward, so every copy
takes the same optimizer step and the copies stay identical. Process 0 logs and saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes checkpoints (rank 0)."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> tuple[DistributedInfo, torch.device]:
    """Join the process group if torchrun started us; return our place and the device to use.

    Backend: NCCL between GPUs, gloo between CPU processes. On GPUs each process takes the GPU
    numbered by its LOCAL_RANK. Without torchrun: rank 0 of 1, on `device`, and nothing to join.
    """
    if not launched_by_torchrun():
        return DistributedInfo(), device
    info = DistributedInfo(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    return info, device


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
