// The app client against a real `pulsewire serve`, over one transport (PWTEST_TRANSPORT: "grpc"
// for native gRPC over HTTP/2, "grpc-web" for gRPC-Web on the HTTP listener). What the server
// applied is read back with the Admin service's GetUser: the user's profile, devices,
// sequence instances, and the times of every cart_add the engine remembers (a sequence of the
// test server counts them), so "applied once" is a count. The client is resumable, as apps
// have it by default: its later batches go resumed, and a restarted server, which no longer
// holds their token, gets them again in full. tests/sdk_js/test_app_sdk.py starts the server
// and sets the environment.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Admin } from "../../gen/pulsewire/v1/admin_pb.js";
import { BatchSchema } from "../../gen/pulsewire/v1/batch_pb.js";
import { Ingest } from "../../gen/pulsewire/v1/ingest_pb.js";
import {
  Batcher, MemoryStorage, PulsewireClient, RETRYABLE, bufferedFetch, trackedEvent,
} from "../index.js";

const env = process.env;
const kind = env.PWTEST_TRANSPORT ?? "";
const SITE_KEY = env.PWTEST_SITE_KEY ?? "";

/** @param {{grpc: string, http: string}} where @param {object} [options] */
function transportTo(where, options = {}) {
  if (kind === "grpc") return createGrpcTransport({ baseUrl: `http://${where.grpc}`, ...options });
  if (kind === "grpc-web") return createGrpcWebTransport({ baseUrl: where.http, ...options });
  throw new Error(`PWTEST_TRANSPORT must be grpc or grpc-web, not ${JSON.stringify(kind)}: ` +
    "run this through pytest tests/sdk_js");
}

const main = { grpc: env.PWTEST_GRPC ?? "", http: env.PWTEST_HTTP ?? "" };

/** What the app's backend does: sign the user id and the lowercased email with the site
 * secret (`sign_identity`; with no user id, the email alone). */
const sign = (/** @type {string} */ email, userId = "") =>
  createHmac("sha256", env.PWTEST_SITE_SECRET ?? "")
    .update(userId ? `${userId}\n${email.trim().toLowerCase()}` : email.trim().toLowerCase())
    .digest("hex");

/** The Admin view of a user, over native gRPC with the operator token. */
async function userView(/** @type {string} */ who, grpc = main.grpc) {
  const admin = createClient(Admin, createGrpcTransport({ baseUrl: `http://${grpc}` }));
  return admin.getUser({ user: who }, { headers: { authorization: `Bearer ${env.PWTEST_TOKEN}` } });
}

/** How many cart_add events the engine applied for the user. */
async function cartAdds(/** @type {string} */ who, grpc = main.grpc) {
  const view = await userView(who, grpc);
  const signal = view.aggregates.find((a) => a.signal.startsWith("cart_add"));
  return signal ? signal.atMs.length : 0;
}

/** Polls `check` until it returns true, or fails at the deadline. */
async function eventually(/** @type {() => boolean} */ check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not true within ${timeoutMs} ms: ${check}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const unique = (/** @type {string} */ what) => `${what}-${kind}-${randomUUID().slice(0, 8)}`;

/** @param {Partial<import("../client.js").ClientOptions>} options */
function appClient(options = {}) {
  return new PulsewireClient({ transport: transportTo(main), siteKey: SITE_KEY,
    deviceId: unique("device"), storage: new MemoryStorage(), autoSend: false,
    context: { currency: "USD", timezone: "Europe/Berlin", deviceClass: "mobile" },
    ...options });
}

/**
 * An interceptor that logs every send: the batch as it went, its size, and the answer's code
 * (0 for an ack).
 */
function sendLog() {
  /** @type {{batch: import("../../gen/pulsewire/v1/batch_pb.js").Batch, bytes: number,
   *          code: number}[]} */
  const sends = [];
  /** @type {import("@connectrpc/connect").Interceptor} */
  const logging = (next) => async (req) => {
    const batch = /** @type {any} */ (req.message);
    const entry = { batch, bytes: toBinary(BatchSchema, batch).length, code: 0 };
    sends.push(entry);
    try {
      return await next(req);
    } catch (err) {
      entry.code = ConnectError.from(err).code;
      throw err;
    }
  };
  return { sends, logging };
}

/** @param {Promise<unknown>} promise @returns {Promise<ConnectError>} */
async function refusal(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    return err;
  }
  assert.fail("the call was not refused");
}

describe(`the app client over ${kind}`, () => {
  test("events arrive, signed identity and all, and the engine applies them", async () => {
    const email = `${unique("ann")}@example.com`;
    const client = appClient();
    client.pageView("/product/laptop", "Laptop Pro 14");
    client.identify("u-" + email, email, sign(email, "u-" + email), { plan: "pro" });
    client.track("cart_add", { sku: "sku-123", price: 1299.0, cart_id: "cart-1" });
    client.track("product_view", { color: "slate", rating: 4.5, gift: true });
    const first = await client.flush();

    assert.equal(first.pending, 0);
    assert.equal(first.acks.length, 1);
    const [ack] = first.acks;
    assert.deepEqual([ack.seq, ack.stream, ack.deviceId, ack.accepted, ack.duplicate],
      [1n, 0, client.deviceId, 4, false]);
    client.track("checkout_start", { cart_id: "cart-1", value: 1299 });
    assert.equal((await client.flush()).acks[0].seq, 2n);

    const view = await userView(email);
    assert.equal(view.email, email);
    assert.equal(view.emailVerified, true);
    assert.equal(view.userId, "u-" + email);
    assert.ok(view.devices.includes(client.deviceId), view.devices.join());
    assert.deepEqual(view.instances.map((i) => i.sequence), ["cart-recovery"]);
    assert.equal(await cartAdds(email), 1);
  });

  test("later batches go resumed, leave out what the server keeps, and are applied", async () => {
    const email = `${unique("eve")}@example.com`;
    const { sends, logging } = sendLog();
    const client = appClient({ transport: transportTo(main, { interceptors: [logging] }) });
    client.pageView("/product/laptop", "Laptop Pro 14");
    client.identify("", email, sign(email));
    client.track("cart_add", { sku: "sku-123", price: 1299.0, cart_id: "cart-1" });
    const [first] = (await client.flush()).acks;
    client.track("cart_add", { sku: "sku-123", price: 1299.0, cart_id: "cart-1" });
    const [second] = (await client.flush()).acks;
    client.track("cart_add", { sku: "sku-77", cart_id: "cart-1" });
    const [third] = (await client.flush()).acks;

    const [full, resumed, extended] = sends.map((s) => s.batch);
    assert.deepEqual([full.siteKey, full.deviceId, full.resumable, full.resume],
      [SITE_KEY, client.deviceId, true, 0n]);
    assert.ok(first.resume !== 0n && first.stringsKept === full.strings.length, String(first));
    for (const batch of [resumed, extended]) {
      assert.deepEqual([batch.resume, batch.siteKey, batch.deviceId, batch.context],
        [first.resume, "", "", undefined]);
      assert.equal(batch.stringsFrom, full.strings.length);
    }
    assert.deepEqual([resumed.strings, extended.strings], [[], ["sku-77"]]);
    assert.ok(sends[1].bytes < 30 && sends[1].bytes * 4 < sends[0].bytes,
      sends.map((s) => s.bytes).join());
    for (const ack of [second, third]) {
      assert.deepEqual([ack.resume, ack.deviceId, ack.stream, ack.accepted, ack.duplicate],
        [first.resume, client.deviceId, 0, 1, false]);
    }
    assert.equal(third.stringsKept, full.strings.length + 1); // "sku-77" kept from now on
    assert.deepEqual(sends.map((s) => s.code), [0, 0, 0]);
    assert.equal(await cartAdds(email), 3);
  });

  test("the same batch sent twice is acked as a duplicate and applied once", async () => {
    const email = `${unique("bob")}@example.com`;
    const batcher = new Batcher(SITE_KEY, unique("device"));
    const now = Date.now();
    batcher.setIdentity("", email, sign(email));
    batcher.add(trackedEvent("cart_add", { sku: "a", cart_id: "c" }, now, "USD"), "/cart");
    batcher.add(trackedEvent("cart_add", { sku: "b", cart_id: "c" }, now + 5, "USD"), "/cart");
    const [batch] = batcher.flush(now + 10);
    const ingest = createClient(Ingest, transportTo(main));

    const acks = [await ingest.send(batch), await ingest.send(batch)];

    assert.deepEqual(acks.map((a) => [a.seq, a.accepted, a.duplicate]),
      [[1n, 2, false], [1n, 0, true]]);
    assert.equal(await cartAdds(email), 2);
  });

  test("an ack lost on the way back: the client resends the same seq, applied once", async () => {
    const email = `${unique("cy")}@example.com`;
    let loseNext = true;
    const losing = (next) => async (req) => {
      const res = await next(req);
      if (loseNext) {
        loseNext = false;
        throw new ConnectError("connection reset before the ack arrived", Code.Unavailable);
      }
      return res;
    };
    const client = appClient({ transport: transportTo(main, { interceptors: [losing] }) });
    client.identify("", email, sign(email));
    client.track("cart_add", { sku: "sku-1", cart_id: "c-1" });

    const lost = await client.flush();
    assert.equal(lost.error?.code, Code.Unavailable);
    assert.equal(lost.pending, 1);
    assert.ok(lost.retryInMs !== null && lost.retryInMs > 0);
    const again = await client.flush();

    assert.deepEqual(again.acks.map((a) => [a.seq, a.duplicate]), [[1n, true]]);
    assert.deepEqual([again.pending, client.stats.duplicateAcks], [0, 1]);
    assert.equal(await cartAdds(email), 1);
  });

  test("a wrong site key is refused with UNAUTHENTICATED and the batch is kept", async () => {
    const client = appClient({ siteKey: "no-such-site" });
    client.track("cart_add", { sku: "sku-1" });

    const err = await refusal(client.flush());

    assert.equal(err.code, Code.Unauthenticated);
    assert.match(err.rawMessage, /site key/);
    assert.equal(client.stats.pending, 1);
  });

  test("a malformed batch is refused with INVALID_ARGUMENT naming the field", async () => {
    const batch = create(BatchSchema, {
      siteKey: SITE_KEY, deviceId: unique("device"), seq: 1n, baseTimeMs: BigInt(Date.now()),
      strings: ["/cart"],
      events: [{ payload: { case: "cartAdd", value: { sku: 7 } } }],
    });

    const err = await refusal(createClient(Ingest, transportTo(main)).send(batch));

    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.rawMessage,
      "events[0].cart_add.sku: string index 7 is outside the table of 1 strings");
  });

  test("the client drops and counts a batch the server calls malformed, then goes on", async () => {
    const client = appClient();
    client.track("", { note: "a custom event needs a name" });

    const err = await refusal(client.flush());
    assert.equal(err.code, Code.InvalidArgument);
    assert.match(err.rawMessage, /^events\[0\]\.custom\.name: /);
    assert.deepEqual([client.stats.pending, client.stats.rejectedBatches], [0, 1]);

    client.track("app_open", {});
    const next = await client.flush();
    assert.deepEqual(next.acks.map((a) => [a.seq, a.accepted]), [[2n, 1]]);
  });

  if (kind === "grpc-web") {
    test("a fetch that cannot stream bodies (React Native's) works through bufferedFetch",
      async () => {
        // What React Native's fetch gives: status, headers and arrayBuffer(), no body stream.
        const wholeOnly = async (input, init) => {
          const response = await fetch(input, init);
          return { status: response.status, headers: response.headers, body: null,
            arrayBuffer: () => response.arrayBuffer() };
        };
        const sendWith = (fetchFn) => {
          const client = appClient({ transport: createGrpcWebTransport({ baseUrl: main.http,
            fetch: fetchFn }) });
          client.track("cart_add", { sku: "sku-1" });
          return client;
        };

        const failed = await sendWith(wholeOnly).flush(); // unusable answer: kept for a retry
        assert.match(String(failed.error?.message), /missing response body/);
        assert.equal(failed.pending, 1);
        const client = sendWith(bufferedFetch(wholeOnly));
        const result = await client.flush();
        assert.deepEqual(result.acks.map((a) => [a.seq, a.accepted]), [[1n, 1]]);
      });
  }

  describe("with a server that stops and starts again", () => {
    const where = { grpc: env.PWTEST_RESTART_GRPC ?? "", http: env.PWTEST_RESTART_HTTP ?? "" };
    /** @type {import("node:child_process").ChildProcess | null} */
    let server = null;

    async function start() {
      const [command, ...args] = JSON.parse(env.PWTEST_RESTART_SERVE ?? "[]");
      server = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] });
      const lines = createInterface({ input: /** @type {any} */ (server.stdout) });
      for await (const line of lines) if (line.startsWith("pulsewire: HTTP on ")) break;
    }

    async function stop() {
      if (server === null || server.exitCode !== null) return;
      const exited = once(server, "exit");
      server.kill("SIGTERM");
      await exited;
      server = null;
    }

    after(stop);

    test("unsent batches go out with their seq once it is back, applied once", async () => {
      await start();
      const email = `${unique("dee")}@example.com`;
      const storage = new MemoryStorage();
      const { sends, logging } = sendLog();
      const client = appClient({ transport: transportTo(where, { interceptors: [logging] }),
        storage, autoSend: true, retry: { firstMs: 100, maxMs: 400 }, timeoutMs: 3_000 });
      try {
        client.identify("", email, sign(email));
        client.track("cart_add", { sku: "sku-1", cart_id: "c-1" });
        assert.equal((await client.flush()).pending, 0);

        await stop();
        client.track("cart_add", { sku: "sku-2", cart_id: "c-1" });
        const down = await client.flush();
        assert.ok(down.error !== null && RETRYABLE.has(down.error.code), String(down.error));
        assert.equal(down.pending, 1);
        const [unsent] = client.pending();
        assert.equal(unsent.seq, 2n);
        await start();

        await eventually(() => client.stats.pending === 0); // the client's own retry timer
        assert.equal(storage.getItem(`pulsewire.${client.deviceId}.seq`), "2");
        assert.equal(await cartAdds(email, where.grpc), 2);
        assert.equal(client.stats.rejectedBatches, 0);
        // The restarted server did not know the token: refused once, then seq 2 in full.
        const last = sends.slice(-2).map((s) => [s.batch.seq, s.batch.resume !== 0n,
          s.batch.siteKey, s.code]);
        assert.deepEqual(last, [[2n, true, "", Code.FailedPrecondition], [2n, false, SITE_KEY, 0]]);
        assert.ok(sends.slice(1, -2).every((s) => s.batch.resume !== 0n && s.code !== 0));
        assert.equal(client.stats.refusedResumes, 1);
        const saved = JSON.parse(String(storage.getItem(`pulsewire.${client.deviceId}.resume`)));
        assert.notEqual(saved.token, sends[1].batch.resume.toString(16)); // the new server's
      } finally {
        client.close();
      }
    });
  });
});
