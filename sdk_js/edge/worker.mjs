// The reference edge worker: the pulsewire collector under Pyodide in Node.js, serving a
// first-party endpoint for pages whose script tag says data-mode="edge".
//
//   node sdk_js/edge/worker.mjs --listen 127.0.0.1:8787 --upstream http://127.0.0.1:8080
//
// POST /collect takes the loader's raw signals (collector/raw_signals.py). The collector code
// that runs in the browser turns them into batches here (collector/edge.py: bot filtering by user
// agent, device class and locale from the request, each chunk replayed with its history, so
// chunks may come in any order and more than once), and the batches go to the server as
// gRPC-Web unary calls; an acked batch is forgotten, any other stays queued and goes again with
// the page load's next chunk. A chunk that came before the one it follows is held (202) until
// that one comes or two seconds pass. GET /stats counts what was dropped and why;
// GET /healthz answers 200 once Pyodide is up. Everything is loaded from build/web (no network
// but the upstream server).
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values: opts } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:8787" },
    upstream: { type: "string", default: "http://127.0.0.1:8080" },
    build: { type: "string", default: path.join(root, "build", "web") },
    origin: { type: "string", multiple: true, default: [] },
  },
});
const MAX_BODY = 64 * 1024;
const SEND = "/pulsewire.v1.Ingest/Send";

const manifest = JSON.parse(readFileSync(path.join(opts.build, "manifest.json"), "utf8"));
const assets = path.join(opts.build, "assets", manifest.assets_id) + path.sep;
const { loadPyodide } = await import(pathToFileURL(path.join(assets, "pyodide.mjs")));
const started = performance.now();
const pyodide = await loadPyodide({ indexURL: assets, lockFileURL: assets + "pyodide-lock.json" });
const failures = [];
await pyodide.loadPackage("pulsewire-collector", {
  messageCallback: () => {},
  errorCallback: (m) => failures.push(m),
});
if (failures.length) throw new Error("cannot load the collector: " + failures.join("; "));
pyodide.runPython(`
import json
from collector.edge import EdgeSettings, PageLoads
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import InvalidSignals, parse_payload
from collector.session import SignalSettings

_sites = {}

def _loads(site, config):
    if site not in _sites:
        raw = json.loads(config) if config else {}
        signals = SignalSettings.from_config(raw.get("signals", {}))
        _sites[site] = PageLoads(EdgeSettings(signals=signals,
                                              collector_name="pyodide-edge/0.1.0"))
    return _sites[site]

def site_of(body):
    return parse_payload(body).site

def accept(body, config, user_agent, accept_language, now_ms):
    try:
        payload = parse_payload(body)
        taken = _loads(payload.site, config).accept(
            payload, user_agent=user_agent, accept_language=accept_language, now_ms=now_ms)
    except InvalidSignals as err:
        return [str(err), "", []]
    outcome = f"{taken.outcome}: {taken.reason}" if taken.reason else taken.outcome
    return ["", outcome, [b.SerializeToString() for b in taken.batches]]

def due(now_ms):
    return [[site, b.SerializeToString()] for site, loads in _sites.items()
            for b in loads.due(now_ms)]

def ack(site, data):
    _sites[site].ack(batch_pb2.Ack.FromString(data.to_bytes()), site)

def forget(site, data):
    batch = batch_pb2.Batch.FromString(data.to_bytes())
    _sites[site].ack(batch_pb2.Ack(seq=batch.seq, stream=batch.stream,
                                   device_id=batch.device_id), site)

def stats():
    dropped = {}
    for loads in _sites.values():
        for reason, n in loads.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
    outcomes = {}
    for loads in _sites.values():
        for outcome, n in loads.outcomes.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    return json.dumps({"dropped": dropped, "page_loads": sum(len(l) for l in _sites.values()),
                       "resent_chunks": outcomes.get("duplicate", 0), "outcomes": outcomes,
                       "expired_unacked": sum(l.expired_unacked for l in _sites.values())})
`);
const py = {
  siteOf: pyodide.globals.get("site_of"),
  accept: pyodide.globals.get("accept"),
  ack: pyodide.globals.get("ack"),
  forget: pyodide.globals.get("forget"),
  due: pyodide.globals.get("due"),
  stats: pyodide.globals.get("stats"),
};
const bootMs = Math.round(performance.now() - started);
const configs = new Map(); // site -> its collector config (JSON text) from the server
const counts = { chunks: 0, refused_chunks: 0, forwarded: 0, acked: 0, upstream_errors: 0 };

async function siteConfig(site) {
  if (!configs.has(site)) {
    try {
      const answer = await fetch(`${opts.upstream}/pw/v1/config/${encodeURIComponent(site)}`);
      configs.set(site, answer.ok ? await answer.text() : "");
    } catch {
      return ""; // upstream down: defaults now, ask again next time
    }
  }
  return configs.get(site);
}

function frame(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

async function forward(site, batch) {
  counts.forwarded += 1;
  let answer;
  try {
    answer = await fetch(opts.upstream + SEND, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: frame(batch),
    });
  } catch {
    counts.upstream_errors += 1;
    return; // stays queued: the page load's next chunk sends it again
  }
  const status = answer.headers.get("grpc-status");
  const body = new Uint8Array(await answer.arrayBuffer());
  if (status === null && body.length > 5) {
    const length = new DataView(body.buffer).getUint32(1);
    py.ack(site, body.subarray(5, 5 + length));
    counts.acked += 1;
  } else if (status === "3") {
    py.forget(site, batch); // INVALID_ARGUMENT never passes
  } else {
    counts.upstream_errors += 1;
  }
}

async function collect(request, response) {
  const origin = request.headers.origin;
  if (origin && opts.origin.length && !opts.origin.includes(origin)) {
    return reply(response, 403, "origin: not allowed here");
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY) return reply(response, 413, `payload: at most ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks).toString("utf8");
  let site = "";
  try {
    site = py.siteOf(body);
  } catch {
    // parse errors are reported by accept below
  }
  const config = site ? await siteConfig(site) : "";
  const result = py.accept(body, config, request.headers["user-agent"] ?? "",
    request.headers["accept-language"] ?? "", Date.now());
  const [error, outcome, batches] = result.toJs();
  result.destroy();
  if (error) {
    counts.refused_chunks += 1;
    return reply(response, 400, error);
  }
  counts.chunks += 1;
  for (const batch of batches) await forward(site, batch);
  reply(response, outcome === "held" ? 202 : 204, "", { "pw-outcome": outcome });
}

// Chunks held for the one before them go out once they waited long enough.
setInterval(() => {
  const result = py.due(Date.now());
  const released = result.toJs();
  result.destroy();
  for (const [site, batch] of released) forward(site, batch).catch(() => {});
}, 250);

function reply(response, status, text, headers = {}) {
  response.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "access-control-allow-origin": "*",
    ...headers,
  });
  response.end(text);
}

const server = createServer((request, response) => {
  const url = new URL(request.url, "http://edge");
  if (request.method === "POST" && url.pathname === "/collect") {
    collect(request, response).catch((err) => reply(response, 500, String(err)));
  } else if (request.method === "GET" && url.pathname === "/stats") {
    const body = { ...JSON.parse(py.stats()), ...counts, boot_ms: bootMs };
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  } else if (request.method === "GET" && url.pathname === "/healthz") {
    reply(response, 200, "ok");
  } else {
    reply(response, 404, "not found");
  }
});
const [host, port] = opts.listen.split(/:(?=\d+$)/);
server.listen(Number(port), host, () => {
  const address = server.address();
  console.log(`edge: collecting on http://${host}:${address.port}/collect, ` +
    `forwarding to ${opts.upstream} (Pyodide up in ${bootMs} ms)`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
