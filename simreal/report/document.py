"""The score report as format-neutral sections (text, tables, figures), built from a ``scores.json`` dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FID_MIN_IMAGES = 2048  # below this FID is biased upwards and not comparable to published numbers
NOT_COMPUTED = "not computed"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def build_sections(scores: dict[str, Any]) -> list[Section]:
    stores = scores["stores"]
    reference = scores["reference"]
    skipped = scores.get("fid_skipped")
    overview = Section(
        "Overview",
        paragraphs=[
            f"Reference (real) store: `{reference['path']}` ({reference['images']} images). "
            f"Held-out segmenter: `{scores['segmenter']['path']}`.",
            *([f"**FID/KID and object-level KID/FID not computed:** {skipped}"] if skipped else []),
            *[f"**Warning:** {text}" for text in scores.get("warnings", [])],
        ],
        tables=[
            Table(
                ["store", "images", "FID", "KID (x1e3)", "pixel acc", "mean acc", "mIoU"],
                [
                    [
                        store["name"],
                        str(store["images"]),
                        fmt(store["fid"], 2) if store["fid"] is not None else NOT_COMPUTED,
                        _kid_cell(store["kid"]),
                        fmt(store["consistency"]["pixel_acc"]),
                        fmt(store["consistency"]["mean_acc"]),
                        fmt(store["consistency"]["miou"]),
                    ]
                    for store in stores
                ],
            )
        ],
    )
    sections = [overview, *_gap_section(scores), _per_class_section(scores), _objects_section(scores)]
    for store in stores:
        sections.append(
            Section(
                f"Samples: {store['name']}",
                paragraphs=[f"`{store['path']}`; columns: {', '.join(store['grid_columns'])}."],
                figures=[(f"{store['name']} samples", store["figures"]["grid"])],
            )
        )
    sections.append(_method_section(scores))
    return sections


def _gap_section(scores: dict[str, Any]) -> list[Section]:
    gap = scores.get("gap")
    if not gap or not gap["floors"]:
        return []
    fid = {store["name"]: store["fid"] for store in scores["stores"]}
    floors = gap["floors"]
    rows = [
        [name, fmt(fid[name], 2), *[_share(shares[floor]) for floor in floors]]
        for name, shares in gap["closed"].items()
    ]
    return [
        Section(
            "Share of the FID gap closed",
            paragraphs=[
                f"(FID of `{gap['raw']}` - FID) / (FID of `{gap['raw']}` - FID of the floor): 100% reaches the floor, "
                f"0% is no better than the untranslated frames (FID {fmt(fid[gap['raw']], 2)}). Floors: "
                + ", ".join(f"`{floor}` (FID {fmt(fid[floor], 2)})" for floor in floors)
                + "."
            ],
            tables=[Table(["store", "FID", *[f"gap closed to {floor}" for floor in floors]], rows)],
        )
    ]


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _scaled(value: float | None) -> float | None:
    return None if value is None else value * 1e3


def _kid_cell(kid: dict[str, Any] | None) -> str:
    if kid is None:
        return NOT_COMPUTED
    mean = fmt(_scaled(kid["mean"]), 2)
    return mean if kid["std"] is None else f"{mean} ± {fmt(_scaled(kid['std']), 2)}"


def _per_class_section(scores: dict[str, Any]) -> Section:
    stores = scores["stores"]
    classes = list(dict.fromkeys(name for store in stores for name in store["consistency"]["classes"]))
    rows = [[name, *[fmt(store["consistency"]["per_class_iou"].get(name)) for store in stores]] for name in classes]
    notes = [f"{store['name']}: {store['consistency']['protocol']}" for store in stores]
    merges = [
        f"{store['name']}: predicted {a} scored as {b}"
        for store in stores
        for a, b in store["consistency"]["merged"].items()
    ]
    return Section(
        "Label consistency per class (IoU)",
        paragraphs=[
            "Scored classes: " + "; ".join(notes) + ".",
            *(["Merges: " + "; ".join(merges) + "."] if merges else []),
            "n/a: the class is neither in the labels nor in the predictions.",
        ],
        tables=[Table(["class", *[store["name"] for store in stores]], rows)],
        figures=[("per-class IoU", scores["figures"]["iou_chart"])],
    )


def _objects_section(scores: dict[str, Any]) -> Section:
    settings = scores["settings"]["objects"]
    buckets = ["all", "small", "medium", "large"]
    rows = []
    for store in scores["stores"]:
        cells = []
        for bucket in buckets:
            entry = store["objects"][bucket] if store["objects"] is not None else None
            if entry is None:  # FID skipped: no crops were cut
                cells.append(NOT_COMPUTED)
                continue
            kid = _kid_cell(entry["kid"]) if entry["kid"] is not None else NOT_COMPUTED
            fid = f"; FID {fmt(entry['fid'], 2)}" if entry["fid"] is not None else ""
            cells.append(f"{kid}{fid} ({entry['crops']} / {entry['reference_crops']})")
        rows.append([store["name"], *cells])
    return Section(
        "Object-level realism",
        paragraphs=[
            *(["Not computed in this run: FID was skipped (see Overview)."] if scores.get("fid_skipped") else []),
            "KID x 1000 (mean ± std over random subsets) of object crops (connected components of the classes "
            f"{', '.join(settings['classes'])}) against crops of the reference store, per size bucket; in "
            "brackets: crops in the scored store / in the reference. Buckets by mask area at 512x256 "
            f"(scaled to the frame area): small < {settings['small_below']} px, large > {settings['large_above']} px. "
            f"Components whose box is under {settings['min_side']} px on its long side are dropped (not upsampled "
            f"into blur); crops keep a {settings['context']:.0%} context margin and their aspect ratio (padded to a "
            f"square) and are resized to {settings['crop_size']}x{settings['crop_size']}. KID needs at least "
            f"{settings['min_crops']} crops on both sides; FID is added only from {settings['fid_min_crops']} crops "
            "(below that its 2048-d covariance estimate is noise). Buckets hold different numbers of crops, so "
            "their scores are not comparable with each other.",
        ],
        tables=[Table(["store", *buckets], rows)],
    )


def _method_section(scores: dict[str, Any]) -> Section:
    settings = scores["settings"]
    weights = settings["inception_weights"]
    return Section(
        "Method",
        paragraphs=[
            f"FID and KID use pytorch-fid's Inception ({settings['inception_dims']}-d features) on uint8 images "
            "scaled to [0, 1] and resized "
            "by the network to 299x299 (bilinear). KID is the unbiased polynomial-kernel MMD (degree 3) averaged "
            f"over {settings['kid_subsets']} random subsets of min(1000, n_scored, n_reference) images. "
            + (f"Inception weights: `{weights}`." if weights else "Not computed in this run (see Overview)."),
            "Label consistency: the held-out segmenter segments every image; pixel accuracy, mean class accuracy "
            "and mIoU come from one confusion matrix over the whole store (LC-SAE report, section 4.3).",
            f"FID on fewer than {FID_MIN_IMAGES} images is biased upwards and not comparable to published numbers.",
        ],
    )
