"""Checks a Jepsen run saved by run.py: no lost writes, identical final states, no panic.

    python3 tests/jepsen/check.py target/jepsen/<run>
"""
import glob
import json
import os
import sys


def main(run):
    history = [json.loads(l) for l in open(os.path.join(run, "history.jsonl"))]
    final = json.load(open(os.path.join(run, "final.json")))
    problems = []

    # The node index -> origin id, from each node's own status.
    origin = {int(i): f["status"]["id"] for i, f in final.items()}

    # Expected: per (node, vertex) the last acknowledged write; a later write whose reply
    # was lost (the node was killed mid-request) may have landed too, so it is accepted.
    expected = {}
    for e in history:
        key = (e["node"], e["vertex"])
        if e["ok"]:
            expected[key] = {"acked": e["q"], "later": []}
        elif key in expected:
            expected[key]["later"].append(e["q"])
        else:
            expected.setdefault(key, {"acked": None, "later": []})["later"].append(e["q"])
    acked = sum(1 for e in history if e["ok"])

    checked = 0
    for i, f in final.items():
        recs = {r["origin"]: {v: q for v, q in r["queue"]} for r in f["records"]}
        for (node, vertex), want in expected.items():
            got = recs.get(origin[node], {}).get(vertex)
            allowed = ([want["acked"]] if want["acked"] is not None else [None]) + want["later"]
            if got not in allowed:
                problems.append(f"node {i}: origin {node} vertex {vertex} holds {got}, "
                                f"expected {want['acked']} (or a later unacknowledged write)")
            checked += 1

    views = {i: json.dumps([f["status"]["routes"], f["status"]["queue"]]) for i, f in final.items()}
    if len(set(views.values())) != 1:
        problems.append(f"final routes/queues differ: {views}")
    records = {i: json.dumps(f["records"], sort_keys=True) for i, f in final.items()}
    if len(set(records.values())) != 1:
        problems.append("final record sets differ between nodes")

    # A daemon killed for good stops counting within 5 s on every other node, and the
    # live daemons' records (their acknowledged writes) are exactly as before.
    dep_path = os.path.join(run, "departed.json")
    if os.path.exists(dep_path):
        dep = json.load(open(dep_path))
        if dep["expired_after_s"] is None or dep["expired_after_s"] > 5.0:
            problems.append(f"departed daemon {dep['node']}: record withdrawn after "
                            f"{dep['expired_after_s']} s (target 5 s)")
        before = {r["origin"]: r for f in final.values() for r in f["records"]}
        for i, recs in dep["records"].items():
            for r in recs:
                if r["origin"] != dep["origin"] and r != before.get(r["origin"]):
                    problems.append(f"node {i}: live origin {r['origin'][:8]} changed after the departure")
        print(f"checker: departed daemon {dep['node']} withdrawn after {dep['expired_after_s']} s")

    for path in glob.glob(os.path.join(run, "*.stderr")):
        text = open(path, errors="replace").read()
        if "panicked" in text:
            problems.append(f"{os.path.basename(path)}: a daemon panicked")

    print(f"checker: {len(history)} writes, {acked} acknowledged, {len(expected)} keys, "
          f"{checked} (node, key) checks, {len(problems)} problems")
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
