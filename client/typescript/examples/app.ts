// A tiny app using the TypeScript client against the demo (scripts/demo.sh):
//   node client/typescript/dist/examples/app.js [TOPIC]
import { CachecarError, Client } from "../src/index";

async function main() {
  const topic = process.argv[2] ?? "users";
  const uid = "0b6c3a52-7d42-4f7e-9a51-3f4f1c2d9e10";
  const cache = new Client(); // $CACHECAR_ADDRESS (default 127.0.0.1:50051), $CACHECAR_TOKEN_FILE
  const ready = await cache.waitReady(30000);
  console.log("ready:", ready.ready, ready.not_ready_reason);

  // Watch the key from now on (it resumes by itself); stop it with the AbortController.
  const stop = new AbortController();
  const fromRevision = BigInt((await cache.status()).store_revision);
  const seen = (async () => {
    for await (const ev of cache.watch(topic, { key: uid, fromRevision, signal: stop.signal })) {
      console.log("watch:", ev.type, ev.key?.toString(), ev.value?.toString() ?? "");
      return;
    }
  })();

  const put = await cache.put(topic, uid, JSON.stringify({ id: uid, email: "grace@example.com", displayName: "Grace" }));
  console.log("put: partition", put.partition, "offset", put.offset, "applied", put.applied);
  console.log("get:", (await cache.get(topic, uid)).entry!.value.toString());
  try {
    await cache.put(topic, uid, JSON.stringify({ id: "nope" }));
  } catch (e) {
    if (!(e instanceof CachecarError)) throw e;
    console.log("refused:", e.reason, e.violations.map((v) => `${v.field}:${v.reason}`).join(" "));
  }
  await seen;
  stop.abort();
  cache.close();
  console.log("done");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
