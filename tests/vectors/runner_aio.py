"""The Python asyncio client's runner for client_vectors.json (see its description)."""
import asyncio
import json
import sys

from cachecar import CachecarError
from cachecar.aio import AsyncClient

from runner import error, item, setup


async def main():
    args, steps = setup()
    client = AsyncClient(args.address, timeout=10.0)
    loop = asyncio.get_running_loop()
    watch = None
    for i, step in enumerate(steps):
        if "harness" in step:
            print(json.dumps({"step": i, "harness": step["harness"]}), flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)
            continue
        op, topic = step["op"], step.get("topic", args.topic)
        try:
            if op == "wait_ready":
                result = {"ready": (await client.wait_ready(60)).ready}
            elif op == "get":
                r = await client.get(topic, step["key"])
                result = {"found": r.found}
                if r.found:
                    result["value"] = r.entry.value.decode()
            elif op == "put":
                result = {"applied": (await client.put(topic, step["key"], step["value"])).applied}
            elif op == "delete":
                result = {"applied": (await client.delete(topic, step["key"])).applied}
            elif op == "watch_start":
                start = (await client.status()).store_revision
                watch = client.watch(topic, prefix=step["prefix"], from_revision=start)
                result = {"started": True}
            elif op == "watch_next":
                got = []
                for _ in range(step["count"]):
                    got.append(item(await asyncio.wait_for(watch.__anext__(), 60)))
                result = {"events": got}
            elif op == "watch_stop":
                await watch.aclose()
                result = {"stopped": True}
            else:
                result = {"unknown_op": op}
        except CachecarError as e:
            result = error(e)
        except asyncio.TimeoutError:
            result = {"timeout": "no watch event within 60 s"}
        print(json.dumps({"step": i, "result": result}), flush=True)
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
