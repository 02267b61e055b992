// The page side of the collector in browser mode. The loader keeps recording raw signals on
// the page; this module starts a Web Worker that runs Pyodide and the collector
// (collector/browser.py), takes the loader's signals and feeds them to it. Pyodide's boot and
// every line of Python run off the page's thread: the page never waits for them.
//
// The worker sends its batches itself (gRPC-Web) and mirrors its retry queue and its resume
// state (what the server keeps of this page load, which the next one carries on from) here,
// where they are kept in localStorage for the next page load, along with its "last words": the
// batch it would still send if the page ended now. Page hide is the page's business, because a worker dies
// with its page: the unacked batches and the last words go in one beacon (gRPC-Web frames as
// text/plain, no preflight), and the page goes back to the loader, which sends the signals the
// worker has not taken in yet raw as chunk 1, with the history of those it did (the server
// replays them, the page's end included; the worker's batches and theirs never share a seq).
//
// `h` is the loader's handoff: {site, device, load, t0, ctx, assets, base, take, taken, back}.
export function boot(h) {
  const started = performance.now();
  const url = h.assets + "worker.mjs";
  const key = `pulsewire.${h.device}.queue`;
  const resumeKey = `pulsewire.${h.device}.resume`;
  const worker = new URL(url).origin === location.origin
    ? new Worker(url, { type: "module" })
    : new Worker(URL.createObjectURL(new Blob([`import ${JSON.stringify(url)};`],
      { type: "text/javascript" })), { type: "module" });
  let queue = "";
  let resume = "";
  try {
    queue = localStorage.getItem(key) || "";
    resume = localStorage.getItem(resumeKey) || "";
  } catch (_) {
    // storage blocked: the queue lives in memory only
  }
  let last = null; // the worker's last words: a serialized Batch
  let over = false;

  worker.onmessage = ({ data }) => {
    if (data.taken !== undefined) {
      h.taken(data.taken, data.at);
      last = data.last;
    }
    if (data.queue !== undefined) {
      queue = data.queue;
      try {
        localStorage.setItem(key, queue);
      } catch (_) {
        // full or blocked: the worker still holds the batches
      }
    }
    if (data.resume !== undefined) {
      try {
        localStorage.setItem(resumeKey, data.resume);
      } catch (_) {
        // full or blocked: the next page load sends its first batch in full
      }
    }
    if (data.ready && window.pw) window.pw.boot_ms = Math.round(performance.now() - started);
  };
  worker.onerror = () => leave(); // could not start: the loader sends raw

  const post = (signals) => worker.postMessage({ s: signals });
  const leave = () => {
    if (over) return;
    over = true;
    h.back(1); // the page's own signals first: the loader sends them raw at once
    const batches = queue.split("\n").filter(Boolean)
      .map((line) => Uint8Array.from(atob(line), (c) => c.charCodeAt(0)));
    if (last) batches.push(last);
    const frames = batches.map((bytes) => {
      const frame = new Uint8Array(5 + bytes.length);
      new DataView(frame.buffer).setUint32(1, bytes.length);
      frame.set(bytes, 5);
      return frame;
    });
    if (frames.length) {
      navigator.sendBeacon(h.base + "/pw/v1/beacon", new Blob(frames, { type: "text/plain" }));
    }
    worker.terminate();
  };

  worker.postMessage({
    init: {
      site: h.site, device: h.device, load: h.load, t0: h.t0, ctx: h.ctx, base: h.base,
      queue, resume, agent: navigator.userAgent, webdriver: Boolean(navigator.webdriver),
      vw: innerWidth, vh: innerHeight,
    },
  });
  const signals = h.take();
  if (!signals) {
    worker.terminate();
    return;
  }
  h.sink = (signal) => {
    if (over) return;
    post([signal]);
    if (signal[1] === "x") leave();
  };
  post(signals);
  if (window.pw) window.pw.worker = worker;
}
