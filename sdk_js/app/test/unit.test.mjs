// The app client's pure parts, and its delivery rules against an in-process Ingest service
// (connect's router transport) that fails on cue.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { BatchSchema } from "../../gen/pulsewire/v1/batch_pb.js";
import { Ingest } from "../../gen/pulsewire/v1/ingest_pb.js";
import {
  Batcher, InvalidTrack, MemoryStorage, PulsewireClient, RetryQueue, StringTable,
  base64Decode, base64Encode, deviceIdFrom, minorUnits, trackedEvent,
} from "../index.js";
import { utf8Length } from "../strings.js";

const T0 = 1_767_225_600_000;

describe("track", () => {
  const cases = [
    // amount, currency, minor units
    [19.99, "USD", 1999n], ["19.99", "usd", 1999n], [0.015, "USD", 2n], [0.014, "USD", 1n],
    [1500, "JPY", 1500n], [1.2345, "KWD", 1235n], [1e15, "USD", 100000000000000000n],
    [1e-7, "USD", 0n], [-0.004, "USD", 0n], [" 5 ", "EUR", 500n], [5n, "EUR", 500n],
  ];
  for (const [amount, currency, minor] of cases) {
    test(`${String(amount)} ${currency} is ${minor} minor units`, () => {
      assert.equal(minorUnits(amount, currency), minor);
    });
  }

  for (const amount of [true, "abc", Number.NaN, Infinity, "", ".", "1e", -0.005, -1, 1e18]) {
    test(`${String(amount)} is not an amount`, () => {
      assert.throws(() => minorUnits(amount, "USD"), InvalidTrack);
    });
  }

  test("typed events check their props the way collector/track.py does", () => {
    const bad = [
      ["cart_add", {}, "'sku' is required"],
      ["cart_add", { sku: "a", qty: -1 }, "'qty' must be a non-negative whole number, not -1"],
      ["cart_add", { sku: "a", qty: 1.5 }, "'qty' must be a non-negative whole number, not 1.5"],
      ["cart_add", { sku: "a", qty: true }, "'qty' must be a non-negative whole number"],
      ["cart_remove", { sku: "a", price_minor: "12" }, "'price_minor' must be a non-negative"],
      ["purchase", { value: 3 }, "'order_id' is required"],
      ["form", { name: "f", action: "like" }, "form action must be submit, wishlist or signup"],
      ["form", {}, "'name' is required"],
      ["media", { asset: "a", action: "play" }, "media action must be complete or download"],
      ["custom_thing", { nested: { a: 1 } }, "prop 'nested' must be a string, number or boolean"],
    ];
    for (const [name, props, message] of bad) {
      assert.throws(() => trackedEvent(name, props, T0, "USD"),
        (err) => err instanceof InvalidTrack && err.message.startsWith(message), name);
    }
  });

  test("prices follow the currency of the props, then the context's", () => {
    const purchase = trackedEvent("purchase", { order_id: "o", value: 12.5, currency: "JPY" },
      T0, "USD");
    assert.deepEqual(purchase, { kind: "purchase", atMs: T0, orderId: "o", valueMinor: 13n,
      currency: "JPY", cartId: "" });
    const line = trackedEvent("cart_add", { sku: "s", price: 2.5, price_minor: 7, qty: 3 }, T0,
      "EUR");
    assert.deepEqual(line, { kind: "cart_add", atMs: T0, sku: "s", qty: 3, priceMinor: 7n,
      cartId: "" });
  });

  test("custom props keep their order and leave out null and undefined", () => {
    const event = trackedEvent("viewed", { b: 1, a: "x", gone: null, no: undefined, f: false },
      T0, "USD");
    assert.deepEqual(event.props, [["b", 1], ["a", "x"], ["f", false]]);
  });
});

describe("the string table", () => {
  test("index 0 is the first string; others are interned once, and truncate forgets", () => {
    const table = new StringTable("/home");
    assert.deepEqual([table.index("/home"), table.index(""), table.index("a"), table.index("")],
      [0, 1, 2, 1]);
    table.truncate(2);
    assert.deepEqual(table.strings, ["/home", ""]);
    assert.equal(table.index("b"), 2);
  });

  test("UTF-8 lengths are counted without encoding", () => {
    for (const text of ["", "abc", "café", "☕", "😀", "a😀b", "\ud800", "\udc00x"]) {
      assert.equal(utf8Length(text), new TextEncoder().encode(text).length, text);
    }
  });
});

describe("batching", () => {
  const cartAdd = (atMs, sku, cartId = "") =>
    trackedEvent("cart_add", { sku, cart_id: cartId }, atMs, "USD");

  test("a batch has the page at index 0, an explicit empty string, and time deltas", () => {
    const batcher = new Batcher("demo", "d-1", { context: { currency: "USD" } });
    batcher.add({ kind: "page_view", atMs: T0, path: "/p", title: "", referrer: "" }, "/p");
    batcher.add(cartAdd(T0 + 250, "sku-1"), "/p");
    batcher.add(cartAdd(T0 + 200, "sku-1"), "/p"); // a clock that went back: dt 0
    const [batch] = batcher.flush(T0 + 1000);

    assert.deepEqual(batch.strings, ["/p", "", "sku-1"]);
    assert.equal(batch.baseTimeMs, BigInt(T0));
    assert.equal(batch.sentAtMs, BigInt(T0 + 1000));
    assert.deepEqual(batch.events.map((e) => e.dtMs), [0, 250, 0]);
    assert.deepEqual(batch.events[0].payload.value.path, 0);
    assert.deepEqual(batch.events[0].payload.value.title, 1);
    assert.deepEqual(batch.events[1].payload.value.cartId, 1);
    assert.deepEqual([batch.seq, batch.stream, batch.context.collector], [1n, 0, "app-js/0.1.0"]);
    assert.equal(batch.identity, undefined);
  });

  test("batches seal at the event count, the age deadline, and never pass the byte cap", () => {
    const batcher = new Batcher("demo", "d-1", { limits: { maxEvents: 2, maxBytes: 300 } });
    batcher.add(cartAdd(T0, "a"), "/");
    batcher.add(cartAdd(T0 + 1, "b"), "/");
    assert.equal(batcher.tick(T0 + 2).length, 1); // full: sealed at once
    batcher.add(cartAdd(T0 + 3, "c"), "/");
    assert.equal(batcher.nextDeadlineMs(), T0 + 5003);
    assert.deepEqual(batcher.tick(T0 + 5002), []);
    assert.equal(batcher.tick(T0 + 5003).length, 1);
    batcher.add(cartAdd(T0 + 6000, "x".repeat(150)), "/");
    batcher.add(cartAdd(T0 + 6001, "y".repeat(150)), "/");
    batcher.add(cartAdd(T0 + 6002, "z".repeat(400)), "/"); // fits no batch: dropped, counted
    const sealed = batcher.flush(T0 + 7000).slice(2);
    assert.deepEqual(sealed.map((b) => b.events.length), [1, 1]);
    for (const b of sealed) assert.ok(toBinary(BatchSchema, b).length <= 300);
    assert.equal(batcher.oversizeEvents, 1);
  });

  test("a given identity goes in the next batch only; the context in the first", () => {
    const batcher = new Batcher("demo", "d-1", { context: { timezone: "Europe/Berlin",
      deviceClass: "mobile" } });
    batcher.add(cartAdd(T0, "a"), "/");
    batcher.setIdentity("u-1", "ann@example.com", "ab".repeat(32));
    const [first] = batcher.flush(T0);
    batcher.add(cartAdd(T0 + 1, "b"), "/");
    const [second] = batcher.flush(T0 + 1).slice(-1);
    assert.equal(first.identity?.email, "ann@example.com");
    assert.equal(second.identity, undefined);
    assert.equal(first.context?.timezone, "Europe/Berlin");
    assert.equal(second.context?.timezone, "");
    assert.equal(second.context?.deviceClass, first.context?.deviceClass);
  });
});

describe("the retry queue", () => {
  const sealedInto = (queue, n) => {
    for (let i = 0; i < n; i++) {
      const b = new Batcher("demo", "d-1");
      b.add(trackedEvent("x", {}, T0 + i, "USD"), "/");
      const [sealed] = b.flush(T0 + i);
      queue.push({ ...sealed, seq: BigInt(queue.nextSeq()) });
    }
  };

  test("stream 0 keeps its seq and unacked batches across restarts", () => {
    const storage = new MemoryStorage();
    const queue = new RetryQueue("d-1", storage);
    sealedInto(queue, 3);
    queue.ack(2n);
    const reopened = new RetryQueue("d-1", storage);
    assert.deepEqual(reopened.pending().map((b) => b.seq), [1n, 3n]);
    assert.equal(reopened.nextSeq(), 4);
    assert.equal(storage.getItem("pulsewire.d-1.seq"), "4");
  });

  test("a page load's stream counts from 1 in memory", () => {
    const storage = new MemoryStorage();
    storage.setItem("pulsewire.d-1.seq", "41");
    const queue = new RetryQueue("d-1", storage, { stream: 77 });
    assert.deepEqual([queue.nextSeq(), queue.nextSeq()], [1, 2]);
    assert.equal(storage.getItem("pulsewire.d-1.seq"), "41");
  });

  test("over the cap the oldest batch is dropped and counted", () => {
    const queue = new RetryQueue("d-1", null, { cap: 2 });
    sealedInto(queue, 5);
    assert.deepEqual(queue.pending().map((b) => b.seq), [4n, 5n]);
    assert.equal(queue.droppedBatches, 3);
  });

  test("broken or refusing storage is counted and the queue goes on in memory", () => {
    const broken = new MemoryStorage();
    broken.setItem("pulsewire.d-1.seq", "many");
    broken.setItem("pulsewire.d-1.queue", `${base64Encode(new Uint8Array([0xff]))}\n!!!`);
    const queue = new RetryQueue("d-1", broken);
    assert.equal(queue.storageFailures, 3);
    const refusing = { getItem() { throw new Error("SecurityError"); },
      setItem() { throw new Error("QuotaExceededError"); } };
    const inMemory = new RetryQueue("d-2", refusing);
    sealedInto(inMemory, 1);
    assert.equal(inMemory.size, 1);
    assert.ok(inMemory.storageFailures >= 3);
  });

  test("base64 round-trips and refuses what is not base64", () => {
    for (let n = 0; n < 8; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 97 + 200) & 255);
      assert.deepEqual(base64Decode(base64Encode(bytes)), bytes);
    }
    assert.equal(base64Encode(new TextEncoder().encode("pulse")), "cHVsc2U=");
    for (const bad of ["abc", "ab=c", "a b=", "é"]) assert.throws(() => base64Decode(bad));
  });

  test("a device id is made once and kept", () => {
    const storage = new MemoryStorage();
    const id = deviceIdFrom(storage);
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(deviceIdFrom(storage), id);
    assert.notEqual(deviceIdFrom(null), id);
  });
});

describe("delivery", () => {
  /** An Ingest service that answers from a list of outcomes, one per call. */
  function ingestWith(outcomes) {
    const received = [];
    const transport = createRouterTransport(({ service }) => service(Ingest, {
      send(batch) {
        received.push(batch);
        const outcome = outcomes.shift() ?? "ok";
        if (outcome !== "ok") throw new ConnectError(`refused: ${outcome}`, outcome);
        return { seq: batch.seq, stream: batch.stream, deviceId: batch.deviceId,
          accepted: batch.events.length };
      },
    }));
    return { transport, received };
  }

  function clientOn(transport, options = {}) {
    let now = T0;
    const client = new PulsewireClient({ transport, siteKey: "demo", deviceId: "d-1",
      now: () => now, autoSend: false, retry: { firstMs: 1000, maxMs: 4000 }, ...options });
    return { client, advance: (ms) => { now += ms; } };
  }

  test("a retryable failure keeps every batch, backs off, and resends the same seq", async () => {
    const { transport, received } = ingestWith([Code.Unavailable, Code.DeadlineExceeded,
      Code.Internal, Code.Unavailable]);
    const { client, advance } = clientOn(transport);
    client.track("a", {});
    client.track("b", {});

    const delays = [];
    for (let i = 0; i < 4; i++) {
      const result = await client.flush();
      assert.equal(result.pending, 1);
      delays.push(result.retryInMs);
      advance(1);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 4000]);
    assert.deepEqual((await client.tick()).acks, []); // still backing off: nothing sent
    advance(4000);
    const done = await client.tick();

    assert.deepEqual(done.acks.map((a) => a.seq), [1n]);
    assert.deepEqual(received.map((b) => b.seq), [1n, 1n, 1n, 1n, 1n]);
    assert.deepEqual(received.map((b) => b.sentAtMs),
      [0, 1, 2, 3, 4004].map((ms) => BigInt(T0 + ms)));
    assert.equal(done.retryInMs, null);
  });

  test("INVALID_ARGUMENT drops that batch, counts it, sends the rest, then rejects", async () => {
    const { transport, received } = ingestWith([Code.InvalidArgument, "ok"]);
    const { client } = clientOn(transport, { limits: { maxEvents: 1 } });
    client.track("a", {});
    client.track("b", {});

    await assert.rejects(client.flush(), (err) => err.code === Code.InvalidArgument);
    assert.deepEqual([client.stats.rejectedBatches, client.stats.pending], [1, 0]);
    assert.deepEqual(received.map((b) => b.seq), [1n, 2n]);
  });

  for (const code of [Code.Unauthenticated, Code.ResourceExhausted, Code.PermissionDenied]) {
    test(`${Code[code]} keeps the batches and rejects`, async () => {
      const { transport, received } = ingestWith([code]);
      const { client } = clientOn(transport, { limits: { maxEvents: 1 } });
      client.track("a", {});
      client.track("b", {});

      await assert.rejects(client.flush(), (err) => err.code === code);
      assert.deepEqual([client.stats.pending, received.length], [2, 1]);
      assert.deepEqual((await client.flush()).acks.map((a) => a.seq), [1n, 2n]);
    });
  }

  test("the queue cap drops the oldest batches while the server is away", async () => {
    const { transport, received } = ingestWith([Code.Unavailable]);
    const { client } = clientOn(transport, { limits: { maxEvents: 1, maxQueuedBatches: 3 } });
    client.track("first", {});
    await client.flush();
    for (const name of ["b", "c", "d", "e"]) client.track(name, {});

    const result = await client.flush();

    assert.deepEqual(result.acks.map((a) => a.seq), [3n, 4n, 5n]);
    assert.equal(client.stats.droppedBatches, 2);
    assert.deepEqual(received.map((b) => b.seq), [1n, 3n, 4n, 5n]);
  });

  test("a network failure (no gRPC status) is retried", async () => {
    let fail = true;
    const failing = (next) => async (req) => {
      if (fail) {
        fail = false;
        throw new TypeError("fetch failed");
      }
      return next(req);
    };
    const { client } = clientOn(createRouterTransport(({ service }) => service(Ingest, {
      send: (b) => ({ seq: b.seq, stream: b.stream, deviceId: b.deviceId }),
    }), { transport: { interceptors: [failing] } }));
    client.track("a", {});
    assert.equal((await client.flush()).pending, 1);
    assert.equal((await client.flush()).pending, 0);
  });

  test("with autoSend the client sends at the open batch's deadline and retries alone",
    async () => {
      const { transport, received } = ingestWith([Code.Unavailable]);
      const client = new PulsewireClient({ transport, siteKey: "demo", deviceId: "d-1",
        limits: { maxAgeMs: 30 }, retry: { firstMs: 20 }, onError: assert.fail });
      try {
        client.track("a", {});
        const deadline = Date.now() + 5000;
        while (client.stats.pending > 0 || received.length < 2) {
          assert.ok(Date.now() < deadline, "not delivered within 5 s");
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        assert.deepEqual(received.map((b) => b.seq), [1n, 1n]);
      } finally {
        client.close();
      }
    });

  test("sends never overlap: concurrent flushes go one after the other", async () => {
    let inFlight = 0;
    let most = 0;
    const received = [];
    const transport = createRouterTransport(({ service }) => service(Ingest, {
      async send(b) {
        received.push(b.seq);
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        return { seq: b.seq, stream: b.stream, deviceId: b.deviceId };
      },
    }));
    const { client } = clientOn(transport);
    const flushes = [];
    for (const name of ["a", "b", "c"]) {
      client.track(name, {});
      flushes.push(client.flush());
    }
    const results = await Promise.all(flushes);
    assert.deepEqual(results.flatMap((r) => r.acks.map((a) => a.seq)), [1n, 2n, 3n]);
    assert.equal(most, 1);
    assert.deepEqual(received, [1n, 2n, 3n]); // each call sealed its own batch; none sent twice
  });

  test("batches left by the last run are sent when the app starts again", async () => {
    const storage = new MemoryStorage();
    const away = ingestWith([Code.Unavailable]);
    const before = clientOn(away.transport, { storage }).client;
    before.track("a", {});
    await before.flush();
    const back = ingestWith([]);
    const after = clientOn(back.transport, { storage }).client;
    after.track("b", {});

    const result = await after.flush();

    assert.deepEqual(result.acks.map((a) => a.seq), [1n, 2n]);
  });

  test("an identity given at start goes first; identify is an event of its own", async () => {
    const { transport, received } = ingestWith([]);
    const { client } = clientOn(transport, { identity: { userId: "u-1", email: "a@b.example",
      signature: "cd".repeat(32) } });
    client.track("a", {});
    await client.flush();
    client.identify("u-2", "c@d.example", "ef".repeat(32), { plan: "pro" });
    await client.flush();
    assert.deepEqual(received.map((b) => b.identity?.userId), ["u-1", undefined]);
    assert.equal(received[1].events[0].payload.value.userId, "u-2");
    assert.deepEqual(received[1].events[0].payload.value.traits, { plan: "pro" });
  });
});
