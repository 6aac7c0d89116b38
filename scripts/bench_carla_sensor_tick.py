"""What the cameras' sensor_tick saves: images rendered and streamed per captured frame, with and without it.

    python scripts/bench_carla_sensor_tick.py [--frames 40] [--capture-every 5] [--size 800x600]

Runs the CARLA source against the fake client of tests/fake_carla.py, which renders (with numpy) and streams an
image only on the ticks a camera's ``sensor_tick`` lets through, as UE does. Images per frame and MB per frame carry
over to a real server; frames/s here measures the fake's CPU rendering, not a GPU's.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's simreal, and the fake client

from fake_carla import FakeCarla, FakeServerConfig  # noqa: E402

from simreal.collect.carla_source import CarlaSettings, CarlaSource  # noqa: E402
from simreal.data.resize import parse_size  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--capture-every", type=int, default=5)
    parser.add_argument("--size", default="800x600")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    logging.disable(logging.WARNING)
    table = Table("sensor_tick", "frames/s (fake)", "images per frame", "MB streamed per frame")
    for sensor_tick in (False, True):
        fake = FakeCarla()
        sys.modules["carla"] = fake.module
        server = fake.add_server(FakeServerConfig())
        settings = CarlaSettings(
            width=width,
            height=height,
            capture_every=args.capture_every,
            sensor_tick=sensor_tick,
            n_vehicles=3,
            n_walkers=0,
            warmup_s=0,
        )
        with CarlaSource(settings) as source:
            frames = source.frames()
            next(frames)  # past the spawn
            sent, began = server.images_sent, time.perf_counter()
            n = sum(1 for _ in itertools.islice(frames, args.frames))
            seconds = time.perf_counter() - began
            sent = server.images_sent - sent
        server.wait_for_deliveries()
        mb = sent * width * height * 4 / n / 1e6
        table.add_row(str(sensor_tick), f"{n / seconds:.1f}", f"{sent / n:.1f}", f"{mb:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
