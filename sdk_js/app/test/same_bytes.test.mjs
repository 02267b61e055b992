// One scripted visit through the app client, compared byte for byte with what the Python
// collector's batcher made of it (tests/sdk_js/test_app_sdk.py writes both files): every batch
// sent, and what the retry queue saved in storage at each snapshot.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import { BatchSchema } from "../../gen/pulsewire/v1/batch_pb.js";
import { Ingest } from "../../gen/pulsewire/v1/ingest_pb.js";
import { MemoryStorage, PulsewireClient, base64Decode, base64Encode } from "../index.js";

const dir = process.env.PWTEST_COMPARE_DIR;

/** @param {string} snake */
const camel = (snake) => snake.replace(/_(.)/g, (_, c) => c.toUpperCase());
const camelKeys = (/** @type {Record<string, unknown>} */ o) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [camel(k), v]));

/** Readable form of a base64 batch, for a diff that says which field differs. */
const readable = (/** @type {string} */ line) =>
  toJson(BatchSchema, fromBinary(BatchSchema, base64Decode(line)));

async function jsRun(script) {
  const sent = [];
  const transport = createRouterTransport(({ service }) => service(Ingest, {
    send: (batch) => ({ seq: batch.seq, stream: batch.stream, deviceId: batch.deviceId,
      accepted: batch.events.length }),
  }), { transport: { interceptors: [(next) => async (req) => {
    sent.push(base64Encode(toBinary(BatchSchema, req.message)));
    return next(req);
  }] } });
  const storage = new MemoryStorage();
  let now = 0;
  const client = new PulsewireClient({ transport, siteKey: script.site_key,
    deviceId: script.device_id, storage, now: () => now, autoSend: false,
    context: camelKeys(script.context), limits: camelKeys(script.limits) });
  const snapshots = [];
  for (const step of script.steps) {
    now = step.at;
    if (step.do === "page_view") client.pageView(step.path, step.title, step.referrer);
    else if (step.do === "track") client.track(step.name, step.props);
    else if (step.do === "identify") {
      client.identify(step.user_id, step.email, step.signature, step.traits);
    } else if (step.do === "flush") {
      const result = await client.flush();
      assert.equal(result.pending, 0);
    } else if (step.do === "snapshot") {
      snapshots.push(Object.fromEntries([...storage.items].sort()));
    } else throw new Error(`unknown step ${step.do}`);
  }
  return { batches: sent, snapshots, oversize_events: client.stats.oversizeEvents,
    dropped_batches: client.stats.droppedBatches };
}

test("the app client batches a scripted visit exactly as the Python collector", async () => {
  assert.ok(dir, "PWTEST_COMPARE_DIR is unset: run this through pytest tests/sdk_js");
  const script = JSON.parse(readFileSync(join(dir, "script.json"), "utf8"));
  const python = JSON.parse(readFileSync(join(dir, "python.json"), "utf8"));
  const js = await jsRun(script);

  assert.deepEqual(js.batches.map(readable), python.batches.map(readable));
  assert.deepEqual(js.batches, python.batches);
  assert.deepEqual(js.snapshots, python.snapshots);
  assert.equal(js.oversize_events, python.oversize_events);
  assert.equal(js.dropped_batches, python.dropped_batches);
});
