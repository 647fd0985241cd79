"""A toy Carvana: studio photos of made-up cars on a turntable, in the real Kaggle layout (lesson 05).

The real data set is 5088 photos (318 cars x 16 angles) and needs a Kaggle account. The toy
one is drawn here in seconds, in exactly the same files and formats, so the course's one
loader (`CarvanaDataset`) reads both:

    root/train/{car_id}_{01..16}.jpg            RGB JPEG
    root/train_masks/{car_id}_{nn}_mask.gif     GIF, mode 'P', values {0, 1}, black/white palette
    root/train_masks.csv                        img,rle_mask   (row-major, 1-indexed Kaggle RLE)
    root/metadata.csv                           id,year,make,model,trim1,trim2

The cars are drawn by toy_car_model.py (their 3-D shapes) and toy_car_render.py (the studio
and the renderer). Colours include white and silver cars as bright as the wall and black cars
as dark as the tyres and shadow, so no single brightness threshold finds the cars: a network
has to learn their shape. This module writes the files and keeps the set up to date.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..rle import rle_encode
from .folders import claim_folder, publish_folder
from .toy_car_model import MAKES, car_parts, car_spec
from .toy_car_render import ANGLES, Camera, photo, studio_backdrop

__all__ = ["make_toy_carvana", "ensure_toy_carvana", "MAKES", "ANGLES"]

SIGNATURE = ".toy_carvana"  # written first: this folder was made here and may be remade
COMPLETE = ".complete"  # written last: the set is whole
# metadata.csv's trim1 and trim2 columns, drawn per car like Kaggle's
TRIMS = ("Base", "S", "SE", "LX", "EX", "Sport", "Limited", "Touring")
EXTRAS = ("", "", "w/Tech", "w/Premium", "AWD", "w/Nav")


# ----------------------------------------------------------------------------- the data set on disk
def _car_table(n_cars: int, seed: int) -> list[dict]:
    """Ids, makes, models, years and trims of the cars: deterministic for a seed."""
    rng = np.random.default_rng([seed, 0])
    ids: list[str] = []
    while len(ids) < n_cars:
        car_id = f"{int(rng.integers(0, 2**48)):012x}"
        if car_id not in ids:
            ids.append(car_id)
    names = list(MAKES)
    makes = [names[i % len(names)] for i in range(n_cars)]
    rng.shuffle(makes)
    rows = []
    for car_id, make in zip(ids, makes):
        rows.append(dict(id=car_id, year=int(rng.integers(2008, 2018)), make=make,
                         model=str(rng.choice(MAKES[make]["models"])), trim1=str(rng.choice(TRIMS)),
                         trim2=str(rng.choice(EXTRAS))))
    return rows


def _save_mask_gif(mask: np.ndarray, path: Path) -> None:
    """A one-frame GIF in mode 'P' with a black/white palette and values {0, 1}, like Kaggle's."""
    gif = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, np.uint8).tobytes())
    gif.putpalette([0, 0, 0, 255, 255, 255])
    # optimize=True would reorder the palette of an all-car mask; transparency=None writes GIF89a, like Kaggle's
    gif.save(path, format="GIF", optimize=False, transparency=None)


def make_toy_carvana(root: str | Path, n_cars: int = 40, image_size: tuple[int, int] = (160, 240),
                     seed: int = 0) -> Path:
    """Draw a toy Carvana into `root` (the data-set folder itself) in the Kaggle layout; return root.

    n_cars cars x 16 angles; image_size is (H, W) (Kaggle's is (1280, 1918)); the same seed gives
    the same bytes. A folder that is not empty and was not made here is refused, so a real data
    set can never be overwritten. The marker `.complete` is written last.

    >>> root = make_toy_carvana(tmp_path / "toy_carvana", n_cars=4)   # doctest: +SKIP

    Lesson 05.
    """
    root = Path(root)
    height, width = (int(v) for v in image_size)
    if n_cars < 1 or height < 16 or width < 16:
        raise ValueError(f"make_toy_carvana needs n_cars >= 1 and an image_size of at least (16, 16), "
                         f"got n_cars={n_cars}, image_size={image_size}.")
    _prepare_folder(root)
    cars = _car_table(n_cars, seed)
    cam = Camera.studio(height, width)
    backdrop = studio_backdrop(cam, height, width, np.random.default_rng([seed, 1]))
    ss = 4 if width <= 160 else 3 if width <= 480 else 2  # supersampling for anti-aliased edges
    rles = []
    for index, car in enumerate(cars):
        rng = np.random.default_rng([seed, 2, index])
        spec = car_spec(car["make"], rng)
        parts = car_parts(spec)
        light = np.clip(rng.uniform(0.94, 1.05) * rng.normal(1.0, 0.006, 3), 0.9, 1.1).astype(np.float32)
        for angle in range(1, ANGLES + 1):
            name = f"{car['id']}_{angle:02d}"
            img, mask = photo(spec, parts, angle, cam, backdrop, light, rng, ss)
            Image.fromarray(img).save(root / "train" / f"{name}.jpg", quality=90)
            _save_mask_gif(mask, root / "train_masks" / f"{name}_mask.gif")
            rles.append((f"{name}.jpg", rle_encode(mask)))
    _write_csv(root / "train_masks.csv", ["img", "rle_mask"], rles)
    fields = ["id", "year", "make", "model", "trim1", "trim2"]
    _write_csv(root / "metadata.csv", fields, [[c[f] for f in fields] for c in cars])
    params = dict(n_cars=n_cars, image_size=[height, width], seed=seed)
    (root / COMPLETE).write_text(json.dumps(params) + "\n")
    return root


def _prepare_folder(root: Path) -> None:
    """Empty a previous toy set in `root` (never anything else) and create the Kaggle folders."""
    claim_folder(root, SIGNATURE, "make_toy_carvana", stale=(COMPLETE, "train", "train_masks"))
    for sub in ("train", "train_masks"):
        (root / sub).mkdir()


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def is_complete(root: str | Path, n_cars: int | None = None, image_size: tuple[int, int] | None = None,
                seed: int | None = None) -> bool:
    """True when `root` holds a whole toy set (made with these parameters, where given). Lesson 05."""
    try:
        params = json.loads((Path(root) / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    wanted = dict(n_cars=n_cars, image_size=None if image_size is None else [int(v) for v in image_size], seed=seed)
    return all(v is None or params.get(k) == v for k, v in wanted.items())


def ensure_toy_carvana(root: str | Path | None = None, n_cars: int = 40, image_size: tuple[int, int] = (160, 240),
                       seed: int = 0) -> Path:
    """The toy Carvana folder, drawn first if it is missing, half-written or made with other settings.

    root defaults to data_root() / "toy_carvana" when a whole set with these settings is there (it is
    then only read: a class's shared folder may be read-only), else work_root() / "toy_carvana" (the same
    folder when the data root is writable). The set is drawn in a temporary sibling folder and moved
    into place when whole, so an interrupted run never leaves a set that looks complete. Lessons 00 and 05.
    """
    if root is None:
        from ..environment import data_root, work_root

        root = data_root() / "toy_carvana"
        if not is_complete(root, n_cars, image_size, seed):
            root = work_root() / "toy_carvana"
    root = Path(root)
    if is_complete(root, n_cars, image_size, seed):
        return root
    print(f"Generating the toy Carvana data set ({n_cars} cars x {ANGLES} angles, "
          f"{image_size[0]}x{image_size[1]}) in {root} ...", flush=True)
    return publish_folder(root, lambda tmp: make_toy_carvana(tmp, n_cars=n_cars, image_size=image_size, seed=seed),
                          lambda path: is_complete(path, n_cars, image_size, seed), SIGNATURE, "make_toy_carvana")
