// What the server keeps of this device's stream, so that later batches need not repeat it: the
// rules of collector/resume.py, and the same text in storage, so either collector reads what
// the other saved.
//
// How this works: a resumable batcher marks its batches `resumable`; the server keeps the first
// such batch's site, device, context and strings and acks it with a `resume` token and how many
// strings it kept. From then on a batch goes resumed: the token instead of site key, device id,
// stream and context, and without its first `stringsFrom` strings, which are the kept ones (each
// batch is built on the kept strings known when it was opened, and records how many it counts
// on in `stringsFrom`). The server only ever appends to a stream's kept strings, and says so in
// an ack (`stringsKept` past what was known), so what is known here is always a prefix of what
// the server holds. A server that lost the token (restarted, or another node answered) refuses
// the batch with FAILED_PRECONDITION: the client calls `forget`, and the batch goes again in
// full, as every batch is kept in full and made resumed only when it is sent.
//
// Senders of one device carry on from each other: the state is saved in the device's storage,
// and a later sender's batches (the app started with a stream of its own, a browser's next page
// load) name the earlier stream's token together with their own `stream`, counting on its kept
// strings. The server starts the new stream from the earlier one's, and its first ack
// gives the new stream a token of its own. (A device's only sender, stream 0, cannot name a
// stream of its own, so it carries on only from its own earlier state.) A state not confirmed
// for FRESH_MS is not used: the server forgets idle streams.

import { clone } from "@bufbuild/protobuf";
import { BatchSchema } from "../gen/pulsewire/v1/batch_pb.js";

/** @typedef {import("../gen/pulsewire/v1/batch_pb.js").Batch} Batch */

export const FRESH_MS = 20 * 60_000; // the server keeps an idle stream for 30 minutes
const UINT32_MAX = 2 ** 32 - 1;
const TOKEN_LIMIT = 2n ** 64n;
const STREAM_LIMIT = 2 ** 31;
const SAVE_EVERY_MS = 60_000; // an unchanged state is saved again at most this often

export class ResumeState {
  /** @param {number} ownStream the stream of the batcher this state serves */
  constructor(ownStream) {
    this.ownStream = ownStream;
    this.token = 0n;
    this.stream = 0; // the stream the token belongs to: own, or an earlier run's
    /** @type {string[]} */
    this.kept = [];
    this.learnedMs = 0; // the time of the batch whose ack last named the token
  }

  /**
   * An ack of this stream's `batch` (in full) named `token` and `kept` strings; true when what
   * is known changed (and is worth saving for the next run).
   * @param {bigint} token @param {Batch} batch @param {number} kept @returns {boolean}
   */
  learn(token, batch, kept) {
    if (!token) return false;
    const strings = batch.strings;
    const baseTimeMs = Number(batch.baseTimeMs);
    if (!this.token || this.stream !== this.ownStream) {
      this.token = token;
      this.stream = this.ownStream;
      this.kept = strings.slice(0, kept);
    } else if (token !== this.token) {
      return false; // a second token for this stream: the first serves as well
    } else if (kept > this.kept.length && startsWith(strings, this.kept, this.kept.length)) {
      this.kept = strings.slice(0, kept);
    } else if (baseTimeMs - this.learnedMs < SAVE_EVERY_MS) {
      return false;
    }
    this.learnedMs = Math.max(this.learnedMs, baseTimeMs);
    return true;
  }

  /** The server no longer holds the token: send in full until an ack gives another. */
  forget() {
    this.token = 0n;
    this.stream = 0;
    this.kept = [];
  }

  /** Forgets a state that the server has likely forgotten by now (idle too long). */
  expire(/** @type {number} */ nowMs) {
    if (this.token && nowMs - this.learnedMs > FRESH_MS) this.forget();
  }

  /**
   * The batch as it goes out now: timed by its age, and resumed when the server holds what it
   * leaves out (a batch of the token's stream, or of this stream carrying on from it, whose
   * counted-on strings are kept). A copy: the queue keeps its own.
   * @param {Batch} batch @param {number} nowMs @returns {Batch}
   */
  wire(batch, nowMs) {
    const out = clone(BatchSchema, batch);
    out.ageMs = Math.min(Math.max(0, nowMs - Number(batch.baseTimeMs)), UINT32_MAX);
    out.baseTimeMs = 0n;
    out.sentAtMs = 0n;
    this.expire(nowMs);
    const counted = batch.stringsFrom;
    const carriesOn = batch.stream === this.ownStream && this.ownStream !== 0; // 0: unnamable
    if (this.token && (batch.stream === this.stream || carriesOn)
        && counted <= this.kept.length && startsWith(batch.strings, this.kept, counted)) {
      out.resume = this.token;
      out.siteKey = "";
      out.deviceId = "";
      out.context = undefined;
      out.resumable = false;
      if (batch.stream === this.stream) out.stream = 0; // else it carries on from the token's
      out.strings = out.strings.slice(counted);
    } else {
      out.stringsFrom = 0;
    }
    return out;
  }

  /** The saved form, as collector/resume.py writes it (Python's json.dumps, ASCII only). */
  toText() {
    const text = JSON.stringify({ token: this.token.toString(16), stream: this.stream,
      at: this.learnedMs, kept: this.kept });
    return text.replace(/[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }

  /** What an earlier run saved; anything unreadable is ignored. @param {string | null} text */
  load(text) {
    let saved;
    try {
      saved = JSON.parse(text || "");
    } catch {
      return;
    }
    if (saved === null || typeof saved !== "object" || Array.isArray(saved)) return;
    const { token, stream, at, kept } = saved;
    if (typeof token !== "string" || !/^[0-9a-fA-F]+$/.test(token)) return;
    if (!Number.isSafeInteger(stream) || !Number.isSafeInteger(at)) return;
    if (!Array.isArray(kept) || !kept.every((s) => typeof s === "string")) return;
    const value = BigInt(`0x${token}`);
    if (value > 0n && value < TOKEN_LIMIT && stream >= 0 && stream < STREAM_LIMIT) {
      this.token = value;
      this.stream = stream;
      this.learnedMs = at;
      this.kept = kept;
    }
  }
}

/** Whether the first `count` of `strings` are the first `count` of `prefix`. */
function startsWith(/** @type {string[]} */ strings, /** @type {string[]} */ prefix,
  /** @type {number} */ count) {
  if (strings.length < count || prefix.length < count) return false;
  for (let i = 0; i < count; i++) if (strings[i] !== prefix[i]) return false;
  return true;
}
