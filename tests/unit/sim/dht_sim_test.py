#!/usr/bin/python3
"""dht_sim_test.py: correctness properties of build/dht-sim at small N (no timing assertions).

usage: dht_sim_test.py PATH-TO-DHT-SIM CASE
"""
import json
import subprocess
import sys

FIELDS = ["nodes", "lookups", "churn", "success_rate", "hops_p50", "hops_p99", "latency_ms_p50",
          "latency_ms_p99", "messages_per_lookup", "wall_seconds", "peak_rss_bytes"]


def run(sim, *args, expect_rc=0):
    p = subprocess.run([sim, *args], capture_output=True, text=True, timeout=280)
    if p.returncode != expect_rc:
        sys.stderr.write(p.stderr)
        raise AssertionError(f"dht-sim {' '.join(args)}: exit {p.returncode}, wanted {expect_rc}")
    if expect_rc != 0:
        return p
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, f"want exactly one stdout line, got {p.stdout!r}"
    out = json.loads(lines[0])
    assert sorted(out) == sorted(FIELDS), f"fields: {sorted(out)}"
    sys.stderr.write(f"{' '.join(args)} -> {lines[0]}\n")
    return out


def check_shape(out, nodes, lookups):
    assert out["nodes"] == nodes and out["lookups"] == lookups, out
    assert 0.0 <= out["success_rate"] <= 1.0, out
    assert 0 <= out["hops_p50"] <= out["hops_p99"], out
    assert 0 <= out["latency_ms_p50"] <= out["latency_ms_p99"], out
    assert out["messages_per_lookup"] > 0, out
    assert out["peak_rss_bytes"] > 0, out


def main():
    sim, case = sys.argv[1], sys.argv[2]
    if case == "basic":
        out = run(sim, "--nodes", "200", "--lookups", "100", "--seed", "1")
        check_shape(out, 200, 100)
        assert out["success_rate"] == 1.0, out
        assert out["churn"] == 0, out
        # 200 nodes are 10 k-buckets wide: a get needs few rounds.
        assert 1 <= out["hops_p99"] <= 8, out
    elif case == "deterministic":
        a = run(sim, "--nodes", "150", "--lookups", "60", "--seed", "7", "--loss", "0.02",
                "--latency-ms", "30", "--churn", "0.1")
        b = run(sim, "--nodes", "150", "--lookups", "60", "--seed", "7", "--loss", "0.02",
                "--latency-ms", "30", "--churn", "0.1")
        for k in ("wall_seconds", "peak_rss_bytes"):
            a.pop(k), b.pop(k)
        assert a == b, f"same seed, different results:\n{a}\n{b}"
        c = run(sim, "--nodes", "150", "--lookups", "60", "--seed", "8", "--loss", "0.02",
                "--latency-ms", "30", "--churn", "0.1")
        c.pop("wall_seconds"), c.pop("peak_rss_bytes")
        assert c != a, "another seed gave the very same run"
    elif case == "churn":
        out = run(sim, "--nodes", "300", "--lookups", "200", "--churn", "0.2", "--seed", "3")
        check_shape(out, 300, 200)
        assert out["churn"] == 0.2, out
        assert out["success_rate"] >= 0.95, out
    elif case == "lossy":
        out = run(sim, "--nodes", "200", "--lookups", "100", "--latency-ms", "50", "--loss",
                  "0.01", "--seed", "4")
        check_shape(out, 200, 100)
        assert out["success_rate"] >= 0.97, out
        # one-way median 50 ms: a get with at least one round trip takes at least ~2 * 50 * 0.3
        assert out["latency_ms_p99"] >= 30, out
    elif case == "node-lookups":
        out = run(sim, "--nodes", "200", "--lookups", "100", "--node-lookups", "--seed", "5")
        check_shape(out, 200, 100)
        assert out["success_rate"] == 1.0, out
    elif case == "crypto":
        out = run(sim, "--nodes", "60", "--lookups", "30", "--crypto", "--seed", "6")
        check_shape(out, 60, 30)
        assert out["success_rate"] == 1.0, out
    elif case == "bad-args":
        run(sim, "--nodes", "0", "--lookups", "5", expect_rc=2)
        run(sim, "--nodes", "10", expect_rc=2)
        run(sim, "--nodes", "10", "--lookups", "5", "--loss", "1.5", expect_rc=2)
        run(sim, "--nodes", "10", "--lookups", "5", "--bogus", expect_rc=2)
        run(sim, "--nodes", "abc", "--lookups", "5", expect_rc=2)
    else:
        raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main()
