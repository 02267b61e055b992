// Sends a shop's backend messages to pulsewire with a real Segment-spec client from the npm
// registry, as a backend would, and prints one JSON line: every request the client made (its
// URL, method, headers, and body as JSON, gzip unpacked) and every error the client reported.
//
//   node tests/web/segment_clients.mjs '{"client": "analytics-node", "host": "http://127.0.0.1:8080",
//     "writeKey": "...", "rounds": 2}'
//
// Each round is a fresh client (as after a restart) sending the same identify and Product Added
// with the same messageIds, and flushing before the next round starts.
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";

const require = createRequire(new URL("../../sdk_js/package.json", import.meta.url));
const plan = JSON.parse(process.argv[2]);
const requests = [];
const errors = [];

const identify = {
  userId: "user-7",
  traits: { email: "seven@example.com", name: "Seven" },
  messageId: "m-identify-7",
};
const added = {
  userId: "user-7",
  event: "Product Added",
  properties: { product_id: "sku-1", price: 19.99, quantity: 2, cart_id: "cart-7", currency: "EUR" },
  messageId: "m-added-7",
};

function record(url, method, headers, body) {
  const flat = Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const raw = typeof body === "string" ? Buffer.from(body) : Buffer.from(body ?? "");
  const text = flat["content-encoding"] === "gzip" ? gunzipSync(raw).toString() : raw.toString();
  requests.push({ url, method: method.toUpperCase(), headers: flat, body: JSON.parse(text) });
}

// Segment's own Node library: its documented `http_request` event shows each request.
async function analyticsNode() {
  const { Analytics } = require("@segment/analytics-node");
  const client = new Analytics({ writeKey: plan.writeKey, host: plan.host, maxRetries: 1, flushInterval: 50 });
  client.on("http_request", (r) => record(r.url, r.method, r.headers, r.body));
  client.on("error", (err) => errors.push(String(err?.reason ?? err?.message ?? err)));
  const sent = (message) => (err) => err && errors.push(`${message.messageId}: ${err}`);
  client.identify(identify, sent(identify));
  client.track(added, sent(added));
  await client.closeAndFlush({ timeout: 10_000 });
}

// RudderStack's Node SDK posts with axios: an interceptor on its instance shows each request
// (gzip is on by default, as a user of the SDK has it).
async function rudderSdkNode() {
  const Analytics = require("@rudderstack/rudder-sdk-node");
  const client = new Analytics(plan.writeKey, {
    dataPlaneUrl: plan.host, retryCount: 0, flushInterval: 50, logLevel: "error",
    errorHandler: (err) => errors.push(`${err.response?.status ?? err.code}: ${err.message}`),
  });
  client.axiosInstance.interceptors.request.use((config) => {
    const auth = config.auth ? { authorization: `Basic ${btoa(`${config.auth.username}:`)}` } : {};
    record(config.url, config.method, { ...config.headers.toJSON(), ...auth }, config.data);
    return config;
  });
  await new Promise((resolve) => client.identify(identify, resolve));
  await new Promise((resolve) => client.track(added, resolve));
  await client.flush();
}

const clients = { "analytics-node": analyticsNode, "rudder-sdk-node": rudderSdkNode };
try {
  for (let round = 0; round < (plan.rounds ?? 1); round++) await clients[plan.client]();
} catch (err) {
  errors.push(String(err?.stack ?? err));
}
console.log(JSON.stringify({ client: plan.client, requests, errors }));
