// The app client's pure parts, and its delivery rules against an in-process Ingest service
// (connect's router transport) that fails on cue.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { BatchSchema } from "../../gen/pulsewire/v1/batch_pb.js";
import { Ingest } from "../../gen/pulsewire/v1/ingest_pb.js";
import {
  Batcher, FRESH_MS, InvalidTrack, MemoryStorage, PulsewireClient, ResumeState, RetryQueue,
  StringTable, base64Decode, base64Encode, deviceIdFrom, minorUnits, trackedEvent,
} from "../index.js";
import { utf8Length } from "../strings.js";

const T0 = 1_767_225_600_000;

/** A client on `transport` whose clock moves only by `advance`, sending only when told. */
function clientOn(transport, options = {}) {
  let now = T0;
  const client = new PulsewireClient({ transport, siteKey: "demo", deviceId: "d-1",
    now: () => now, autoSend: false, retry: { firstMs: 1000, maxMs: 4000 }, ...options });
  return { client, advance: (ms) => { now += ms; } };
}

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
    // Resumable (the default): timed by the first event's age as each send leaves.
    assert.deepEqual(received.map((b) => [b.baseTimeMs, b.sentAtMs, b.ageMs]),
      [0, 1, 2, 3, 4004].map((ms) => [0n, 0n, ms]));
    assert.equal(done.retryInMs, null);
  });

  test("a client that is not resumable stamps each send with its clock", async () => {
    const { transport, received } = ingestWith([Code.Unavailable]);
    const { client, advance } = clientOn(transport, { resumable: false });
    client.track("a", {});
    await client.flush();
    advance(1000);
    await client.flush();

    assert.deepEqual(received.map((b) => [b.seq, b.baseTimeMs, b.sentAtMs, b.ageMs]),
      [[1n, BigInt(T0), BigInt(T0), 0], [1n, BigInt(T0), BigInt(T0 + 1000), 0]]);
    assert.ok(received.every((b) => !b.resumable && !b.resume && b.siteKey === "demo"));
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

describe("the resume state", () => {
  const TOKEN = 0xfedcba9876543210n; // above 2^63: fixed64 needs bigint all the way
  /** A queued batch (whole) of `stream`, as a resumable batcher seals it. */
  const whole = (strings, { stream = 7, baseTimeMs = T0, stringsFrom = 0 } = {}) =>
    create(BatchSchema, { siteKey: "site", deviceId: "dev", seq: 1n, stream, strings,
      baseTimeMs: BigInt(baseTimeMs), stringsFrom, resumable: true,
      context: { timezone: "Europe/Berlin" } });

  test("an ack's token is learnt with the strings it kept; other tokens are not", () => {
    const state = new ResumeState(7);
    assert.equal(state.learn(0n, whole(["/p", "T"]), 2), false); // no token: nothing kept
    assert.equal(state.learn(TOKEN, whole(["/p", "T", ""]), 2), true);
    assert.deepEqual([state.token, state.stream, state.kept, state.learnedMs],
      [TOKEN, 7, ["/p", "T"], T0]);
    assert.equal(state.learn(TOKEN + 1n, whole(["/p", "T", "x"]), 3), false);
    assert.equal(state.token, TOKEN);
  });

  test("kept strings grow only past a matching prefix; unchanged, saved once a minute", () => {
    const state = new ResumeState(7);
    state.learn(TOKEN, whole(["/p", "T"]), 2);
    const cases = [
      // strings of the acked batch, strings_kept, ms after T0, changed, kept after
      [["/p", "T", "a"], 0, 10, false, ["/p", "T"]], // its strings were not kept
      [["/q", "T", "a"], 3, 20, false, ["/p", "T"]], // not the known prefix: no growth
      [["/p", "T", "a"], 3, 30, true, ["/p", "T", "a"]],
      [["/p", "T", "a"], 2, 59_999, false, ["/p", "T", "a"]], // nothing new within a minute
      [["/p", "T", "a"], 3, 60_030, true, ["/p", "T", "a"]], // the same, a minute on: saved
    ];
    for (const [strings, kept, afterMs, changed, after] of cases) {
      const learnt = state.learn(TOKEN, whole(strings, { baseTimeMs: T0 + afterMs }), kept);
      assert.deepEqual([learnt, state.kept], [changed, after], JSON.stringify(strings));
    }
    assert.equal(state.learnedMs, T0 + 60_030);
  });

  test("an earlier run's state gives way to this stream's first token", () => {
    const state = new ResumeState(8);
    state.load(`{"token":"${TOKEN.toString(16)}","stream":7,"at":${T0},"kept":["/p"]}`);
    assert.deepEqual([state.token, state.stream], [TOKEN, 7]);
    assert.equal(state.learn(TOKEN + 5n, whole(["/p", "/q"], { stream: 8 }), 2), true);
    assert.deepEqual([state.token, state.stream, state.kept], [TOKEN + 5n, 8, ["/p", "/q"]]);
  });

  test("a batch goes resumed only when its counted-on strings are the kept ones", () => {
    const state = new ResumeState(7);
    state.learn(TOKEN, whole(["/p", "T"]), 2);
    const resumed = state.wire(whole(["/p", "T", "a"], { stringsFrom: 2 }), T0 + 900);
    assert.deepEqual([resumed.resume, resumed.stringsFrom, resumed.strings, resumed.ageMs],
      [TOKEN, 2, ["a"], 900]);
    assert.deepEqual([resumed.siteKey, resumed.deviceId, resumed.stream, resumed.resumable,
      resumed.context, resumed.baseTimeMs, resumed.sentAtMs], ["", "", 0, false, undefined,
      0n, 0n]);
    const cases = [
      // why it goes in full, the batch
      ["its strings are not the kept ones", whole(["/x", "T", "a"], { stringsFrom: 2 })],
      ["it counts on more than is kept", whole(["/p", "T", "a"], { stringsFrom: 3 })],
      ["it is of another stream", whole(["/p", "T"], { stream: 5, stringsFrom: 2 })],
    ];
    for (const [why, batch] of cases) {
      const full = state.wire(batch, T0);
      assert.deepEqual([full.resume, full.stringsFrom, full.strings, full.siteKey],
        [0n, 0, batch.strings, "site"], why);
      assert.equal(full.resumable, true, why);
    }
  });

  test("a batch carrying on from another stream's token names its own stream", () => {
    const state = new ResumeState(8);
    state.load(`{"token":"${TOKEN.toString(16)}","stream":7,"at":${T0},"kept":["/p","T"]}`);
    const carried = state.wire(whole(["/p", "T", "/q"], { stream: 8, stringsFrom: 2 }), T0);
    assert.deepEqual([carried.resume, carried.stream, carried.strings], [TOKEN, 8, ["/q"]]);
    const leftOver = state.wire(whole(["/p", "T"], { stream: 7, stringsFrom: 2 }), T0);
    assert.deepEqual([leftOver.resume, leftOver.stream, leftOver.strings], [TOKEN, 0, []]);
  });

  test("the age is clamped to a uint32; a state idle past FRESH_MS expires, any stream's", () => {
    const state = new ResumeState(7);
    assert.equal(state.wire(whole(["/p"]), T0 - 5).ageMs, 0); // a clock that went back
    assert.equal(state.wire(whole(["/p"]), T0 + 2 ** 33).ageMs, 2 ** 32 - 1);
    const text = `{"token":"1f","stream":7,"at":${T0},"kept":["/p"]}`;
    state.load(text);
    state.expire(T0 + FRESH_MS);
    assert.equal(state.token, 0x1fn);
    state.expire(T0 + FRESH_MS + 1); // its own stream's too: the server forgets idle streams
    assert.equal(state.token, 0n);
    const later = new ResumeState(8);
    later.load(text);
    later.expire(T0 + FRESH_MS);
    assert.equal(later.token, 0x1fn);
    later.expire(T0 + FRESH_MS + 1);
    assert.deepEqual([later.token, later.stream, later.kept], [0n, 0, []]);
  });

  test("the saved text is what collector/resume.py writes, ASCII only", () => {
    const state = new ResumeState(0);
    state.learn(TOKEN, whole(["/café/☕/😀", "a\"b\\\n\u007f", "ü"], { stream: 0 }), 2);
    // json.dumps({"token": f"{token:x}", ...}, separators=(",", ":")) in Python
    const python = '{"token":"fedcba9876543210","stream":0,"at":1767225600000,' +
      '"kept":["/caf\\u00e9/\\u2615/\\ud83d\\ude00","a\\"b\\\\\\n\\u007f"]}';
    assert.equal(state.toText(), python);
    const loaded = new ResumeState(3);
    loaded.load(python);
    assert.deepEqual([loaded.token, loaded.stream, loaded.learnedMs, loaded.kept],
      [TOKEN, 0, T0, ["/café/☕/😀", "a\"b\\\n\u007f"]]);
  });

  test("unreadable or impossible saved text is ignored", () => {
    const bad = [null, "", "{", "[]", "null", "5", '"x"', "{}",
      '{"token":"zz","stream":1,"at":0,"kept":[]}',
      '{"token":"0","stream":1,"at":0,"kept":[]}',
      '{"token":"10000000000000000","stream":1,"at":0,"kept":[]}', // 2^64
      '{"token":"-1f","stream":1,"at":0,"kept":[]}',
      '{"token":31,"stream":1,"at":0,"kept":[]}',
      '{"token":"1f","stream":-1,"at":0,"kept":[]}',
      '{"token":"1f","stream":2147483648,"at":0,"kept":[]}',
      '{"token":"1f","stream":1.5,"at":0,"kept":[]}',
      '{"token":"1f","stream":1,"at":"x","kept":[]}',
      '{"token":"1f","stream":1,"at":0,"kept":"abc"}',
      '{"token":"1f","stream":1,"at":0,"kept":[1]}',
      '{"token":"1f","stream":1,"at":0}'];
    for (const text of bad) {
      const state = new ResumeState(1);
      state.load(text);
      assert.deepEqual([state.token, state.stream, state.kept], [0n, 0, []], String(text));
    }
    const state = new ResumeState(1);
    state.load('{"token":"ffffffffffffffff","stream":2147483647,"at":0,"kept":[]}');
    assert.deepEqual([state.token, state.stream], [2n ** 64n - 1n, 2 ** 31 - 1]);
  });
});

describe("resumable batching", () => {
  const TOKEN = 0x1234_5678_9abc_def0n;
  const pageView = (atMs, path, referrer = "") =>
    ({ kind: "page_view", atMs, path, title: "T", referrer });
  const scroll = (atMs) => trackedEvent("scrolled", { depth: 50 }, atMs, "USD");
  const resumable = (options = {}) => new Batcher("site", "dev", { stream: 7, resumable: true,
    context: { timezone: "Europe/Berlin", deviceClass: "desktop" }, ...options });

  /** The first batch, sent in full and acked with `token`, all its strings kept. */
  const first = (batcher, token = TOKEN) => {
    batcher.add(pageView(1_000, "/p", "https://ref.example/"), "/p");
    const [batch] = batcher.flush(1_500);
    batcher.ack(batch.seq, batch.stream, { resume: token, stringsKept: batch.strings.length });
    return batch;
  };

  test("the first batch goes in full asking to be kept, timed by its age", () => {
    const batch = first(resumable());
    assert.deepEqual([batch.siteKey, batch.deviceId, batch.stream, batch.resumable,
      batch.resume, batch.stringsFrom], ["site", "dev", 7, true, 0n, 0]);
    assert.deepEqual([batch.baseTimeMs, batch.sentAtMs, batch.ageMs], [0n, 0n, 500]);
    assert.equal(batch.context?.timezone, "Europe/Berlin");
  });

  test("after the ack batches go resumed; the queue keeps them whole", () => {
    const batcher = resumable();
    const kept = first(batcher).strings;
    batcher.add(scroll(3_000), "/p");
    const [batch] = batcher.flush(4_000);
    assert.deepEqual([batch.resume, batch.stringsFrom, batch.strings, batch.ageMs],
      [TOKEN, kept.length, ["scrolled", "depth"], 1_000]);
    assert.ok(!(batch.siteKey || batch.deviceId || batch.stream || batch.resumable));
    assert.equal(batch.context, undefined);
    const [queued] = batcher.pending();
    assert.deepEqual(queued.strings, [...kept, "scrolled", "depth"]);
    assert.deepEqual([queued.baseTimeMs, queued.sentAtMs, queued.stringsFrom, queued.siteKey],
      [3_000n, 0n, kept.length, "site"]);
    assert.ok(toBinary(BatchSchema, batch).length < toBinary(BatchSchema, queued).length - 30);
  });

  test("a forgotten token sends everything in full again, the whole table", () => {
    const batcher = resumable();
    const kept = first(batcher).strings;
    batcher.add(scroll(3_000), "/p");
    assert.equal(batcher.flush(3_500)[0].resume, TOKEN);
    batcher.forgetResume();
    const [again] = batcher.resend(4_000);
    assert.deepEqual([again.resume, again.stringsFrom, again.siteKey, again.stream],
      [0n, 0, "site", 7]);
    assert.deepEqual(again.strings, [...kept, "scrolled", "depth"]);
  });

  test("acks of other streams, and second tokens, teach nothing", () => {
    const batcher = resumable();
    first(batcher);
    batcher.add(scroll(3_000), "/p");
    const [batch] = batcher.flush(3_500);
    assert.equal(batcher.ack(batch.seq, 8, { resume: TOKEN + 2n, stringsKept: 1 }), false);
    assert.equal(batcher.ack(batch.seq, 7, { resume: TOKEN + 1n, stringsKept: 9 }), true);
    assert.equal(batcher.resume?.token, TOKEN);
  });

  test("the header allowance has room for the resumable flag", () => {
    const fits = (resumableToo, maxBytes) => {
      const batcher = new Batcher("site", "dev", { limits: { maxBytes }, resumable: resumableToo });
      batcher.add(pageView(1_000, "/p"), "/p");
      return batcher.oversizeEvents === 0;
    };
    let least = 0;
    while (!fits(false, least)) least++;
    assert.equal(fits(true, least), false);
    assert.equal(fits(true, least + 2), true);
  });

  test("the next run carries on from the saved state under a stream of its own", () => {
    const storage = new MemoryStorage();
    const kept = first(resumable({ storage })).strings;
    assert.equal(storage.getItem("pulsewire.dev.resume"),
      `{"token":"${TOKEN.toString(16)}","stream":7,"at":1000,"kept":${JSON.stringify(kept)}}`);
    const next = resumable({ storage, stream: 8 });
    next.add(pageView(60_000, "/q", "/p"), "/q");
    const [carried] = next.flush(60_500);
    assert.deepEqual([carried.resume, carried.stream, carried.stringsFrom, carried.strings],
      [TOKEN, 8, kept.length, ["/q"]]); // "T" and "/p" were kept
    const [queued] = next.pending();
    next.ack(queued.seq, 8, { resume: TOKEN + 5n, stringsKept: queued.strings.length });
    next.add(scroll(61_000), "/q");
    const [later] = next.flush(61_500);
    assert.deepEqual([later.resume, later.stream, later.stringsFrom],
      [TOKEN + 5n, 0, queued.strings.length]);
    assert.match(storage.getItem("pulsewire.dev.resume"), /^\{"token":"123456789abcdef5"/);
  });

  test("a stale saved state is not used; refusing storage is counted", () => {
    const storage = new MemoryStorage();
    first(resumable({ storage }));
    const late = resumable({ storage, stream: 8 });
    late.add(pageView(1_000 + FRESH_MS + 1, "/q"), "/q");
    const [batch] = late.flush(1_000 + FRESH_MS + 2);
    assert.deepEqual([batch.resume, batch.deviceId, batch.strings], [0n, "dev", ["/q", "T", ""]]);
    const refusing = { getItem() { throw new Error("SecurityError"); },
      setItem() { throw new Error("QuotaExceededError"); } };
    const inMemory = resumable({ storage: refusing });
    first(inMemory);
    assert.equal(inMemory.resume?.token, TOKEN);
    assert.ok(inMemory.queue.storageFailures >= 1);
  });
});

describe("resumed delivery", () => {
  /**
   * An in-process Ingest that keeps resumable streams as server/rpc/resume.py does (keep,
   * extend, carry on; no bounds), and forgets them all at `restart()`. `outcomes`: codes to
   * refuse the first calls with.
   */
  function resumingIngest(outcomes = [], onSend = () => {}) {
    const received = [];
    let streams = new Map();
    let nextToken = 0xfedcba9876543210n;
    const keep = (site, device, stream, strings) => {
      const token = nextToken++;
      streams.set(token, { site, device, stream, strings: [...strings] });
      return [token, strings.length];
    };
    const transport = createRouterTransport(({ service }) => service(Ingest, {
      send(batch) {
        received.push(batch);
        onSend(batch);
        const outcome = outcomes.shift() ?? "ok";
        if (outcome !== "ok") throw new ConnectError(`refused: ${outcome}`, outcome);
        const kept = batch.resume ? streams.get(batch.resume) : undefined;
        if (batch.resume && kept === undefined) {
          throw new ConnectError("resume: this server holds no such stream; send the batch " +
            "in full", Code.FailedPrecondition);
        }
        const stream = batch.stream || (kept?.stream ?? 0);
        const ack = { seq: batch.seq, stream, deviceId: kept?.device ?? batch.deviceId,
          accepted: batch.events.length };
        let token = 0n;
        let stringsKept = 0;
        if (kept && batch.stream && batch.stream !== kept.stream) {
          [token, stringsKept] = keep(kept.site, kept.device, batch.stream,
            [...kept.strings.slice(0, batch.stringsFrom), ...batch.strings]);
        } else if (kept) {
          token = batch.resume;
          if (batch.stringsFrom === kept.strings.length) kept.strings.push(...batch.strings);
          stringsKept = batch.stringsFrom + batch.strings.length;
        } else if (batch.resumable) {
          [token, stringsKept] = keep(batch.siteKey, batch.deviceId, batch.stream, batch.strings);
        }
        return { ...ack, resume: token, stringsKept };
      },
    }));
    return { transport, received, restart: () => { streams = new Map(); } };
  }

  test("later batches go resumed and count on the strings kept", async () => {
    const { transport, received } = resumingIngest();
    const { client } = clientOn(transport);
    client.pageView("/product/laptop", "Laptop");
    client.track("cart_add", { sku: "sku-1", cart_id: "c-1" });
    const firstAck = (await client.flush()).acks[0];
    client.track("cart_add", { sku: "sku-1", cart_id: "c-1" });
    client.track("cart_add", { sku: "sku-2", cart_id: "c-1" });
    const [secondAck] = (await client.flush()).acks;

    const [full, resumed] = received;
    assert.deepEqual([full.siteKey, full.resumable, full.resume], ["demo", true, 0n]);
    assert.deepEqual([resumed.resume, resumed.siteKey, resumed.deviceId, resumed.resumable],
      [firstAck.resume, "", "", false]);
    assert.deepEqual([resumed.stringsFrom, resumed.strings], [full.strings.length, ["sku-2"]]);
    assert.equal(secondAck.stringsKept, full.strings.length + 1);
    assert.equal(client.stats.refusedResumes, 0);
  });

  test("FAILED_PRECONDITION for a resumed batch: forgotten, all sent in full at once", async () => {
    const { transport, received, restart } = resumingIngest();
    const { client } = clientOn(transport, { limits: { maxEvents: 1 } });
    client.track("a", {});
    await client.flush();
    restart();
    client.track("b", {});
    client.track("c", {});

    const result = await client.flush();

    assert.deepEqual(received.map((b) => [b.seq, b.resume !== 0n]),
      [[1n, false], [2n, true], [2n, false], [3n, false]]);
    assert.deepEqual(result.acks.map((a) => [a.seq, a.resume !== 0n]), [[2n, true], [3n, true]]);
    assert.deepEqual([result.error, result.retryInMs, result.pending], [null, null, 0]);
    assert.equal(client.stats.refusedResumes, 1);
    client.track("d", {});
    assert.equal((await client.flush()).acks[0].seq, 4n);
    assert.equal(received.at(-1)?.resume, result.acks[0].resume); // resumed on the new token
  });

  test("FAILED_PRECONDITION for a batch in full is a refusal like any other: no loop",
    async () => {
      const { transport, received } = resumingIngest([Code.FailedPrecondition]);
      const { client } = clientOn(transport);
      client.track("a", {});

      await assert.rejects(client.flush(), (err) => err.code === Code.FailedPrecondition);
      assert.deepEqual([received.length, client.stats.pending, client.stats.refusedResumes],
        [1, 1, 0]);
      assert.deepEqual((await client.flush()).acks.map((a) => a.seq), [1n]);
    });

  test("a resumed batch without its stream is acked and dropped by the stream it is of",
    async () => {
      const { transport, received } = resumingIngest(["ok", Code.InvalidArgument, "ok"]);
      const { client } = clientOn(transport, { stream: 5, limits: { maxEvents: 1 } });
      client.track("a", {});
      await client.flush();
      client.track("b", {});
      client.track("c", {});

      await assert.rejects(client.flush(), (err) => err.code === Code.InvalidArgument);

      assert.deepEqual(received.map((b) => [b.seq, b.stream, b.resume !== 0n]),
        [[1n, 5, false], [2n, 0, true], [3n, 0, true]]);
      assert.deepEqual([client.stats.pending, client.stats.rejectedBatches], [0, 1]);
    });

  test("a batch's age counts the wait behind the sends before it", async () => {
    let now = T0;
    const { transport, received } = resumingIngest([], () => { now += 40; });
    const client = new PulsewireClient({ transport, siteKey: "demo", deviceId: "d-1",
      now: () => now, autoSend: false, limits: { maxEvents: 1 } });
    client.track("a", {});
    now += 10;
    client.track("b", {});
    await client.flush();
    assert.deepEqual(received.map((b) => b.ageMs), [10, 40]);
  });

  test("the next start carries on from the saved token under its own stream", async () => {
    const storage = new MemoryStorage();
    const { transport, received } = resumingIngest();
    const before = clientOn(transport, { storage }).client;
    before.pageView("/home", "Home");
    before.track("a", {});
    const [firstAck] = (await before.flush()).acks;
    const after = clientOn(transport, { storage, stream: 9 }).client;
    after.track("b", {});
    const [carriedAck] = (await after.flush()).acks;
    after.track("c", {});
    await after.flush();

    const [, carried, later] = received;
    assert.deepEqual([carried.resume, carried.stream, carried.stringsFrom],
      [firstAck.resume, 9, received[0].strings.length]);
    assert.ok(carriedAck.resume !== firstAck.resume && carriedAck.stream === 9);
    assert.deepEqual([later.resume, later.stream], [carriedAck.resume, 0]);
    assert.match(String(storage.getItem("pulsewire.d-1.resume")),
      new RegExp(`^\\{"token":"${carriedAck.resume.toString(16)}","stream":9,`));
  });
});
