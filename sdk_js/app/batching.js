// Turning app events into wire Batches: the rules of collector/batching.py, byte for byte.
//
// How this works: events are encoded as they arrive into the one open batch: its string table
// starts with the page or screen path the app was on when the batch opened (index 0 costs
// nothing on the wire), its `baseTimeMs` is the first event's time and each event's `dtMs` is
// the delta from the one before (a clock that went back gives 0: events stay in arrival order).
// The open batch is sealed when it holds `maxEvents`, when the next event would push it past
// `maxBytes` (counted exactly from field sizes), when its oldest event is `maxAgeMs` old at a
// `tick`, or at `flush`. Sealing takes the next seq and the context and puts the batch into the
// retry queue, where it stays until acked. Every batch handed out gets `sentAtMs` set to that
// moment (a resumable one its age instead). Not repeated, as in Python: the whole context goes
// in the first batch sealed, later ones carry only the device class when there is one; an
// identity given by `setIdentity` goes in the next batch sealed, once (an identify event
// carries its own; the server remembers which user a device became).
//
// A resumable batcher (`resumable: true`, for hosts that read the server's acks) goes further:
// see resume.js. Its batches count on the strings the server keeps for the stream, record how
// many in `stringsFrom`, and go out timed by their age (`ageMs`, with no clock of their own),
// resumed once an ack gave a token: the token instead of site key, device id, stream and
// context. The queue keeps every batch whole; `ack` learns what the server keeps from the acked
// batch and saves it under `pulsewire.<device>.resume`, for the next run to carry on from.

import { clone, create, toBinary } from "@bufbuild/protobuf";
import { BatchSchema, ContextSchema, IdentitySchema } from "../gen/pulsewire/v1/batch_pb.js";
import { EventSchema } from "../gen/pulsewire/v1/events_pb.js";
import { encodeEvent } from "./events.js";
import { ResumeState } from "./resume.js";
import { MAX_BATCHES, RetryQueue } from "./retry_queue.js";
import { StringTable, utf8Length } from "./strings.js";

/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Batch} Batch */
/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Identity} Identity */
/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Context} WireContext */
/** @typedef {import("./events.js").AppEvent} AppEvent */
/** @typedef {import("./retry_queue.js").Storage} Storage */

export const COLLECTOR_NAME = "app-js/0.1.0";
export const MAX_EVENTS = 100;
export const MAX_AGE_MS = 5_000;
export const MAX_BYTES = 64 * 1024;
const UINT32_MAX = 2 ** 32 - 1;
const INT_FIELD_MAX_BYTES = 11; // tag + a 10-byte varint: the most seq, stream, base or sent take
const INT_FIELDS = 4; // seq, baseTimeMs, sentAtMs, stream (resumable: seq, stream, ageMs)
const FLAG_FIELD_BYTES = 2; // resumable

/** @typedef {"" | "desktop" | "mobile" | "tablet" | "bot"} DeviceClass */
const DEVICE_CLASSES = { "": 0, desktop: 1, mobile: 2, tablet: 3, bot: 4 };

/**
 * Facts about the device that hold for every batch.
 * @typedef {object} BatchContext
 * @property {string} [timezone] IANA zone ("Europe/Berlin"); quiet hours are kept in it
 * @property {string} [locale] BCP 47 tag ("de-DE")
 * @property {number} [viewportWidth]
 * @property {number} [viewportHeight]
 * @property {DeviceClass} [deviceClass]
 * @property {string} [currency] ISO 4217 code that prices are in ("USD")
 * @property {string} [collector] defaults to COLLECTOR_NAME
 */

/**
 * @typedef {object} BatchLimits
 * @property {number} [maxEvents] seal at this many events (100)
 * @property {number} [maxAgeMs] seal when the oldest event is this old at a tick (5000)
 * @property {number} [maxBytes] a batch never passes this many bytes (65536)
 * @property {number} [maxQueuedBatches] unacked batches kept; the oldest is dropped (50)
 */

/** @param {BatchContext} [context] @returns {WireContext} */
export function contextToWire(context = {}) {
  const deviceClass = context.deviceClass ?? "";
  if (!Object.hasOwn(DEVICE_CLASSES, deviceClass)) {
    throw new TypeError(`deviceClass must be desktop, mobile, tablet, bot or "": ${deviceClass}`);
  }
  return create(ContextSchema, {
    timezone: context.timezone ?? "",
    locale: context.locale ?? "",
    viewportWidth: context.viewportWidth ?? 0,
    viewportHeight: context.viewportHeight ?? 0,
    deviceClass: DEVICE_CLASSES[deviceClass],
    currency: context.currency ?? "",
    collector: context.collector ?? COLLECTOR_NAME,
  });
}

/** @param {number} n */
function varintLength(n) {
  let bytes = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

/** Bytes of a length-delimited field numbered 1-15 whose payload is `payloadBytes`. */
function fieldLength(/** @type {number} */ payloadBytes) {
  return 1 + varintLength(payloadBytes) + payloadBytes;
}

class OpenBatch {
  /**
   * @param {string} pagePath @param {number} atMs
   * @param {string[]} kept the strings the server keeps for the stream, which this batch counts on
   */
  constructor(pagePath, atMs, kept) {
    this.strings = StringTable.carrying(kept, pagePath);
    this.kept = kept.length;
    /** @type {import("../gen/pulsewire/v1/events_pb.js").Event[]} */
    this.events = [];
    this.baseTimeMs = atMs;
    this.lastMs = atMs;
    this.bodyBytes = 0;
    for (const text of this.strings.strings) this.bodyBytes += fieldLength(utf8Length(text));
  }
}

export class Batcher {
  /**
   * @param {string} siteKey @param {string} deviceId
   * @param {{stream?: number, context?: BatchContext, storage?: Storage | null,
   *          limits?: BatchLimits, resumable?: boolean}} [options]
   */
  constructor(siteKey, deviceId,
    { stream = 0, context, storage = null, limits = {}, resumable = false } = {}) {
    this.limits = {
      maxEvents: limits.maxEvents ?? MAX_EVENTS,
      maxAgeMs: limits.maxAgeMs ?? MAX_AGE_MS,
      maxBytes: limits.maxBytes ?? MAX_BYTES,
      maxQueuedBatches: limits.maxQueuedBatches ?? MAX_BATCHES,
    };
    this.queue = new RetryQueue(deviceId, storage, { stream, cap: this.limits.maxQueuedBatches });
    /** @type {ResumeState | null} what the server keeps of the stream; null: always in full */
    this.resume = resumable ? new ResumeState(stream) : null;
    this._storage = storage;
    this._resumeKey = `pulsewire.${deviceId}.resume`;
    if (this.resume !== null && storage !== null) this.resume.load(read(storage, this._resumeKey));
    /** @type {WeakMap<Batch, number>} the stream of the queued batch each hand-out came from */
    this._handedStreams = new WeakMap();
    this.oversizeEvents = 0;
    this._siteKey = siteKey;
    this._deviceId = deviceId;
    this._context = contextToWire(context);
    this._contextLater = create(ContextSchema, { deviceClass: this._context.deviceClass });
    this._contextSent = false;
    /** @type {import("../gen/pulsewire/v1/batch_pb.js").Identity | undefined} */
    this._identity = undefined;
    /** @type {OpenBatch | null} */
    this._open = null;
    /** @type {number[]} */
    this._unsent = [];
  }

  /** @param {string} userId @param {string} email @param {string} signature */
  setIdentity(userId, email, signature) { // for the next batch sealed, once
    this._identity = create(IdentitySchema, { userId, email, signature });
  }

  /** @param {AppEvent} event @param {string} pagePath */
  add(event, pagePath) {
    if (this._open !== null && event.atMs - this._open.lastMs > UINT32_MAX) this._seal();
    if (this._open === null) this._open = this._opened(pagePath, event.atMs);
    if (!this._append(this._open, event)) {
      this._seal();
      this._open = this._opened(pagePath, event.atMs);
      if (!this._append(this._open, event)) {
        this._open = null;
        this.oversizeEvents++;
        return;
      }
    }
    if (this._open.events.length >= this.limits.maxEvents) this._seal();
  }

  /** True when batches were sealed since the last hand-out (`tick` would send them). */
  hasUnsent() {
    return this._unsent.length > 0;
  }

  /** When the open batch becomes due; null when nothing is buffered. @returns {number|null} */
  nextDeadlineMs() {
    return this._open === null ? null : this._open.baseTimeMs + this.limits.maxAgeMs;
  }

  /** The batches sealed since the last hand-out (the open one too, once due). */
  tick(/** @type {number} */ nowMs) {
    const deadline = this.nextDeadlineMs();
    if (deadline !== null && nowMs >= deadline) this._seal();
    const batches = this._unsent.map((seq) => this.queue.get(seq)).filter((b) => b !== undefined);
    this._unsent = [];
    return batches.map((b) => this._stamped(/** @type {Batch} */ (b), nowMs));
  }

  /** Every unacked batch, the buffered events sealed into a last one. */
  flush(/** @type {number} */ nowMs) {
    this.seal();
    return this.resend(nowMs);
  }

  /** Every unacked batch again, for a retry after a failed send. */
  resend(/** @type {number} */ nowMs) {
    this._unsent = [];
    return this.queue.pending().map((b) => this._stamped(b, nowMs));
  }

  /**
   * Forgets an acked batch (of this queue's stream unless `stream` says another); what the ack
   * says the server keeps (its `resume` token and `stringsKept`) is learnt first.
   * @param {number | bigint} seq @param {number} [stream]
   * @param {{resume?: bigint, stringsKept?: number}} [kept]
   */
  ack(seq, stream, { resume = 0n, stringsKept = 0 } = {}) {
    if (resume && this.resume !== null && (stream === undefined || stream === this.queue.stream)) {
      const acked = this.queue.get(seq);
      if (acked !== undefined && this.resume.learn(BigInt(resume), acked, stringsKept)) {
        this._saveResume();
      }
    }
    return this.queue.ack(seq, stream);
  }

  /** The server refused a resumed batch (FAILED_PRECONDITION): send in full again. */
  forgetResume() {
    this.resume?.forget();
  }

  /**
   * The stream of the queued batch that `batch` was handed out for: a resumed batch leaves its
   * stream out when the token stands for it.
   * @param {Batch} batch @returns {number}
   */
  queuedStream(batch) {
    return this._handedStreams.get(batch) ?? batch.stream;
  }

  /**
   * Stamps a handed-out batch with the moment it leaves, `handedMs` being when it was handed
   * out: its `sentAtMs`, or, timed by its age, that age grown by the wait since.
   * @param {Batch} batch @param {number} handedMs @param {number} nowMs
   */
  restamp(batch, handedMs, nowMs) {
    if (this.resume === null) batch.sentAtMs = BigInt(nowMs);
    else batch.ageMs = Math.min(batch.ageMs + Math.max(0, nowMs - handedMs), UINT32_MAX);
  }

  _saveResume() {
    if (this._storage === null || this.resume === null) return;
    try {
      this._storage.setItem(this._resumeKey, this.resume.toText());
    } catch {
      this.queue.storageFailures++; // full or refused: the next run starts in full
    }
  }

  /** @returns {Batch[]} */
  pending() {
    return this.queue.pending();
  }

  /** Encodes `event` into `batch` unless that would pass the byte cap. */
  _append(/** @type {OpenBatch} */ batch, /** @type {AppEvent} */ event) {
    const stringsBefore = batch.strings.length;
    const wire = encodeEvent(event, batch.strings);
    wire.dtMs = Math.max(0, event.atMs - batch.lastMs);
    let added = fieldLength(toBinary(EventSchema, wire).length);
    for (const text of batch.strings.strings.slice(stringsBefore)) {
      added += fieldLength(utf8Length(text));
    }
    if (this._headerBytes() + batch.bodyBytes + added > this.limits.maxBytes) {
      batch.strings.truncate(stringsBefore);
      return false;
    }
    batch.events.push(wire);
    batch.bodyBytes += added;
    batch.lastMs = Math.max(batch.lastMs, event.atMs);
    return true;
  }

  _headerBytes() {
    const head = create(BatchSchema, { siteKey: this._siteKey, deviceId: this._deviceId,
      identity: this._identity, context: this._context });
    const flag = this.resume !== null ? FLAG_FIELD_BYTES : 0;
    return toBinary(BatchSchema, head).length + INT_FIELDS * INT_FIELD_MAX_BYTES + flag;
  }

  /** Seals the open batch now, if it holds events. */
  seal() {
    this._seal();
  }

  _seal() {
    const batch = this._open;
    this._open = null;
    if (batch === null || batch.events.length === 0) return;
    const context = this._contextSent ? this._contextLater : this._context;
    const sealed = create(BatchSchema, {
      siteKey: this._siteKey,
      deviceId: this._deviceId,
      seq: BigInt(this.queue.nextSeq()),
      stream: this.queue.stream,
      baseTimeMs: BigInt(batch.baseTimeMs),
      strings: batch.strings.strings,
      events: batch.events,
      context: toBinary(ContextSchema, context).length ? context : undefined,
      identity: this._identity,
    });
    if (this.resume !== null) {
      sealed.resumable = true;
      sealed.stringsFrom = batch.kept;
    }
    this._identity = undefined;
    this._contextSent = true;
    this.queue.push(sealed);
    this._unsent.push(Number(sealed.seq));
  }

  /** @param {string} pagePath @param {number} atMs */
  _opened(pagePath, atMs) {
    if (this.resume === null) return new OpenBatch(pagePath, atMs, []);
    this.resume.expire(atMs);
    return new OpenBatch(pagePath, atMs, this.resume.kept);
  }

  /**
   * The batch as it goes out at `nowMs`, a copy (the queue keeps its own): resumed when it can
   * be, or with `sentAtMs` set, on the queued batch too, as the Python collector does.
   * @param {Batch} batch @param {number} nowMs @returns {Batch}
   */
  _stamped(batch, nowMs) {
    let out;
    if (this.resume !== null) {
      out = this.resume.wire(batch, nowMs);
    } else {
      batch.sentAtMs = BigInt(nowMs);
      out = clone(BatchSchema, batch);
    }
    this._handedStreams.set(out, batch.stream);
    return out;
  }
}

/** What storage holds under `key`; null when it refuses (as if nothing were saved). */
function read(/** @type {Storage} */ storage, /** @type {string} */ key) {
  try {
    return storage.getItem(key) ?? null;
  } catch {
    return null;
  }
}
