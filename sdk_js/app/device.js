// The device id: random, made once per install and kept in the app's storage, so the server can
// join an anonymous history to the user who later identifies on the same device.

/** @typedef {import("./retry_queue.js").Storage} Storage */

export const DEVICE_ID_KEY = "pulsewire.device_id";

/** 16 random bytes as hex, from the platform's CSPRNG (React Native: a polyfill of it). */
export function newDeviceId() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The id kept in `storage`, made and saved on first use. Without working storage every start
 * is a new device (and a new seq counter), which the server handles, at the cost of history.
 * @param {Storage | null} storage @returns {string}
 */
export function deviceIdFrom(storage) {
  let id = null;
  try {
    id = storage?.getItem(DEVICE_ID_KEY) ?? null;
  } catch {
    id = null;
  }
  if (id && id.length <= 64) return id;
  id = newDeviceId();
  try {
    storage?.setItem(DEVICE_ID_KEY, id);
  } catch {
    // storage is full or refused: the id lives as long as the process
  }
  return id;
}

/** A storage in memory: for tests, and for apps that keep nothing between starts. */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.items = new Map();
  }

  /** @param {string} key */
  getItem(key) {
    return this.items.get(key) ?? null;
  }

  /** @param {string} key @param {string} value */
  setItem(key, value) {
    this.items.set(key, String(value));
  }
}
