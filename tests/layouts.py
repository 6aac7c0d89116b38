"""Writers of tiny datasets in each official on-disk layout, for tests.

Every writer fills ``root`` with ``n`` random samples of ``size`` = (width, height) and returns what an
importer should read back: the RGB image (RGB order) and the raw label ids, sorted by sample key.
Images are written through OpenCV, i.e. converted to BGR(A) on disk as real datasets are. JPEG is lossy, so
for JPEG images the returned ``image`` is the decoded file (still RGB order), not the random array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

Size = tuple[int, int]  # (width, height)

CITYSCAPES_LABEL_IDS = tuple(range(34))
CAMVID_IDS = tuple(range(12))
BDD_TRAIN_IDS = (*range(19), 255)
CARLA_TAGS = tuple(range(29))  # CARLA >= 0.9.14 scheme


@dataclass(frozen=True)
class WrittenSample:
    key: str
    image: np.ndarray  # RGB uint8 (H, W, 3) as it must load
    ids: np.ndarray  # uint8 (H, W) as it must load
    image_path: Path
    label_path: Path


def random_rgb(rng: np.random.Generator, size: Size) -> np.ndarray:
    width, height = size
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def random_ids(rng: np.random.Generator, size: Size, values: Sequence[int]) -> np.ndarray:
    width, height = size
    return rng.choice(np.asarray(values, dtype=np.uint8), (height, width))


def write_rgb(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Write an RGB array as OpenCV does (BGR on disk); return what decoding the file gives, in RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[:, :, ::-1]):
        raise OSError(f"cannot write {path}")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return rgb


def write_grey(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), ids):
        raise OSError(f"cannot write {path}")


def _sample(rng: np.random.Generator, size: Size, values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    return random_rgb(rng, size), random_ids(rng, size, values)


def write_cityscapes(
    root: Path,
    split: str = "train",
    n: int = 3,
    size: Size = (64, 32),
    seed: int = 0,
    cities: Sequence[str] = ("aachen", "bochum"),
) -> list[WrittenSample]:
    """leftImg8bit + gtFine; also writes the other gtFine files (color, instanceIds, polygons) as decoys."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        city = cities[index % len(cities)]
        key = f"{city}_{index:06d}_{19 + index:06d}"
        rgb, ids = _sample(rng, size, CITYSCAPES_LABEL_IDS)
        image_path = root / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png"
        label_dir = root / "gtFine" / split / city
        label_path = label_dir / f"{key}_gtFine_labelIds.png"
        image = write_rgb(image_path, rgb)
        write_grey(label_path, ids)
        write_rgb(label_dir / f"{key}_gtFine_color.png", random_rgb(rng, size))
        write_grey(label_dir / f"{key}_gtFine_instanceIds.png", random_ids(rng, size, range(256)))
        (label_dir / f"{key}_gtFine_polygons.json").write_text("{}")
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return sorted(written, key=lambda s: s.key)


def write_camvid(
    root: Path, split: str = "train", n: int = 3, size: Size = (64, 32), seed: int = 0
) -> list[WrittenSample]:
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        key = f"0001TP_{6690 + 30 * index:06d}"
        rgb, ids = _sample(rng, size, CAMVID_IDS)
        image_path = root / split / f"{key}.png"
        label_path = root / f"{split}annot" / f"{key}.png"
        image = write_rgb(image_path, rgb)
        write_grey(label_path, ids)
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return written


def write_kitti(root: Path, n: int = 3, size: Size = (64, 32), seed: int = 0) -> list[WrittenSample]:
    """training/image_2 + training/semantic (labelIds); semantic_rgb and unlabelled testing/ as decoys."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        key = f"{index:06d}_10"
        rgb, ids = _sample(rng, size, CITYSCAPES_LABEL_IDS)
        image_path = root / "training" / "image_2" / f"{key}.png"
        label_path = root / "training" / "semantic" / f"{key}.png"
        image = write_rgb(image_path, rgb)
        write_grey(label_path, ids)
        write_rgb(root / "training" / "semantic_rgb" / f"{key}.png", random_rgb(rng, size))
        write_rgb(root / "testing" / "image_2" / f"{key}.png", random_rgb(rng, size))
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return written


def write_bdd100k(
    root: Path, split: str = "train", n: int = 3, size: Size = (64, 32), seed: int = 0
) -> list[WrittenSample]:
    """images/10k/<split>/*.jpg + labels/sem_seg/masks/<split>/*.png holding trainIds 0-18 and 255."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        key = f"{rng.integers(0, 2**32):08x}-{index:08x}"
        rgb, ids = _sample(rng, size, BDD_TRAIN_IDS)
        image_path = root / "images" / "10k" / split / f"{key}.jpg"
        label_path = root / "labels" / "sem_seg" / "masks" / split / f"{key}.png"
        image = write_rgb(image_path, rgb)
        write_grey(label_path, ids)
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return sorted(written, key=lambda s: s.key)


def write_gta5(root: Path, n: int = 3, size: Size = (64, 32), seed: int = 0) -> list[WrittenSample]:
    """images/*.png + labels/*.png; labels are palette PNGs (indices = labelIds) like the official release."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tolist()
    written = []
    for index in range(n):
        key = f"{index + 1:05d}"
        rgb, ids = _sample(rng, size, CITYSCAPES_LABEL_IDS)
        image_path = root / "images" / f"{key}.png"
        label_path = root / "labels" / f"{key}.png"
        image = write_rgb(image_path, rgb)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        indexed = Image.frombytes("P", size, ids.tobytes())
        indexed.putpalette(palette)
        indexed.save(label_path)
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return written


def carla_semantic_bgra(tags: np.ndarray) -> np.ndarray:
    """A CARLA-style semantic frame (BGRA): tag in red, other channels set to values that differ from it."""
    blue = (tags.astype(np.int32) + 200) % 256
    green = (tags.astype(np.int32) + 100) % 256
    alpha = np.full_like(blue, 255)
    return np.stack([blue, green, tags, alpha], axis=2).astype(np.uint8)


def write_carla(
    root: Path,
    n: int = 3,
    size: Size = (64, 32),
    seed: int = 0,
    label_mode: str = "bgra",
    rgb_dir: str = "rgb",
    label_dir: str = "semantic",
) -> list[WrittenSample]:
    """RGB frames as BGRA PNGs (as CARLA saves them) and semantic frames with the tag in red.

    ``label_mode``: "bgra" (4-channel, CARLA's Raw save), "bgr" (alpha stripped) or "grey" (tag only).
    """
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        key = f"{1000 + 7 * index:08d}"
        rgb, tags = _sample(rng, size, CARLA_TAGS)
        image_path = root / rgb_dir / f"{key}.png"
        label_path = root / label_dir / f"{key}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        cv2.imwrite(str(image_path), np.concatenate([rgb[:, :, ::-1], alpha], axis=2))
        semantic = {
            "bgra": carla_semantic_bgra(tags),
            "bgr": carla_semantic_bgra(tags)[:, :, :3],
            "grey": tags,
        }
        write_grey(label_path, semantic[label_mode])
        written.append(WrittenSample(key, rgb, tags, image_path, label_path))
    return written


def write_folder(
    root: Path,
    n: int = 3,
    size: Size = (64, 32),
    seed: int = 0,
    image_dir: str = "images",
    label_dir: str = "labels",
    colour_map: Mapping[tuple[int, int, int], int] | None = None,
    image_suffix: str = ".png",
) -> list[WrittenSample]:
    """Generic folders; labels are grey id PNGs, or RGB colour PNGs drawn from ``colour_map`` when given."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(n):
        key = f"frame_{index:03d}"
        rgb = random_rgb(rng, size)
        image_path = root / image_dir / f"{key}{image_suffix}"
        label_path = root / label_dir / f"{key}.png"
        image = write_rgb(image_path, rgb)
        if colour_map is None:
            ids = random_ids(rng, size, range(20))
            write_grey(label_path, ids)
        else:
            colours = list(colour_map)
            choice = rng.integers(0, len(colours), (size[1], size[0]))
            write_rgb(label_path, np.asarray(colours, dtype=np.uint8)[choice])
            ids = np.asarray([colour_map[c] for c in colours], dtype=np.uint8)[choice]
        written.append(WrittenSample(key, image, ids, image_path, label_path))
    return written
