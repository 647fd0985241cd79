"""Tests for training on many processes (torchrun + DistributedDataParallel, run here on the CPU
with gloo) and for the out-of-memory message of course_utils.train (issue 4)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils.data import make_toy_carvana, split_cars
from course_utils.losses import BCEDiceLoss
from course_utils.data.sampling import EpochShuffle, Shard, ShardedEpochShuffle
from course_utils.checkpoint import load_checkpoint
from course_utils.config import TrainConfig
from course_utils.engine import validate
from course_utils.train import main, make_loaders


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def odd_toy_root(tmp_path_factory) -> Path:
    """4 toy cars at 32x48, one held-out photo deleted: 15 validation images, which 2 processes
    cannot split evenly (a padded shard would count one image twice)."""
    root = Path(make_toy_carvana(tmp_path_factory.mktemp("toy") / "toy_carvana", n_cars=4, image_size=(32, 48)))
    _, val_ids = split_cars(root, val_fraction=0.25, by="car", seed=0)
    (root / "train" / f"{val_ids[0]}.jpg").unlink()
    (root / "train_masks" / f"{val_ids[0]}_mask.gif").unlink()
    return root


def args(root: Path, out: Path) -> list[str]:
    return ["--data-dir", str(root), "--out", str(out), "--epochs", "2", "--image-size", "32", "48",
            "--base-channels", "4", "--batch-size", "4", "--num-workers", "0", "--val-fraction", "0.25",
            "--lr", "1e-2", "--profile", "quick", "--threads", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def two_process_run(odd_toy_root, tmp_path_factory):
    """`torchrun --nproc_per_node=2 -m course_utils.train ...` on the CPU, as a subprocess."""
    tmp = tmp_path_factory.mktemp("ddp")
    dump = tmp / "dump"
    dump.mkdir()
    env = os.environ | {"UNET_COURSE_PROFILE": "quick", "UNET_COURSE_TEST_DUMP_DIR": str(dump),
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={env['MASTER_PORT']}", "-m", "course_utils.train",
                           *args(odd_toy_root, tmp / "run")], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, proc


def test_shards_are_disjoint_and_cover_the_same_permutation():
    data = list(range(15))
    whole = EpochShuffle(data, seed=3)
    shards = [ShardedEpochShuffle(data, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for s in (whole, *shards):
        s.set_epoch(5)
    a, b = list(shards[0]), list(shards[1])
    assert len(a) == len(b) == 8  # padded to equal length: same number of steps on each process
    assert {e for e, _ in a + b} == {5}  # (epoch, index) pairs, as SeededAugment expects
    order = list(whole)
    assert [x for pair in zip(a, b) for x in pair][:15] == order  # interleaved, they are the epoch's order
    assert b[-1] == order[0]  # the one padding entry repeats the permutation's start
    val = [list(Shard(data, r, 2)) for r in (0, 1)]
    assert sorted(val[0] + val[1]) == data and not set(val[0]) & set(val[1])  # each image exactly once


def test_two_processes_train_one_model_and_one_writes(two_process_run):
    tmp, proc = two_process_run
    ranks = [torch.load(tmp / "dump" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name, tensor in ranks[0].items():  # weights and BatchNorm statistics alike
        assert torch.equal(tensor, ranks[1][name]), name
    written = {p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file() and p.parent.name != "dump"}
    assert written == {Path("run") / n for n in ("history.json", "last.pt", "best.pt", "predictions.png")}
    assert proc.stdout.count("epoch  1/2") == 1 and proc.stdout.count("epoch  2/2") == 1, proc.stdout
    assert proc.stdout.count("run folder:") == 1 and "2 processes" in proc.stdout
    last = torch.load(tmp / "run" / "last.pt", weights_only=True)
    assert torch.equal(last["model"]["head.weight"], ranks[0]["head.weight"])  # the unwrapped module's names


def test_reduced_validation_equals_one_process(two_process_run, odd_toy_root):
    tmp, _ = two_process_run
    history = json.loads((tmp / "run" / "history.json").read_text())
    cfg = TrainConfig(data_dir=str(odd_toy_root), image_size=(32, 48), base_channels=4, batch_size=4,
                      val_fraction=0.25, progress=False).check()
    _, val = make_loaders(cfg)
    assert len(val.dataset) == 15
    model, ckpt = load_checkpoint(tmp / "run" / "last.pt")
    metrics = validate(model, val, BCEDiceLoss(cfg.bce_weight), "cpu")
    assert ckpt["epoch"] == 2
    assert history[-1]["val_dice"] == pytest.approx(metrics["val_dice"], abs=1e-6)
    assert history[-1]["val_loss"] == pytest.approx(metrics["val_loss"], abs=1e-5)


def test_out_of_memory_says_what_to_lower(odd_toy_root, tmp_path, monkeypatch, capsys):
    import course_utils.engine as engine

    def no_memory(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine, "_backward_and_step", no_memory)
    assert main(args(odd_toy_root, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "ran out of memory at epoch 1, step 1" in err and "Traceback" not in err
    for option in ("--batch-size 2", "--image-size 16 24", "--base-channels", "--amp bf16", "halves"):
        assert option in err, option


def _add_sums_in_two_processes(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: all_reduce_sums of this rank's part, saved by rank 0."""
    import torch.distributed as dist

    from course_utils.distributed import all_reduce_sums

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        big = 2**53 + 1  # float64 cannot hold it: an all-reduce in float64 would round the total
        part = {"counts": torch.tensor([[big, rank], [3, 4]], dtype=torch.int64),
                "scores": torch.tensor([0.25 + rank, 1.0], dtype=torch.float64)}
        total = all_reduce_sums(part, "cpu")
        if rank == 0:
            torch.save(total, out)
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_adds_counts_as_exact_integers(tmp_path):
    torch.multiprocessing.spawn(_add_sums_in_two_processes, args=(str(tmp_path / "store"), str(tmp_path / "sum.pt")),
                                nprocs=2)
    total = torch.load(tmp_path / "sum.pt")
    assert total["counts"].dtype == torch.int64 and total["counts"].tolist() == [[2**54 + 2, 1], [6, 8]]
    assert float(2**54 + 2) == float(2**54)  # what a float64 sum would have kept
    assert total["scores"].dtype == torch.float64 and total["scores"].tolist() == [1.5, 2.0]
