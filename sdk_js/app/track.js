// What `client.track(name, props)` becomes: the same rules as collector/track.py.
//
// How this works: a few names are commerce and engagement events the engine knows by type
// (cart_add, cart_remove, checkout_start, purchase, form, media); their props are checked and
// turned into typed events, with prices converted to integer minor units of the currency
// (`price: 19.99` in USD -> 1999n; `price_minor: 1999` is taken as is). The conversion works on
// the decimal digits of the amount, never on float products (19.99 * 100 is 1998.9999...), and
// rounds half away from zero. Any other name is a custom event whose props keep their order;
// props that are null or undefined are left out.

/** @typedef {import("./events.js").AppEvent} AppEvent */
/** @typedef {import("./events.js").PropValue} PropValue */
/** @typedef {Record<string, PropValue | null | undefined>} Props */

const ZERO_DECIMALS = new Set(
  "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(" "));
const THREE_DECIMALS = new Set(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]);
const UINT64_MAX = 2n ** 64n - 1n;
const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** A tracked event's props do not fit its type (missing sku, bad price, unknown action). */
export class InvalidTrack extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "InvalidTrack";
  }
}

/** @param {unknown} value */
function repr(value) {
  if (typeof value === "string") return `'${value}'`;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "object" && value !== null) return JSON.stringify(value);
  return String(value);
}

/**
 * `amount` in major units of `currency` as a whole count of minor units.
 * @param {PropValue} amount @param {string} currency @returns {bigint}
 */
export function minorUnits(amount, currency) {
  if (typeof amount === "boolean") {
    throw new InvalidTrack(`amount must be a number, not ${repr(amount)}`);
  }
  const code = currency.toUpperCase();
  const exponent = ZERO_DECIMALS.has(code) ? 0 : THREE_DECIMALS.has(code) ? 3 : 2;
  const match = DECIMAL.exec(String(amount).trim());
  if (match === null || (!match[2] && !match[3])) {
    throw new InvalidTrack(`amount ${repr(amount)} is not a number`);
  }
  const [, sign, whole = "", fraction = "", power = "0"] = match;
  const shift = Number(power) + exponent - fraction.length; // digits * 10^shift
  const digits = BigInt(whole + fraction || "0");
  let minor;
  if (shift >= 0) {
    minor = digits * 10n ** BigInt(shift);
  } else {
    const scale = 10n ** BigInt(-shift);
    minor = digits / scale + ((digits % scale) * 2n >= scale ? 1n : 0n);
  }
  if (sign === "-" && minor > 0n) throw new InvalidTrack(`amount ${repr(amount)} is negative`);
  if (minor > UINT64_MAX) throw new InvalidTrack(`amount ${repr(amount)} is too large`);
  return minor;
}

/** @param {Props} props @param {string} key @param {boolean} [required] */
function text(props, key, required = false) {
  const value = props[key];
  if (value === null || value === undefined) {
    if (required) throw new InvalidTrack(`'${key}' is required`);
    return "";
  }
  return String(value);
}

/** @param {Props} props @param {string} key @param {number} fallback @returns {number} */
function count(props, key, fallback) {
  const value = props[key];
  if (value === null || value === undefined) return fallback;
  if (typeof value === "bigint" && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(value);
  }
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidTrack(`'${key}' must be a non-negative whole number, not ${repr(value)}`);
  }
  return value;
}

/** @param {Props} props @param {string} key @param {string} currency @returns {bigint} */
function money(props, key, currency) {
  const minorKey = `${key}_minor`;
  const minor = props[minorKey];
  if (minor !== null && minor !== undefined) {
    if (typeof minor === "bigint" && minor >= 0n && minor <= UINT64_MAX) return minor;
    return BigInt(count(props, minorKey, 0));
  }
  const value = props[key];
  return value === null || value === undefined ? 0n : minorUnits(value, currency);
}

/** @type {Record<string, (props: Props, atMs: number, currency: string) => AppEvent>} */
const TYPED = {
  cart_add: (p, atMs, cur) => cartLine("cart_add", p, atMs, cur),
  cart_remove: (p, atMs, cur) => cartLine("cart_remove", p, atMs, cur),
  checkout_start: (p, atMs, cur) => ({ kind: "checkout_start", atMs, cartId: text(p, "cart_id"),
    valueMinor: money(p, "value", cur) }),
  purchase(p, atMs, cur) {
    const currency = text(p, "currency");
    const valueMinor = money(p, "value", currency || cur);
    return { kind: "purchase", atMs, orderId: text(p, "order_id", true), valueMinor,
      currency: currency || cur, cartId: text(p, "cart_id") }; // said, not implied
  },
  form(p, atMs) {
    const action = text(p, "action") || "submit";
    if (action !== "submit" && action !== "wishlist" && action !== "signup") {
      throw new InvalidTrack(`form action must be submit, wishlist or signup: ${repr(p)}`);
    }
    return { kind: "form", atMs, name: text(p, "name", true), action };
  },
  media(p, atMs) {
    const action = text(p, "action") || "complete";
    if (action !== "complete" && action !== "download") {
      throw new InvalidTrack(`media action must be complete or download: ${repr(p)}`);
    }
    return { kind: "media", atMs, asset: text(p, "asset", true), action };
  },
};

/**
 * @param {"cart_add" | "cart_remove"} kind @param {Props} p @param {number} atMs
 * @param {string} cur @returns {AppEvent}
 */
function cartLine(kind, p, atMs, cur) {
  const sku = text(p, "sku", true);
  const cartId = text(p, "cart_id");
  return { kind, atMs, sku, qty: count(p, "qty", 1), priceMinor: money(p, "price", cur), cartId };
}

/**
 * The event `track(name, props)` stands for; prices are in `currency` unless props say.
 * @param {string} name @param {Props} props @param {number} atMs @param {string} currency
 * @returns {AppEvent}
 */
export function trackedEvent(name, props, atMs, currency) {
  const typed = Object.hasOwn(TYPED, name) ? TYPED[name] : undefined;
  if (typed !== undefined) return typed(props, atMs, currency);
  /** @type {Array<[string, PropValue]>} */
  const kept = [];
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined) continue;
    if (!["string", "number", "boolean", "bigint"].includes(typeof value)) {
      throw new InvalidTrack(`prop '${key}' must be a string, number or boolean`);
    }
    kept.push([key, value]);
  }
  return { kind: "custom", atMs, name, props: kept };
}
