// One scripted visit through the app client, compared byte for byte with what the Python
// collector's batcher made of it (tests/sdk_js/test_app_sdk.py writes both files): every batch
// sent, and what the retry queue and the resume state saved in storage at each snapshot. The
// server here replays the answers the Python side's server gave (acks with their resume tokens,
// FAILED_PRECONDITION, UNAVAILABLE), in order.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { ConnectError, createRouterTransport } from "@connectrpc/connect";
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

/** An Ingest that gives the recorded answers, one per call, and records what it was sent. */
function replaying(answers) {
  const sent = [];
  const left = [...answers];
  const transport = createRouterTransport(({ service }) => service(Ingest, {
    send: (batch) => {
      const answer = left.shift();
      assert.ok(answer, `no answer left for seq ${batch.seq}: the app client sent more`);
      if (answer.code) throw new ConnectError(answer.message, answer.code);
      const ack = answer.ack;
      assert.equal(batch.seq, BigInt(ack.seq), "the answers are for other batches");
      return { seq: BigInt(ack.seq), stream: ack.stream, deviceId: ack.device_id,
        accepted: ack.accepted, resume: BigInt(ack.resume), stringsKept: ack.strings_kept };
    },
  }), { transport: { interceptors: [(next) => async (req) => {
    sent.push(base64Encode(toBinary(BatchSchema, req.message)));
    return next(req);
  }] } });
  return { transport, sent, left };
}

async function jsRun(script) {
  const { transport, sent, left } = replaying(script.answers);
  const storage = new MemoryStorage();
  let now = 0;
  const start = (stream) => new PulsewireClient({ transport, siteKey: script.site_key,
    deviceId: script.device_id, stream, resumable: script.resumable ?? false, storage,
    now: () => now, autoSend: false, context: camelKeys(script.context),
    limits: camelKeys(script.limits) });
  let client = start(0);
  const runs = [client];
  const snapshots = [];
  const pending = [];
  for (const step of script.steps) {
    now = step.at;
    if (step.do === "page_view") client.pageView(step.path, step.title, step.referrer);
    else if (step.do === "track") client.track(step.name, step.props);
    else if (step.do === "identify") {
      client.identify(step.user_id, step.email, step.signature, step.traits);
    } else if (step.do === "flush") {
      pending.push((await client.flush()).pending);
    } else if (step.do === "snapshot") {
      snapshots.push(Object.fromEntries([...storage.items].sort()));
    } else if (step.do === "start") {
      client = start(step.stream);
      runs.push(client);
    } else if (step.do !== "server") throw new Error(`unknown step ${step.do}`);
  }
  assert.equal(left.length, 0, "the app client sent fewer batches than the Python side");
  const total = (/** @type {string} */ counter) =>
    runs.reduce((sum, run) => sum + run.stats[counter], 0);
  return { batches: sent, pending, snapshots, oversize_events: total("oversizeEvents"),
    dropped_batches: total("droppedBatches") };
}

test("the app client batches a scripted visit exactly as the Python collector", async () => {
  assert.ok(dir, "PWTEST_COMPARE_DIR is unset: run this through pytest tests/sdk_js");
  const script = JSON.parse(readFileSync(join(dir, "script.json"), "utf8"));
  const python = JSON.parse(readFileSync(join(dir, "python.json"), "utf8"));
  const js = await jsRun(script);

  assert.deepEqual(js.batches.map(readable), python.batches.map(readable));
  assert.deepEqual(js.batches, python.batches);
  assert.deepEqual(js.pending, python.pending);
  assert.deepEqual(js.snapshots, python.snapshots);
  assert.equal(js.oversize_events, python.oversize_events);
  assert.equal(js.dropped_batches, python.dropped_batches);
});
