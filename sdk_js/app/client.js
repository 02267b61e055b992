// The app client: typed events in, batches out over any Connect transport (native gRPC in
// Node, gRPC-Web in browsers and React Native), with the Python collector's delivery rules.
//
// How this works: `pageView`, `track` and `identify` stamp an event with `now()` and hand it to
// the Batcher, which seals batches by count, size and age (batching.js). Sends run one at a
// time, oldest batch first, each timed as it leaves (its age then, or `sentAtMs`). An acked
// batch is forgotten (the server acks only after its commit; a duplicate ack means it was
// applied before). UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and network failures keep every
// batch and retry all of them, with the same seq, after an exponential backoff; the server
// deduplicates by (device_id, stream, seq), so a retry is applied once. INVALID_ARGUMENT drops
// that one batch (a retry cannot fix it) and counts it; UNAUTHENTICATED, RESOURCE_EXHAUSTED and
// any other refusal keep the batches and stop. Both kinds of refusal reject the promise of the
// `flush` or `tick` that met them (sends the client starts by itself report them to `onError`).
// With `autoSend` (the default) the client ticks at the open batch's deadline, sends a batch as
// soon as it is sealed full, and retries on its own timer; apps call `flush()` when they go to
// the background.
//
// Batches are resumable unless `resumable: false` (resume.js): the first ack gives a token, and
// later batches send it instead of the site key, device id, stream and context, count on the
// strings the server kept, and give their first event's age instead of two clock readings.
// Every ack's token and kept count go to the Batcher, which saves them for the next start. A
// server that does not hold the token (restarted, another node) refuses a resumed batch with
// FAILED_PRECONDITION: the client forgets the token and at once sends every unacked batch again
// in full; that is not a failure and waits for no backoff. pulsewire never gives a batch sent
// in full that answer; should anything else, it takes the path of any other refusal (the
// batches are kept, the call rejects), so the client never loops.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Ingest } from "../gen/pulsewire/v1/ingest_pb.js";
import { Batcher } from "./batching.js";
import { trackedEvent } from "./track.js";

/** @typedef {import("@connectrpc/connect").Transport} Transport */
/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Ack} Ack */
/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Batch} Batch */
/** @typedef {import("./batching.js").BatchContext} BatchContext */
/** @typedef {import("./batching.js").BatchLimits} BatchLimits */
/** @typedef {import("./retry_queue.js").Storage} Storage */
/** @typedef {import("./track.js").Props} Props */

/**
 * Codes after which the very same batch is sent again (as collector/server_side.py does), plus
 * UNKNOWN: what a failed fetch (no network, server down) becomes under gRPC-Web.
 */
export const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Internal,
  Code.Unknown]);

/**
 * @typedef {object} Identity
 * @property {string} [userId] the app's own user id
 * @property {string} [email]
 * @property {string} [signature] hex HMAC-SHA256 of the lowercased email with the site secret,
 *   made by the app's backend
 */

/**
 * @typedef {object} ClientOptions
 * @property {Transport} transport createGrpcTransport (Node) or createGrpcWebTransport
 * @property {string} siteKey the site's public key
 * @property {string} deviceId random id of this install, kept in storage (see deviceIdFrom)
 * @property {number} [stream] 0: the device's only sender, seq kept in storage
 * @property {boolean} [resumable] later batches leave out what the server keeps (true)
 * @property {Storage | null} [storage] synchronous {getItem, setItem}
 * @property {BatchLimits} [limits]
 * @property {() => number} [now] the clock, milliseconds since the epoch
 * @property {Identity} [identity] a known user (after a restart): sent with the first batch
 * @property {BatchContext} [context]
 * @property {number} [timeoutMs] deadline of one send (10000)
 * @property {{firstMs?: number, maxMs?: number}} [retry] backoff after a failed send
 * @property {boolean} [autoSend] send on the client's own timers (true)
 * @property {(error: ConnectError) => void} [onError] refusals met by automatic sends
 */

/**
 * What one flush or tick did.
 * @typedef {object} SendResult
 * @property {Ack[]} acks the server's acks, in send order
 * @property {number} pending batches still unacked
 * @property {number | null} retryInMs when the unacked batches go again, after a failure
 * @property {ConnectError | null} error the retryable failure, if one stopped the sends
 */

export class PulsewireClient {
  /** @param {ClientOptions} options */
  constructor({ transport, siteKey, deviceId, stream = 0, resumable = true, storage = null,
    limits = {}, now = Date.now, identity, context = {}, timeoutMs = 10_000, retry = {},
    autoSend = true, onError = (error) => console.warn(`pulsewire: ${error.message}`) }) {
    if (!deviceId) throw new TypeError("deviceId is required (see deviceIdFrom)");
    this._ingest = createClient(Ingest, transport);
    this._deviceId = deviceId;
    this._batcher = new Batcher(siteKey, deviceId,
      { stream, context, storage, limits, resumable });
    this._currency = context.currency ?? "";
    this._now = now;
    this._timeoutMs = timeoutMs;
    this._firstBackoffMs = retry.firstMs ?? 1_000;
    this._maxBackoffMs = retry.maxMs ?? 60_000;
    this._autoSend = autoSend;
    this._onError = onError;
    this._path = "";
    this._failures = 0;
    /** @type {number | null} */
    this._retryAtMs = null;
    /** @type {Promise<unknown>} */
    this._sending = Promise.resolve();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._tickTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._retryTimer = null;
    this.rejectedBatches = 0;
    this.duplicateAcks = 0;
    this.refusedResumes = 0;
    if (identity) {
      this._batcher.setIdentity(identity.userId ?? "", identity.email ?? "",
        identity.signature ?? "");
    }
    if (this._batcher.pending().length) this._scheduleRetry(0);
  }

  /** This install's id, as every batch carries it. */
  get deviceId() {
    return this._deviceId;
  }

  /** The unacked batches, oldest first (the queue's own objects: do not modify). */
  pending() {
    return this._batcher.pending();
  }

  /** The page or screen the app is on: index 0 of the string table of new batches. */
  get path() {
    return this._path;
  }

  /** Counters for monitoring: nothing here is an error the app must handle. */
  get stats() {
    const queue = this._batcher.queue;
    return { pending: queue.size, droppedBatches: queue.droppedBatches,
      rejectedBatches: this.rejectedBatches, duplicateAcks: this.duplicateAcks,
      refusedResumes: this.refusedResumes, oversizeEvents: this._batcher.oversizeEvents,
      storageFailures: queue.storageFailures };
  }

  /** A page or screen was shown. */
  pageView(/** @type {string} */ path, title = "", referrer = "") {
    this._path = path;
    this._add({ kind: "page_view", atMs: this._now(), path, title, referrer });
  }

  /**
   * cart_add, cart_remove, checkout_start, purchase, form, media, or any custom name.
   * Throws InvalidTrack when a typed event's props do not fit it.
   * @param {string} name @param {Props} [props]
   */
  track(name, props = {}) {
    this._add(trackedEvent(name, props, this._now(), this._currency));
  }

  /**
   * The user said who they are: an identify event, which the server remembers for this device.
   * `signature` comes from the app's backend (never compute it in the app: it needs the site
   * secret).
   * @param {string} userId @param {string} email @param {string} signature
   * @param {Record<string, string>} [traits]
   */
  identify(userId, email, signature, traits = {}) {
    const atMs = this._now();
    this._add({ kind: "identify", atMs, userId, email, signature,
      traits: Object.entries(traits).map(([k, v]) => [k, String(v)]) });
  }

  /** Seals the buffered events and sends every unacked batch (call it on app background). */
  flush() {
    this._batcher.seal(); // now: the events tracked before this call, and no later ones
    return this._serial(() => this._resend());
  }

  /** Sends what is due: batches sealed full, the open batch once `maxAgeMs` old, retries. */
  tick() {
    return this._serial(async () => {
      const now = this._now();
      const fresh = this._batcher.tick(now);
      if (this._retryAtMs === null) return this._send(fresh, now);
      if (now >= this._retryAtMs) return this._resend();
      return this._result([], null);
    });
  }

  /** Stops the client's timers; unacked batches stay in storage for the next start. */
  close() {
    this._autoSend = false;
    for (const timer of [this._tickTimer, this._retryTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    this._tickTimer = this._retryTimer = null;
  }

  /** @param {import("./events.js").AppEvent} event */
  _add(event) {
    this._batcher.add(event, this._path);
    if (this._batcher.hasUnsent()) this._scheduleTick(0);
    else this._armDeadline();
  }

  /** A tick at the open batch's deadline, if one is open. */
  _armDeadline() {
    const deadline = this._batcher.nextDeadlineMs();
    if (deadline !== null) this._scheduleTick(Math.max(0, deadline - this._now()));
  }

  /**
   * Runs sends one at a time, in call order.
   * @template T @param {() => Promise<T>} work @returns {Promise<T>}
   */
  _serial(work) {
    const run = this._sending.then(work, work);
    this._sending = run.catch(() => undefined);
    return run;
  }

  /** Every unacked batch, handed out now. */
  _resend() {
    const now = this._now();
    return this._send(this._batcher.resend(now), now);
  }

  /**
   * Sends `batches`, handed out by the Batcher at `handedMs`, one at a time.
   * @param {Batch[]} batches @param {number} handedMs @returns {Promise<SendResult>}
   */
  async _send(batches, handedMs) {
    /** @type {Ack[]} */
    const acks = [];
    /** @type {ConnectError | null} */
    let refused = null;
    for (let i = 0; i < batches.length; i++) {
      const batch = batches[i];
      const stream = this._batcher.queuedStream(batch);
      this._batcher.restamp(batch, handedMs, this._now());
      let ack;
      try {
        ack = await this._ingest.send(batch, { timeoutMs: this._timeoutMs });
      } catch (err) {
        const error = ConnectError.from(err);
        if (RETRYABLE.has(error.code)) return this._result(acks, error);
        if (error.code === Code.FailedPrecondition && batch.resume) {
          // The server does not hold the token: every unacked batch again, in full, now. With
          // the token forgotten nothing handed out below is resumed, so this happens once.
          this._batcher.forgetResume();
          this.refusedResumes++;
          handedMs = this._now();
          batches = this._batcher.resend(handedMs);
          i = -1;
          continue;
        }
        if (error.code !== Code.InvalidArgument) throw error;
        this._batcher.ack(batch.seq, stream); // a resend cannot fix a malformed batch
        this.rejectedBatches++;
        refused ??= error;
        continue;
      }
      this._batcher.ack(batch.seq, stream, { resume: ack.resume, stringsKept: ack.stringsKept });
      if (ack.duplicate) this.duplicateAcks++;
      acks.push(ack);
    }
    this._failures = 0;
    this._retryAtMs = null;
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    if (refused !== null) throw refused;
    return this._result(acks, null);
  }

  /** @param {Ack[]} acks @param {ConnectError | null} error @returns {SendResult} */
  _result(acks, error) {
    if (error !== null) {
      this._failures++;
      const delay = Math.min(this._maxBackoffMs, this._firstBackoffMs * 2 ** (this._failures - 1));
      this._retryAtMs = this._now() + delay;
      this._scheduleRetry(delay);
    }
    const retryInMs = this._retryAtMs === null ? null : Math.max(0, this._retryAtMs - this._now());
    return { acks, pending: this._batcher.queue.size, retryInMs, error };
  }

  /** @param {number} delayMs */
  _scheduleTick(delayMs) {
    if (!this._autoSend) return;
    if (this._tickTimer !== null) {
      if (delayMs > 0) return; // an earlier tick is set already
      clearTimeout(this._tickTimer);
    }
    this._tickTimer = unref(setTimeout(() => {
      this._tickTimer = null;
      this.tick().catch((err) => this._onError(ConnectError.from(err)))
        .finally(() => this._armDeadline());
    }, delayMs));
  }

  /** @param {number} delayMs */
  _scheduleRetry(delayMs) {
    if (!this._autoSend) return;
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = unref(setTimeout(() => {
      this._retryTimer = null;
      this._serial(() => this._resend())
        .catch((err) => this._onError(ConnectError.from(err)));
    }, delayMs));
  }
}

/** Lets Node exit while a timer waits (browsers and React Native have no unref). */
function unref(/** @type {ReturnType<typeof setTimeout>} */ timer) {
  /** @type {any} */ (timer).unref?.();
  return timer;
}
