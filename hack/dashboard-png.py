#!/usr/bin/env python3
"""Draws the chart's Grafana dashboard from a live Prometheus into a PNG for the docs.

    hack/dashboard-png.sh PROMETHEUS_URL NAMESPACE MODELSERVER SECONDS OUT.png

(the shell wrapper makes a virtualenv with matplotlib). Every panel of
charts/modelserver-operator/files/dashboard.json becomes a plot of its queries over the last
SECONDS, with the dashboard's variables set to NAMESPACE and MODELSERVER and $__rate_interval to
30s. The e2e suite runs it against the Prometheus of the concurrency-autoscaling test when
MODELSERVER_E2E_DASHBOARD_PNG names the output (docs/dashboard.png was made that way).
"""

import json
import math
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "charts/modelserver-operator/files/dashboard.json"


def query_range(prometheus, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{expr}: {body.get('error')}")
    return body["data"]["result"]


def label(metric, legend):
    if legend and "{{" in legend:
        text = legend
        for key, value in metric.items():
            text = text.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
        return text
    return ", ".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or (legend or "value")


def main():
    prometheus, namespace, modelserver, seconds, out = sys.argv[1:6]
    end = time.time()
    start = end - float(seconds)
    step = max(1.0, float(seconds) / 120)
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p.get("targets")]
    columns = 3
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 5.2, rows * 2.6), squeeze=False)
    for index, panel in enumerate(panels):
        axis = axes[index // columns][index % columns]
        for target in panel["targets"]:
            expr = (
                target["expr"]
                .replace("$__rate_interval", "30s")
                .replace("$namespace", namespace)
                .replace("$modelserver", modelserver)
            )
            for series in query_range(prometheus, expr, start, end, step):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) if v not in ("NaN", "+Inf", "-Inf") else float("nan") for _, v in series["values"]]
                axis.plot(xs, ys, linewidth=1.2, label=label(series["metric"], target.get("legendFormat")))
        axis.set_title(panel["title"], fontsize=9)
        axis.tick_params(labelsize=7)
        axis.set_xlabel("seconds", fontsize=7)
        handles, _ = axis.get_legend_handles_labels()
        if handles:
            axis.legend(fontsize=6, loc="upper left")
        else:
            axis.text(0.5, 0.5, "no data (none happened)", ha="center", va="center", fontsize=8,
                      transform=axis.transAxes, color="grey")
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle(
        f"{dashboard.get('title', 'ModelServer')}: {namespace}/{modelserver}, the last {int(float(seconds))} s "
        "(scale-up under load, then a trickle and the scale-down), live Prometheus of make e2e",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(out, dpi=80)
    print(f"dashboard-png: {len(panels)} panels into {out}")


if __name__ == "__main__":
    main()
