"""A tiny app using the Python client against the demo (scripts/demo.sh):
    .venv/bin/python examples/clients/app.py [TOPIC]"""
import json
import queue
import sys
import threading

from cachecar import CachecarError, Client

topic = sys.argv[1] if len(sys.argv) > 1 else "users"
uid = "0b6c3a52-7d42-4f7e-9a51-3f4f1c2d9e10"

with Client() as cache:  # $CACHECAR_ADDRESS (default 127.0.0.1:50051), $CACHECAR_TOKEN_FILE
    ready = cache.wait_ready(timeout=30)
    print("ready:", ready.ready, ready.not_ready_reason)

    # Watch the key from now on, in the background (it resumes by itself).
    start = cache.status().store_revision
    watch = cache.watch(topic, key=uid, from_revision=start)
    changes = queue.Queue()
    threading.Thread(target=lambda: [changes.put(ev) for ev in watch], daemon=True).start()

    user = {"id": uid, "email": "grace@example.com", "displayName": "Grace"}
    put = cache.put(topic, uid, json.dumps(user))  # returns once readable here
    print("put: partition", put.partition, "offset", put.offset, "applied", put.applied)
    print("get:", cache.get(topic, uid).entry.value.decode())
    try:
        cache.put(topic, uid, json.dumps({"id": "nope"}))
    except CachecarError as e:
        print("refused:", e.reason, [(v.field, v.reason) for v in e.violations])
    ev = changes.get(timeout=10)
    print("watch:", ev.type, ev.key.decode(), ev.value.decode() if ev.value else "")
    watch.close()
    print("done")
