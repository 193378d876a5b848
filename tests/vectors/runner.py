"""The Python client's runner for client_vectors.json (see its description)."""
import argparse
import json
import queue
import sys
import threading

from cachecar import CachecarError, Client


def error(e: CachecarError):
    return {"error": {"code": e.code.name, "reason": e.reason,
                      "violations": sorted(({"field": v.field, "reason": v.reason}
                                            for v in e.violations),
                                           key=lambda v: (v["field"], v["reason"]))}}


def setup():
    """The runner's arguments and the vectors' steps (shared with runner_aio.py)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--vectors", required=True)
    args = ap.parse_args()
    with open(args.vectors) as f:
        return args, json.load(f)["steps"]


def item(ev):
    """A WatchEvent as the vectors write it."""
    out = {"type": ev.type}
    if ev.type != "RESET":
        out["key"] = ev.key.decode()
    if ev.type == "PUT":
        out["value"] = ev.value.decode()
    return out


def main():
    args, steps = setup()
    client = Client(args.address, timeout=10.0)
    events, watch = queue.Queue(), None

    def pump(w):
        try:
            for ev in w:
                events.put(ev)
        except Exception as e:  # surfaces in watch_next
            events.put(e)

    for i, step in enumerate(steps):
        if "harness" in step:
            print(json.dumps({"step": i, "harness": step["harness"]}), flush=True)
            sys.stdin.readline()
            continue
        op, topic = step["op"], step.get("topic", args.topic)
        try:
            if op == "wait_ready":
                result = {"ready": client.wait_ready(60).ready}
            elif op == "get":
                r = client.get(topic, step["key"])
                result = {"found": r.found}
                if r.found:
                    result["value"] = r.entry.value.decode()
            elif op == "put":
                result = {"applied": client.put(topic, step["key"], step["value"]).applied}
            elif op == "delete":
                result = {"applied": client.delete(topic, step["key"]).applied}
            elif op == "watch_start":
                # From the current revision, so that the stream opening later misses nothing.
                watch = client.watch(topic, prefix=step["prefix"],
                                     from_revision=client.status().store_revision)
                threading.Thread(target=pump, args=(watch,), daemon=True).start()
                result = {"started": True}
            elif op == "watch_next":
                got = []
                for _ in range(step["count"]):
                    ev = events.get(timeout=60)
                    if isinstance(ev, Exception):
                        raise ev
                    got.append(item(ev))
                result = {"events": got}
            elif op == "watch_stop":
                watch.close()
                result = {"stopped": True}
            else:
                result = {"unknown_op": op}
        except CachecarError as e:
            result = error(e)
        except queue.Empty:
            result = {"timeout": "no watch event within 60 s"}
        print(json.dumps({"step": i, "result": result}), flush=True)


if __name__ == "__main__":
    main()
