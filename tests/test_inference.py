"""``simreal.inference``: a checkpoint's method, looked up in the registry, says what it can be rebuilt as."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from simreal.errors import CheckpointError, SimrealError
from simreal.inference import LABEL_TO_IMAGE, SEGMENTER, InferenceModelError, inference_kind_of, load_inference
from simreal.synthesize import SynthesisError, load_synthesizer
from simreal.translate import TranslationError, load_translator


def fake_run(tmp_path: Path, payload: dict) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp_path / "checkpoint.pt")
    return tmp_path


def test_kind_comes_from_the_registry_before_any_network_is_built(tmp_path: Path) -> None:
    run = fake_run(tmp_path, {"format": 1, "method_name": "oasis", "method": {}})  # no weights at all
    assert inference_kind_of(run)[1:] == ("oasis", LABEL_TO_IMAGE)
    with pytest.raises(InferenceModelError, match=r"'oasis' run \(label-to-image\), not a segmenter"):
        load_inference(run, kind=SEGMENTER)


def test_unregistered_or_foreign_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    unknown = fake_run(tmp_path / "unknown", {"format": 1, "method_name": "nope", "method": {}})
    with pytest.raises(InferenceModelError, match="'nope', which is not registered"):
        load_inference(unknown)
    foreign = fake_run(tmp_path / "foreign", {"weights": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="is not a simreal checkpoint .*: it holds a dict of weights"):
        load_inference(foreign)


def test_synthesize_and_translate_refuse_methods_of_other_kinds(tmp_path: Path) -> None:
    segmenter = fake_run(tmp_path, {"format": 1, "method_name": "segmenter", "method": {}})
    with pytest.raises(SynthesisError, match="label-to-image"):
        load_synthesizer(segmenter)
    with pytest.raises(TranslationError, match="cannot translate; translation takes .*lcsae.*oasis"):
        load_translator(segmenter, torch.device("cpu"))
    assert issubclass(InferenceModelError, SimrealError)
