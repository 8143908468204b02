"""An independent definition of stream feature views' values, for the
tests: written from the semantics in src/features/window_aggregation.h, not
from its code. Events are (ts_us, {column: value}) in arrival order for one
entity; a read at t covers the events whose tile k satisfies
floor((t - W) / T) <= k <= floor(t / T), among those that were not late."""
import math

US = 1_000_000
M, H = 60 * US, 3600 * US
RUNGS = [US, 5 * US, 10 * US, 30 * US, M, 2 * M, 5 * M, 10 * M, 20 * M, 30 * M, H, 2 * H,
         6 * H, 12 * H, 24 * H]


def parse_duration(text):
    units = {"s": US, "m": 60 * US, "h": 3600 * US, "d": 86400 * US}
    return int(text[:-1]) * units[text[-1]]


def default_tile(window_us):
    best = RUNGS[0]
    for r in RUNGS:
        if r <= window_us // 60:
            best = r
    return best


def ring_slots(windows, lateness_us):
    """Tiles kept per tile size for a view's (window_us, tile_us or 0) pairs."""
    out = {}
    for window_us, tile_us in windows:
        tile = tile_us or default_tile(window_us)
        out[tile] = max(out.get(tile, 0), (window_us + lateness_us) // tile + 2)
    return out


def accepted(events, lateness_us):
    """The events the windows keep (not late), with arrival index."""
    out, latest = [], None
    for i, (ts, values) in enumerate(events):
        if latest is not None and ts < latest - lateness_us:
            continue
        latest = ts if latest is None else max(latest, ts)
        out.append((i, ts, values))
    return out


def micros(v):
    # llround: half away from zero
    x = v * 1e6
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def value(events, t, column, function, window_us=0, tile_us=0, n=0, lateness_us=0, slots=None):
    """The output of one aggregation (a list for last_n) at time t. `slots`:
    how many tiles the ring of this tile size keeps (the most any window of
    the view on that tile size needs; default: this window's)."""
    keep = accepted(events, lateness_us)
    if column == "__ts__":  # the event time itself
        with_col = [(i, ts, ts / 1e6) for i, ts, _ in keep]
    else:
        with_col = [(i, ts, vals[column]) for i, ts, vals in keep
                    if vals.get(column) is not None]
    if function in ("last", "seconds_since", "last_n"):
        ordered = sorted(with_col, key=lambda e: (e[1], e[0]), reverse=True)
        if function == "last_n":
            vals = [v for _, _, v in ordered[:n]]
            return vals + [None] * (n - len(vals))
        if not ordered:
            return None
        return (t - ordered[0][1]) / 1e6 if function == "seconds_since" else ordered[0][2]
    tile = tile_us or default_tile(window_us)
    lo, hi = (t - window_us) // tile, t // tile
    if keep:  # the ring reaches (window + lateness) / tile + 2 tiles back from the latest
        slots = slots or (window_us + lateness_us) // tile + 2
        lo = max(lo, max(ts for _, ts, _ in keep) // tile - slots + 1)
    sel = [v for _, ts, v in with_col if lo <= ts // tile <= hi]
    if function == "count":
        return len(sel)
    if function == "count_distinct":
        return len(set(sel))
    s1 = sum(micros(v) for v in sel)
    if function == "sum":
        return float(s1) / 1e6
    if not sel:
        return None
    cnt = float(len(sel))
    if function == "mean":
        return float(s1) / 1e6 / cnt
    if function == "min":
        return min(sel)
    if function == "max":
        return max(sel)
    if function == "stddev":
        s2 = sum(micros(v) ** 2 for v in sel)
        num = len(sel) * s2 - s1 * s1
        return math.sqrt(max(0.0, float(num) / 1e12 / (cnt * cnt)))
    raise ValueError(function)


def close(got, want, function):
    if want is None or got is None:
        return got is None and want is None
    if function == "count_distinct":  # HyperLogLog: about 3%
        return abs(got - want) <= max(1, 0.05 * want)
    return got == want or abs(got - want) <= 1e-9 * max(1.0, abs(want))
