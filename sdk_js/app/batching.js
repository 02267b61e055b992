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
// moment. Not repeated, as in Python: the whole context goes in the first batch sealed, later
// ones carry only the device class when there is one; an identity given by `setIdentity` goes
// in the next batch sealed, once (an identify event carries its own; the server remembers
// which user a device became).

import { clone, create, toBinary } from "@bufbuild/protobuf";
import { BatchSchema, ContextSchema, IdentitySchema } from "../gen/pulsewire/v1/batch_pb.js";
import { EventSchema } from "../gen/pulsewire/v1/events_pb.js";
import { encodeEvent } from "./events.js";
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
  /** @param {string} pagePath @param {number} atMs */
  constructor(pagePath, atMs) {
    this.strings = new StringTable(pagePath);
    /** @type {import("../gen/pulsewire/v1/events_pb.js").Event[]} */
    this.events = [];
    this.baseTimeMs = atMs;
    this.lastMs = atMs;
    this.bodyBytes = fieldLength(utf8Length(pagePath));
  }
}

export class Batcher {
  /**
   * @param {string} siteKey @param {string} deviceId
   * @param {{stream?: number, context?: BatchContext, storage?: Storage | null,
   *          limits?: BatchLimits}} [options]
   */
  constructor(siteKey, deviceId, { stream = 0, context, storage = null, limits = {} } = {}) {
    this.limits = {
      maxEvents: limits.maxEvents ?? MAX_EVENTS,
      maxAgeMs: limits.maxAgeMs ?? MAX_AGE_MS,
      maxBytes: limits.maxBytes ?? MAX_BYTES,
      maxQueuedBatches: limits.maxQueuedBatches ?? MAX_BATCHES,
    };
    this.queue = new RetryQueue(deviceId, storage, { stream, cap: this.limits.maxQueuedBatches });
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
    if (this._open === null) this._open = new OpenBatch(pagePath, event.atMs);
    if (!this._append(this._open, event)) {
      this._seal();
      this._open = new OpenBatch(pagePath, event.atMs);
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
    return batches.map((b) => stamped(/** @type {Batch} */ (b), nowMs));
  }

  /** Every unacked batch, the buffered events sealed into a last one. */
  flush(/** @type {number} */ nowMs) {
    this.seal();
    return this.resend(nowMs);
  }

  /** Every unacked batch again, for a retry after a failed send. */
  resend(/** @type {number} */ nowMs) {
    this._unsent = [];
    return this.queue.pending().map((b) => stamped(b, nowMs));
  }

  /** @param {number | bigint} seq @param {number} [stream] */
  ack(seq, stream) {
    return this.queue.ack(seq, stream);
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
    return toBinary(BatchSchema, head).length + 4 * INT_FIELD_MAX_BYTES;
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
    this._identity = undefined;
    this._contextSent = true;
    this.queue.push(sealed);
    this._unsent.push(Number(sealed.seq));
  }
}

/** Sets `sentAtMs` on the queued batch and hands out a copy of it. */
function stamped(/** @type {Batch} */ batch, /** @type {number} */ nowMs) {
  batch.sentAtMs = BigInt(nowMs);
  return clone(BatchSchema, batch);
}
