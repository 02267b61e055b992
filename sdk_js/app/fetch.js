// A fetch for gRPC-Web where the platform's fetch cannot stream a response body.
//
// @connectrpc/connect-web reads every answer from `response.body`, a ReadableStream. React
// Native's fetch has no such body (it reads whole responses over its bridge); wrapping it with
// `bufferedFetch` reads the answer whole with `arrayBuffer()` and hands it on as a one-chunk
// stream. An ingest answer is one small Ack, so nothing is lost by buffering. The platform must
// still have a global ReadableStream (on React Native: web-streams-polyfill).

/**
 * @param {(input: any, init?: any) => Promise<{status: number, headers: any,
 *   arrayBuffer(): Promise<ArrayBuffer>}>} [baseFetch] defaults to the global fetch
 * @returns {typeof globalThis.fetch}
 */
export function bufferedFetch(baseFetch = globalThis.fetch) {
  const buffered = async (/** @type {any} */ input, /** @type {any} */ init) => {
    const response = await baseFetch(input, init);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const body = new ReadableStream({
      start(controller) {
        if (bytes.length) controller.enqueue(bytes);
        controller.close();
      },
    });
    return { status: response.status, headers: response.headers,
      ok: response.status >= 200 && response.status < 300, body };
  };
  return /** @type {any} */ (buffered);
}
