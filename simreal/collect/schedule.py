"""Which (town, weather) conditions each CARLA stream drives through, and for how many kept frames each.

Every stream cycles through all conditions, starting at its own offset, so the store gets every town and weather
even from a single server, and parallel servers start in different places. A stream's expected share of the
frame budget is split over the conditions as evenly as integers allow; conditions are ordered town by town so
a weather change (cheap) happens more often than a map load (slow). Sources hand out frames as they are asked
for, so a fast server may go round its cycle again: the split is exact for one server, even on average for many.
"""

from __future__ import annotations

Step = tuple[str, str, int]  # (town, weather, kept frames before moving on; 0 = stay)


def conditions(towns: list[str], weathers: list[str]) -> list[tuple[str, str]]:
    """Every (town, weather) pair, town by town."""
    return [(town, weather) for town in towns for weather in weathers]


def town_key(name: str) -> str:
    """The town a map name denotes: ``/Game/Carla/Maps/Town10HD_Opt``, ``Carla/Maps/Town10HD`` -> ``Town10HD``.

    ``_Opt`` maps are the layered variants of the same town (same roads, same spawn points).
    """
    base = name.rsplit("/", 1)[-1]
    return base.removesuffix("_Opt")


def plan_schedules(
    towns: list[str], weathers: list[str], frames: int, streams: int, frames_per_condition: int = 0
) -> list[list[Step]]:
    """One schedule per stream; ``frames_per_condition > 0`` fixes the count instead of splitting ``frames``."""
    pairs = conditions(towns, weathers)
    plans = []
    for stream in range(streams):
        offset = stream * len(pairs) // streams
        ordered = pairs[offset:] + pairs[:offset]
        if frames_per_condition > 0:
            counts = [frames_per_condition] * len(ordered)
        else:
            share = frames // streams + (stream < frames % streams)
            counts = [share // len(ordered) + (j < share % len(ordered)) for j in range(len(ordered))]
        steps = [(town, weather, count) for (town, weather), count in zip(ordered, counts, strict=True) if count > 0]
        if len(steps) <= 1:  # one condition (or a share too small to split): stay in the first one
            steps = [(*ordered[0], 0)]
        plans.append(steps)
    return plans


def schedule_position(schedule: list[Step], kept: int) -> tuple[int, int]:
    """(step, frames kept in it) after ``kept`` frames of the cyclic ``schedule``: where a continued stream resumes."""
    quotas = [int(n) for *_, n in schedule]
    if kept <= 0 or 0 in quotas:  # a step without a quota is held forever: nothing to advance
        return 0, 0
    kept %= sum(quotas)
    for step, quota in enumerate(quotas):
        if kept < quota:
            return step, kept
        kept -= quota
    return 0, 0
