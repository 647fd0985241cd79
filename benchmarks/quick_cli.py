"""Time the main job: `python -m course_utils.train` with no arguments, from an empty data root.

    python benchmarks/quick_cli.py [--runs 3]

Each run gets a fresh temporary UNET_COURSE_DATA (so the toy Carvana is drawn inside the
timing, as on a fresh clone) and a temporary working folder for runs/. Prints, per run, the
wall time, the load average before and after (other programs on the same cores slow CPU
training a lot), the held-out Dice of every epoch and the final one. The course's bar: held-out
Dice >= 0.95 within 4 minutes on 2 CPU cores in the quick profile.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run() -> dict:
    with tempfile.TemporaryDirectory(prefix="unet-bench-") as tmp:
        data, cwd = Path(tmp) / "data", Path(tmp) / "cwd"
        cwd.mkdir()
        env = os.environ | {"UNET_COURSE_DATA": str(data), "UNET_COURSE_PROFILE": "quick"}
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "course_utils.train"], cwd=cwd, env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"the run failed:\n{proc.stdout}\n{proc.stderr}")
        history = json.loads(next((cwd / "runs").glob("*/history.json")).read_text())
    return dict(seconds=seconds, load_before=load_before, load_after=os.getloadavg()[0],
                dice=[r["val_dice"] for r in history], epoch_seconds=[r["seconds"] for r in history])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    print(f"{os.cpu_count()} CPUs; quick profile, no arguments, fresh data root each run")
    for k in range(runs):
        r = one_run()
        dice = " ".join(f"{d:.4f}" for d in r["dice"])
        print(f"run {k + 1}: {r['seconds']:.1f} s wall, load {r['load_before']:.1f} -> {r['load_after']:.1f}; "
              f"held-out Dice per epoch {dice}; final {r['dice'][-1]:.4f}; "
              f"epochs {sum(r['epoch_seconds']):.1f} s of the wall time")


if __name__ == "__main__":
    main()
