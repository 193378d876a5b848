// The TypeScript client's runner for tests/vectors/client_vectors.json (see its
// description): executes the steps against a sidecar and prints one JSON line per step.
import * as fs from "fs";
import * as readline from "readline";
import { CachecarError, Client, WatchEvent } from "../src/index";

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`--${name} is required`);
  return process.argv[i + 1];
}

function error(e: CachecarError) {
  const violations = e.violations.map((v) => ({ field: v.field, reason: v.reason }))
    .sort((a, b) => (a.field === b.field ? (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0)
                                          : a.field < b.field ? -1 : 1));
  return { error: { code: e.code, reason: e.reason, violations } };
}

async function main() {
  const topic = arg("topic");
  const steps = JSON.parse(fs.readFileSync(arg("vectors"), "utf8")).steps;
  const client = new Client({ address: arg("address"), timeoutMs: 10000 });
  const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  let watch: AsyncIterator<WatchEvent> | undefined;
  const abort = new AbortController();
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    if (step.harness) {
      console.log(JSON.stringify({ step: i, harness: step.harness }));
      await lines.next();
      continue;
    }
    const t = step.topic ?? topic;
    let result: any;
    try {
      switch (step.op) {
        case "wait_ready":
          result = { ready: (await client.waitReady(60000)).ready };
          break;
        case "get": {
          const r = await client.get(t, step.key);
          result = r.found ? { found: true, value: r.entry!.value.toString() } : { found: false };
          break;
        }
        case "put":
          result = { applied: (await client.put(t, step.key, step.value)).applied };
          break;
        case "delete":
          result = { applied: (await client.delete(t, step.key)).applied };
          break;
        case "watch_start":
          // From the current revision, so that the stream opening later misses nothing.
          const fromRevision = BigInt((await client.status()).store_revision);
          watch = client.watch(t, { prefix: step.prefix, fromRevision, signal: abort.signal })[Symbol.asyncIterator]();
          result = { started: true };
          break;
        case "watch_next": {
          const events = [];
          for (let n = 0; n < step.count; n++) {
            const { value: ev, done } = await watch!.next();
            if (done) break;
            const item: any = { type: ev.type };
            if (ev.type !== "RESET") item.key = ev.key!.toString();
            if (ev.type === "PUT") item.value = ev.value!.toString();
            events.push(item);
          }
          result = { events };
          break;
        }
        case "watch_stop":
          abort.abort();
          result = { stopped: true };
          break;
        default:
          result = { unknown_op: step.op };
      }
    } catch (e) {
      if (!(e instanceof CachecarError)) throw e;
      result = error(e);
    }
    console.log(JSON.stringify({ step: i, result }));
  }
  client.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
