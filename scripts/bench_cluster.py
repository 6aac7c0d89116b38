"""Collection into an s3:// store on a Ray cluster of 1 and 2 nodes of this machine (the second in its own mount
namespace, so it shares nothing but the network with the head), against a local moto S3 server.

    python scripts/bench_cluster.py [--frames 200] [--size 256x128] [--cpus-per-node 1]

Each node gets ``--cpus-per-node`` CPUs and runs that many procedural streams; filtering is off (every rendered frame
is written), so frames/s counts frames rendered, written to the bucket and committed. Needs root and ``unshare``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scripts.local_cluster import local_cluster, s3_server, why_no_second_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    reason = why_no_second_node()
    if reason:
        raise SystemExit(f"bench_cluster: {reason}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    table = Table("nodes", "streams", "frames", "seconds", "frames/s", "CPUs per node (probe)")
    with tempfile.TemporaryDirectory() as tmp, s3_server("bench") as s3_env:
        os.environ.update(s3_env)
        for nodes in (1, 2):
            private = Path(tmp) / f"private{nodes}"
            private.mkdir()
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            with local_cluster(nodes, private, env, Path(tmp) / f"logs{nodes}", args.cpus_per_node) as address:
                streams = nodes * args.cpus_per_node
                frames, seconds, per_node = _collect(address, f"s3://bench/{uuid.uuid4().hex[:8]}.zarr", streams, args)
                table.add_row(str(nodes), str(streams), str(frames), f"{seconds:.1f}", f"{frames / seconds:.1f}",
                              per_node)  # fmt: skip
    Console().print(table)


def _collect(address: str, url: str, streams: int, args: argparse.Namespace) -> tuple[int, float, str]:
    import ray

    from pipelines.collect import CollectJob, run_collect
    from simreal.collect.collector import SourceSpec
    from simreal.collect.filters import FilterConfig
    from simreal.data.convert import FrameSpec
    from simreal.data.resize import parse_size

    os.environ["RAY_AUTH_MODE"] = "disabled"
    width, height = parse_size(args.size)
    params = dict(town="Town10HD", weather="ClearNoon", seed=0, width=width, height=height, capture_every=2)
    job = CollectJob(
        out=url,
        frames=args.frames,
        sources=[SourceSpec("procedural", dict(params), stream=i) for i in range(streams)],
        frame_spec=FrameSpec(size=(width, height)),
        filter=FilterConfig(enabled=()),
    )
    ray.init(address=address, logging_level="ERROR")
    try:
        placement = _stream_nodes(streams)
        result = run_collect(job)
    finally:
        ray.shutdown()
    return result.frames, result.seconds, placement


def _stream_nodes(streams: int) -> str:
    """Which nodes the streams' CPUs come from: one 1-CPU probe task per stream, all held at once."""
    import ray

    @ray.remote(num_cpus=1)
    def node_of() -> str:
        import time

        time.sleep(1.0)
        return ray.get_runtime_context().get_node_id()[:8]

    nodes = ray.get([node_of.remote() for _ in range(streams)])
    return ", ".join(f"{node}: {nodes.count(node)}" for node in sorted(set(nodes)))


if __name__ == "__main__":
    main()
