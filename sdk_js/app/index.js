// pulsewire's app client: typed events from React Native, web and Node apps to the ingest
// service, batched and retried by the rules the Python collector follows.
//
//   import { PulsewireClient, deviceIdFrom } from "pulsewire-sdk-js/app/index.js";
//   const client = new PulsewireClient({ transport, siteKey: "demo",
//     deviceId: deviceIdFrom(storage), storage, context: { currency: "USD" } });
//   client.pageView("/product/laptop", "Laptop");
//   client.track("cart_add", { sku: "sku-1", price: 19.99, cart_id: "c-1" });
//   await client.flush();

export { Code, ConnectError } from "@connectrpc/connect";
export { Batcher, COLLECTOR_NAME, MAX_AGE_MS, MAX_BYTES, MAX_EVENTS, contextToWire }
  from "./batching.js";
export { PulsewireClient, RETRYABLE } from "./client.js";
export { DEVICE_ID_KEY, MemoryStorage, deviceIdFrom, newDeviceId } from "./device.js";
export { encodeEvent } from "./events.js";
export { bufferedFetch } from "./fetch.js";
export { FRESH_MS, ResumeState } from "./resume.js";
export { MAX_BATCHES, RetryQueue, base64Decode, base64Encode } from "./retry_queue.js";
export { StringTable } from "./strings.js";
export { InvalidTrack, minorUnits, trackedEvent } from "./track.js";
