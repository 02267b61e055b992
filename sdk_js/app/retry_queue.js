// The unacked batches of one device and its batch counter, kept across app restarts.
//
// How this works (the rules of collector/retry_queue.py): every sealed batch takes the next
// `seq` and waits here until the server acks it; `pending()` is what to (re)send. Stream 0, the
// device's only sender (an app), numbers its batches from 1 with a counter kept in storage and
// saved before the number is used, so a restart never hands out a number twice; any other
// stream numbers from 1 in memory. The queue holds at most `cap` batches: on overflow the oldest
// is dropped and counted, so an app offline for a week cannot fill its storage. Storage is a
// synchronous `{getItem, setItem}` pair (localStorage, react-native-mmkv, or an adapter over an
// async store kept in memory); the queue is saved as base64 of each batch's bytes, one a line,
// newest kept first when the text would pass `maxSavedChars`, the same format the Python
// collector writes. Storage may be absent, refuse reads, or be full (`setItem` throws): the
// queue then keeps working in memory and counts the failure.

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BatchSchema } from "../gen/pulsewire/v1/batch_pb.js";

/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Batch} Batch */
/**
 * @typedef {object} Storage
 * @property {(key: string) => string | null | undefined} getItem
 * @property {(key: string, value: string) => void} setItem
 */

export const MAX_BATCHES = 50;
export const MAX_SAVED_CHARS = 1_000_000;

/** @param {number} stream @param {number | bigint} seq */
const keyOf = (stream, seq) => `${stream}:${seq}`;

export class RetryQueue {
  /**
   * @param {string} deviceId @param {Storage | null} [storage]
   * @param {{stream?: number, cap?: number, maxSavedChars?: number}} [options]
   */
  constructor(deviceId, storage = null,
    { stream = 0, cap = MAX_BATCHES, maxSavedChars = MAX_SAVED_CHARS } = {}) {
    this.cap = cap;
    this.stream = stream;
    this.droppedBatches = 0;
    this.storageFailures = 0;
    this._storage = storage;
    this._maxSavedChars = maxSavedChars;
    this._seqKey = `pulsewire.${deviceId}.seq`;
    this._queueKey = `pulsewire.${deviceId}.queue`;
    /** @type {Map<string, Batch>} oldest first */
    this._batches = new Map();
    this._lastSeq = 0;
    this._load();
  }

  get lastSeq() {
    return this._lastSeq;
  }

  get size() {
    return this._batches.size;
  }

  /** A fresh seq; stream 0 saves it before it is used so a restart never reuses it. */
  nextSeq() {
    if (this.stream) return ++this._lastSeq;
    this._lastSeq = Math.max(this._lastSeq, this._storedSeq()) + 1;
    this._save(this._seqKey, String(this._lastSeq));
    return this._lastSeq;
  }

  /** @param {Batch} batch */
  push(batch) {
    this._batches.set(keyOf(batch.stream, batch.seq), batch);
    this._dropOverCap();
    this._saveQueue();
  }

  /**
   * Forgets an acked batch (of this queue's stream unless `stream` says another).
   * @param {number | bigint} seq @param {number} [stream] @returns {boolean}
   */
  ack(seq, stream) {
    if (!this._batches.delete(keyOf(stream ?? this.stream, seq))) return false;
    this._saveQueue();
    return true;
  }

  /** @param {number | bigint} seq @returns {Batch | undefined} */
  get(seq) {
    return this._batches.get(keyOf(this.stream, seq));
  }

  /** The unacked batches, oldest first (the queue's own objects: do not modify). */
  pending() {
    return [...this._batches.values()];
  }

  _dropOverCap() {
    while (this._batches.size > this.cap) {
      const oldest = this._batches.keys().next().value;
      this._batches.delete(/** @type {string} */ (oldest));
      this.droppedBatches++;
    }
  }

  _load() {
    this._lastSeq = this.stream ? 0 : this._storedSeq();
    for (const line of (this._read(this._queueKey) ?? "").split("\n")) {
      if (!line) continue;
      let batch;
      try {
        batch = fromBinary(BatchSchema, base64Decode(line));
      } catch {
        this.storageFailures++;
        continue;
      }
      this._batches.set(keyOf(batch.stream, batch.seq), batch);
      if (batch.stream === this.stream) this._lastSeq = Math.max(this._lastSeq, Number(batch.seq));
    }
    this._dropOverCap();
  }

  _storedSeq() {
    const text = this._read(this._seqKey);
    if (!text) return 0;
    if (!/^\d+$/.test(text.trim())) {
      this.storageFailures++;
      return 0;
    }
    return Number(text.trim());
  }

  _saveQueue() {
    if (this._storage === null) return;
    const lines = [];
    let used = 0;
    for (const batch of [...this._batches.values()].reverse()) {
      const line = base64Encode(toBinary(BatchSchema, batch));
      used += line.length + 1;
      if (used > this._maxSavedChars) break;
      lines.push(line);
    }
    this._save(this._queueKey, lines.reverse().join("\n"));
  }

  /** @param {string} key @returns {string | null} */
  _read(key) {
    if (this._storage === null) return null;
    try {
      return this._storage.getItem(key) ?? null;
    } catch {
      this.storageFailures++; // storage refused altogether (a browser's SecurityError)
      return null;
    }
  }

  /** @param {string} key @param {string} value */
  _save(key, value) {
    if (this._storage === null) return;
    try {
      this._storage.setItem(key, value);
    } catch {
      this.storageFailures++; // quota exceeded, storage disabled: keep going in memory
    }
  }
}

// Base64 by hand: React Native's engines do not all have btoa/atob, nor Buffer.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const VALUES = new Map([...ALPHABET].map((c, i) => [c, i]));

/** @param {Uint8Array} bytes @returns {string} */
export function base64Encode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
    out += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? ALPHABET[n & 63] : "=";
  }
  return out;
}

/** Strict: throws on anything that is not padded standard base64. @param {string} text */
export function base64Decode(text) {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new SyntaxError("not base64");
  }
  const body = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let j = 0;
  for (const c of body) {
    value = (value << 6) | /** @type {number} */ (VALUES.get(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (value >> bits) & 0xff;
    }
  }
  return out;
}
