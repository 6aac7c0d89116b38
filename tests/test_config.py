"""The typed configs of collect, study, demo and bench: Hydra refuses wrong types and unknown keys where they enter
(through the same compose functions the CLI uses), presets still select their group option, and a user's own
benchmark definition is typed by the same schema as the built-in one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf
from typer.testing import CliRunner

from simreal.benchmark.config import BenchConfig
from simreal.benchmark.definition import BenchConfigError, compose_bench_config, planned_mixes
from simreal.cli.main import app
from simreal.collect.config import CollectConfig, compose_collect_config
from simreal.demo import DemoConfig, compose_demo_config
from simreal.errors import ConfigError
from simreal.study import StudyConfig, compose_study_config, selected_translators

REPO = Path(__file__).resolve().parents[1]


def compose_default_bench(overrides: list[str]) -> DictConfig:
    return compose_bench_config("default", overrides)


CONFIGS = {
    "collect": (compose_collect_config, CollectConfig),
    "study": (compose_study_config, StudyConfig),
    "demo": (compose_demo_config, DemoConfig),
    "bench": (compose_default_bench, BenchConfig),
}


@pytest.mark.parametrize(
    ("config", "wrong_type", "unknown_key"),
    [
        ("collect", "camera.fov=wide", "camera.fovv=90"),
        ("study", "translate.styles=many", "translators.runs.sae.lambda_outr=1"),
        ("demo", "frames.sim=lots", "framez=3"),
        ("bench", "mixes.sim_only.parts.sim=half", "mixes.sim_only.colour=red"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_naming_the_key(
    config: str, wrong_type: str, unknown_key: str
) -> None:
    compose, schema = CONFIGS[config]
    assert OmegaConf.get_type(compose([])) is schema
    for override in (wrong_type, unknown_key):
        with pytest.raises(ConfigError, match=re.escape(override.partition("=")[0])):
            compose([override])


def test_values_arrive_with_their_types() -> None:
    cfg = compose_collect_config(["camera.fov=100", "frames=7", "servers=[a:2000,b:3000]", "camera.sensor_tick=false"])
    assert cfg.camera.fov == 100.0 and isinstance(cfg.camera.fov, float)
    assert cfg.frames == 7 and cfg.camera.sensor_tick is False and list(cfg.servers) == ["a:2000", "b:3000"]
    bench = compose_default_bench(["ray.gpus_per_run=1", "segmenter.encoder_weights=null"])
    assert isinstance(bench.ray.gpus_per_run, float) and bench.segmenter.encoder_weights is None


@pytest.mark.parametrize(
    ("config", "preset", "key", "value"),
    [
        ("study", "tiny", "sim.frames", 8),
        ("study", "small", "sim.frames", 600),
        ("demo", "tiny", "frames.sim", 8),
        ("demo", "small", "frames.sim", 200),
        ("bench", "outer", "segmenter.preset", "outer"),
        ("bench", "tiny", "segmenter.overrides.steps", 30),
    ],
)
def test_preset_selects_its_group_option_and_overrides_come_after(
    config: str, preset: str, key: str, value: object
) -> None:
    compose, _ = CONFIGS[config]
    cfg = compose([f"preset={preset}"])
    assert cfg.preset == preset and OmegaConf.select(cfg, key) == value
    assert OmegaConf.select(compose([f"preset={preset}", f"{key}={value}1"]), key) == type(value)(f"{value}1")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        compose(["preset=huge"])


def test_study_translator_entries_are_typed_with_defaults_for_the_keys_they_leave_out() -> None:
    cfg = compose_study_config(["translators.runs.lcsae_out1_in5.lambda_inner=4"])
    translators = {t.name: t for t in selected_translators(cfg.translators.runs, None)}
    assert translators["sae"].lambda_outer == 0.0 and translators["sae"].outer_loss == "ce"
    assert translators["lcsae_out1_in5"].lambda_inner == 4.0
    assert translators["lcsae_out2_in2_wce"].class_weights is True
    wrong = compose_study_config(["translators.runs.sae.method=cyclegan"])
    with pytest.raises(ConfigError, match="translators.runs.sae: method must be one of sae, lcsae, cut"):
        selected_translators(wrong.translators.runs, None)


def test_the_cli_says_which_key_is_wrong_in_one_line() -> None:
    result = CliRunner().invoke(app, ["study", "seed=abc"])
    assert result.exit_code == 1 and "seed=abc" in result.output and "Traceback" not in result.output


@pytest.fixture
def config_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    monkeypatch.setenv("SIMREAL_CONFIG_DIR", str(configs))
    return configs / "bench"


USER_BENCH = """\
# @package _global_
defaults:
  - /schema/bench@_here_
  - _self_
name: mine
preset: null
out: runs/bench/mine
eval: null
seeds: 2
stores: {sim: null, real: null}
mixes:
  sim_only: {parts: {sim: 1}}
  half: {label: half and half, parts: {sim: 1, real: 1}}
only: null
baselines: {sim: sim_only}
segmenter: {preset: tiny, encoder_weights: null, overrides: {steps: 2}}
ray: {address: null, num_cpus: null, cpus_per_run: 1, gpus_per_run: 0}
"""


def test_a_users_bench_definition_is_typed_by_the_same_schema(config_copy: Path) -> None:
    (config_copy / "mine.yaml").write_text(USER_BENCH)
    cfg = compose_bench_config("mine", ["sim=/data/sim.zarr", "seeds=3"])
    assert OmegaConf.get_type(cfg) is BenchConfig and cfg.seeds == 3 and cfg.stores.sim == "/data/sim.zarr"
    mixes, notes = planned_mixes(cfg)
    assert [(mix.name, mix.label, mix.parts) for mix in mixes] == [("sim_only", "sim_only", {"sim": 1.0})]
    assert notes == ["half (half and half): skipped, no store given for real (pass real=STORE)"]
    with pytest.raises(ConfigError, match="seeds"):
        compose_bench_config("mine", ["seeds=abc"])
    (config_copy / "typo.yaml").write_text(USER_BENCH.replace("seeds: 2", "seedz: 2"))
    with pytest.raises(ConfigError, match="seedz"):
        compose_bench_config("typo")


def test_a_bench_definition_without_the_schema_or_with_keys_unset_is_refused(config_copy: Path) -> None:
    (config_copy / "untyped.yaml").write_text("name: untyped\nstores: {sim: null}\nmixes: {}\n")
    with pytest.raises(BenchConfigError, match=re.escape("list `- /schema/bench@_here_` first")):
        compose_bench_config("untyped")
    (config_copy / "partial.yaml").write_text(USER_BENCH.replace("seeds: 2\n", "").replace("ray: {", "#"))
    with pytest.raises(BenchConfigError, match=r"partial.yaml does not set ray, seeds"):
        compose_bench_config("partial")
