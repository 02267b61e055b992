// The app client's own events, and their encoding into wire events.
//
// How this works: `track`, `pageView` and `identify` make plain event objects that carry their
// time (`atMs`, the app's clock) and plain strings; `encodeEvent` turns one into a wire Event,
// interning every string field into the batch's StringTable, in the same field order as the
// Python collector (collector/events.py), so both produce the same bytes for the same events.
// `dtMs` is left at 0 for the batcher to fill in. A quantity of 1 is sent as 0 (the wire says
// 0 means 1).

import { create } from "@bufbuild/protobuf";
import { EventSchema, Form_Action, Media_Action } from "../gen/pulsewire/v1/events_pb.js";

/** @typedef {import("../gen/pulsewire/v1/events_pb.js").Event} WireEvent */
/** @typedef {import("./strings.js").StringTable} StringTable */
/** @typedef {string | number | boolean | bigint} PropValue */
/** @typedef {"submit" | "wishlist" | "signup"} FormAction */
/** @typedef {"complete" | "download"} MediaAction */

/**
 * @typedef {{kind: "page_view", atMs: number, path: string, title: string, referrer: string}
 *   | {kind: "cart_add" | "cart_remove", atMs: number, sku: string, qty: number,
 *      priceMinor: bigint, cartId: string}
 *   | {kind: "checkout_start", atMs: number, cartId: string, valueMinor: bigint}
 *   | {kind: "purchase", atMs: number, orderId: string, valueMinor: bigint, currency: string,
 *      cartId: string}
 *   | {kind: "form", atMs: number, name: string, action: FormAction}
 *   | {kind: "media", atMs: number, asset: string, action: MediaAction}
 *   | {kind: "identify", atMs: number, userId: string, email: string, signature: string,
 *      traits: Array<[string, string]>}
 *   | {kind: "custom", atMs: number, name: string, props: Array<[string, PropValue]>}
 * } AppEvent
 */

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const FORM_ACTIONS = { submit: Form_Action.SUBMIT, wishlist: Form_Action.WISHLIST,
  signup: Form_Action.SIGNUP };
const MEDIA_ACTIONS = { complete: Media_Action.COMPLETE, download: Media_Action.DOWNLOAD };

/**
 * One custom-event property. Whole numbers up to 2^53 and bigints within int64 go as `int`,
 * other numbers as `num` (JavaScript cannot tell 3.0 from 3: send 3.5, not 3.0, to get num).
 * @param {string} key @param {PropValue} value @param {StringTable} strings
 */
function encodeProp(key, value, strings) {
  const prop = { key: strings.index(key) };
  if (typeof value === "boolean") return { ...prop, value: { case: "flag", value } };
  if (typeof value === "bigint") {
    return value >= INT64_MIN && value <= INT64_MAX
      ? { ...prop, value: { case: "int", value } }
      : { ...prop, value: { case: "num", value: Number(value) } };
  }
  if (typeof value === "number") {
    return Number.isSafeInteger(value)
      ? { ...prop, value: { case: "int", value: BigInt(value) } }
      : { ...prop, value: { case: "num", value } };
  }
  return { ...prop, value: { case: "str", value: strings.index(value) } };
}

/**
 * The wire form of `event`, its strings interned into `strings`; dtMs is left at 0.
 * @param {AppEvent} event @param {StringTable} strings @returns {WireEvent}
 */
export function encodeEvent(event, strings) {
  const s = (/** @type {string} */ text) => strings.index(text);
  switch (event.kind) {
    case "page_view": {
      const path = s(event.path);
      const title = s(event.title);
      return wire("pageView", { path, title, referrer: s(event.referrer) });
    }
    case "cart_add":
    case "cart_remove": {
      const sku = s(event.sku);
      const line = { sku, qty: event.qty === 1 ? 0 : event.qty, priceMinor: event.priceMinor,
        cartId: s(event.cartId) };
      return wire(event.kind === "cart_add" ? "cartAdd" : "cartRemove", line);
    }
    case "checkout_start":
      return wire("checkoutStart", { cartId: s(event.cartId), valueMinor: event.valueMinor });
    case "purchase": {
      const orderId = s(event.orderId);
      const currency = s(event.currency);
      return wire("purchase", { orderId, valueMinor: event.valueMinor, currency,
        cartId: s(event.cartId) });
    }
    case "form":
      return wire("form", { name: s(event.name), action: FORM_ACTIONS[event.action] });
    case "media":
      return wire("media", { asset: s(event.asset), action: MEDIA_ACTIONS[event.action] });
    case "identify":
      return wire("identify", { userId: event.userId, email: event.email,
        signature: event.signature, traits: Object.fromEntries(event.traits) });
    case "custom": {
      const name = s(event.name);
      const props = event.props.map(([k, v]) => encodeProp(k, v, strings));
      return wire("custom", { name, props });
    }
    default:
      throw new TypeError(`not an app event: ${JSON.stringify(event)}`);
  }
}

/** @param {string} kind @param {object} value @returns {WireEvent} */
function wire(kind, value) {
  return create(EventSchema, /** @type {any} */ ({ payload: { case: kind, value } }));
}
