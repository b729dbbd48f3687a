"""What `make bench` prints (bench.py measures): the figures as a table, the targets
missed (bench_ceilings.py judges them), and last one JSON object with every figure."""

from __future__ import annotations

import json
from typing import Any

from outpost.dev import bench_ceilings


def report(out: dict[str, Any], with_targets: bool) -> None:
    """`with_targets`: a full run (the fairness run alone has no targets)."""
    if with_targets:
        out["targets"] = bench_ceilings.verdicts(out)
        out["missed"] = bench_ceilings.missed(out["targets"])
    print(table({k: v for k, v in out.items() if k not in ("targets", "missed")}))
    if with_targets:
        print("missed targets:", ", ".join(out["missed"]) or "none")
    print(json.dumps(out))


def table(out: dict[str, Any]) -> str:
    rows = [f"{k:<28} {f'{v:.1f}' if isinstance(v, float) else v}" for k, v in out.items()]
    return "\n".join(["figure                       value", "-" * 40, *rows])


def publish_report(
    flat: dict[str, Any], batched: dict[str, Any], lat: dict[str, Any]
) -> dict[str, Any]:
    """The publish and latency figures from the load runs (bench.publish_figures)."""
    return {
        "publish_per_s": flat["per_s"],
        "publish_p99_ms": flat["p99_ms"],
        "publish_batch_per_s": batched["per_s"],
        "latency_rate_per_s": lat["half"]["rate"],
        "latency_p50_ms": lat["half"]["p50"],
        "latency_p99_ms": lat["half"]["p99"],
        "latency_publish_call_p99_ms": lat["half"]["api"],  # of that, the POST itself
        # the same at a tenth of the rate: what the pipeline adds when the 2 cores are not
        # shared by load generator, API, worker, endpoint and Redis all at once
        "latency_tenth_rate_per_s": lat["tenth"]["rate"],
        "latency_tenth_p50_ms": lat["tenth"]["p50"],
        "latency_tenth_p99_ms": lat["tenth"]["p99"],
    }
