"""Statistics, the published baselines and the results table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.cpu import GROUPS


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class Row:
    metric: str
    key: str  # the key of the measured value in the results
    unit: str
    nova: float | None = None  # the published Nova 34 figure, if there is one
    goal: float | None = None
    higher_is_better: bool = True
    note: str = ""


# From issue 2: Nova 34 with Placement and its fake driver on a machine like these.
ROWS = [
    Row("create to ACTIVE, N=200 C=20", "create_200x20_rate", "servers/s", 1.87, 50),
    Row("  latency p50", "create_200x20_p50", "s", None, None, False),
    Row("  latency p99", "create_200x20_p99", "s", 23.9, 1.0, False),
    Row("delete to gone, N=200 C=20", "delete_200x20_rate", "servers/s", None, None),
    Row("create to ACTIVE, N=100 C=10", "create_100x10_rate", "servers/s", 2.5, None),
    Row("  latency p50", "create_100x10_p50", "s", 3.5, None, False),
    Row("  latency p99", "create_100x10_p99", "s", 9.4, None, False),
    Row("delete to gone, N=100 C=10", "delete_100x10_rate", "servers/s", 3.8, None),
    Row("token issue (HTTP, C=4)", "token_issue_rate", "tokens/s"),
    Row("token validate (HTTP, C=20)", "token_validate_rate", "tokens/s", None, 5000),
    Row("token validate (in-process)", "token_validate_inproc_rate", "tokens/s", None, 5000),
    Row("HTTP floor: GET /compute/v2.1 (C=20)", "http_floor_rate", "requests/s",
        note="baseline measured in the same run"),
    Row("  server cost in floor round trips", "create_200x20_floor_cost", "round trips",
        higher_is_better=False, note="HTTP floor rate / create rate, both from this run"),
    Row("peak RSS during the server runs", "peak_rss_servers_mb", "MB", 1350, 250, False,
        note="maximum, not a median; 'runs' is the peak so far after each repetition. "
             "Nova: 1,350-1,580 MB for five control services alone"),
    Row("peak RSS, whole bench (with token issue)", "peak_rss_mb", "MB", 1350, 250, False),
]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or value != value:  # None or nan
        return "-"
    if unit == "s":
        return f"{value:.3f}"
    if unit in ("ports", "addresses"):  # counts
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _ratio(row: Row, value: float | None) -> str:
    if row.nova is None or value is None or value != value or value == 0:
        return "-"
    ratio = value / row.nova if row.higher_is_better else row.nova / value
    return f"{ratio:,.1f}x"


def _goal(row: Row, value: float | None) -> str:
    if row.goal is None or value is None or value != value:
        return "-"
    op = ">=" if row.higher_is_better else "<"
    met = value >= row.goal if row.higher_is_better else value < row.goal
    return f"{op} {row.goal:g} {'met' if met else 'NOT met'}"


def _render(header: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), *(fmt.format(*cells) for cells in lines)])


def table(results: dict[str, float], runs: dict[str, list[float]], markdown: bool) -> str:
    header = ["metric", "Cirrus (median)", "runs", "unit", "Nova 34", "Cirrus vs Nova", "goal"]
    lines = []
    for row in ROWS:
        value = results.get(row.key)
        each = ", ".join(_fmt(v, row.unit) for v in runs.get(row.key, []))
        lines.append([row.metric, _fmt(value, row.unit), each, row.unit,
                      _fmt(row.nova, row.unit), _ratio(row, value), _goal(row, value)])
    return _render(header, lines, markdown)


def comparison_rows(scenarios: str) -> list[Row]:
    """What both targets measure, for each NxC scenario, then the floor and the memory."""
    rows = []
    for tag in (s.strip() for s in scenarios.split(",") if s.strip()):
        n, c = tag.split("x")
        rows += [Row(f"create to ACTIVE, N={n} C={c}", f"create_{tag}_rate", "servers/s"),
                 Row("  latency p50", f"create_{tag}_p50", "s", higher_is_better=False),
                 Row("  latency p99", f"create_{tag}_p99", "s", higher_is_better=False),
                 Row(f"delete to gone, N={n} C={c}", f"delete_{tag}_rate", "servers/s")]
    first = scenarios.split(",")[0].strip()
    return rows + [
        Row("HTTP floor: GET /compute/v2.1 (C=20)", "http_floor_rate", "requests/s"),
        Row("  server cost in floor round trips", f"create_{first}_floor_cost", "round trips",
            higher_is_better=False),
        Row("peak RSS during the server runs (multi-process: sum of its processes)",
            "peak_rss_servers_mb", "MB", higher_is_better=False),
        Row("PSS after the server runs (shared pages counted once)", "pss_servers_mb", "MB",
            higher_is_better=False),
        Row("CPU while creating and deleting (2 cores in all)", "", ""),
        *(Row(f"  {group}", f"cores:{group}", "cores", higher_is_better=False)
          for group in GROUPS),
        Row("CPU per server, create + delete: Cirrus", "cpu_ms_per_server:Cirrus", "ms",
            higher_is_better=False),
        Row("  with PostgreSQL and RabbitMQ", "cpu_ms_per_server:services", "ms",
            higher_is_better=False),
    ]


def ports_rows(fill: str, race: str, fill_cidr: str, race_cidr: str) -> list[Row]:
    """The ports suite's figures (bench/ports.py), for each target."""
    n, c = fill.split("x")
    race_n, race_c = race.split("x")
    return [
        Row(f"port create, N={n} C={c}, IPAM picks (a {fill_cidr})", "ports_create_rate",
            "ports/s"),
        Row("  latency p50", "ports_create_p50", "s", higher_is_better=False),
        Row("  latency p99", "ports_create_p99", "s", higher_is_better=False),
        Row("  p50 of the first 10% created", "ports_create_p50_first", "s",
            higher_is_better=False),
        Row("  p50 of the last 10% created", "ports_create_p50_last", "s",
            higher_is_better=False),
        Row(f"list the network's {n} ports (one GET)", "ports_list_seconds", "s",
            higher_is_better=False),
        Row("duplicate addresses (sum over all runs)", "ports_duplicates", "addresses",
            higher_is_better=False),
        Row(f"race: {race_n} creates at C={race_c} on a {race_cidr}", "", ""),
        Row("  created", "ports_race_created", "ports"),
        Row("  refused: 409 No more IP addresses available", "ports_race_refused", "ports"),
        Row("  wall time of the race", "ports_race_seconds", "s", higher_is_better=False),
        Row("  latency p50 of a refusal", "ports_race_refusal_p50", "s",
            higher_is_better=False),
        Row(f"port delete, N={n} C={c}", "ports_delete_rate", "ports/s"),
        Row("HTTP floor after the port runs: GET /compute/v2.1 (C=20)", "ports_floor_rate",
            "requests/s"),
        Row("  port create cost in floor round trips", "ports_floor_cost", "round trips",
            higher_is_better=False),
        Row("CPU while creating and deleting ports (2 cores in all)", "", ""),
        *(Row(f"  {group}", f"ports_cores:{group}", "cores", higher_is_better=False)
          for group in GROUPS),
        Row("CPU per port, create + delete: Cirrus", "cpu_ms_per_port:Cirrus", "ms",
            higher_is_better=False),
        Row("  with PostgreSQL and RabbitMQ", "cpu_ms_per_port:services", "ms",
            higher_is_better=False),
        Row("peak RSS up to the end of the port runs", "peak_rss_ports_mb", "MB",
            higher_is_better=False),
    ]


def comparison(aio: dict, mp: dict, rows: list[Row], markdown: bool,
               names: tuple[str, str, str] = ("all-in-one", "multi-process",
                                              "multi-process / all-in-one")) -> str:
    """Both targets side by side (`names`: their columns' and the ratio's); the ratio is
    multi-process / all-in-one for every row (so above 1 is faster for rates, slower for
    latencies, bigger for memory)."""
    header = ["metric", "unit", names[0], "runs", names[1], "runs", names[2]]
    lines = []
    for row in rows:
        values = [t.get("results", {}).get(row.key) for t in (aio, mp)]
        each = [", ".join(_fmt(v, row.unit) for v in t.get("runs", {}).get(row.key, []))
                for t in (aio, mp)]
        a, b = values
        # No ratio to a nan or to nothing (the all-in-one's idle PostgreSQL, say).
        usable = None not in values and a == a and b == b and abs(a) >= 0.005
        lines.append([row.metric, row.unit, _fmt(a, row.unit), each[0], _fmt(b, row.unit),
                      each[1], f"{b / a:.2f}" if usable else "-"])
    return _render(header, lines, markdown)
