// The Web Worker the collector runs in (browser mode): Pyodide and our two wheels from this
// server's own asset path (pyodide-lock.json lists them with their sha256, which the browser
// checks), then collector.browser takes the page's signals. Messages that arrive while Pyodide
// boots wait in order.
const inbox = [];
let host = null;
self.onmessage = ({ data }) => (host ? host.receive(data) : inbox.push(data));

const started = performance.now();
const assets = new URL("./", import.meta.url).href;
const { loadPyodide } = await import(assets + "pyodide.mjs");
const pyodide = await loadPyodide({
  indexURL: assets,
  lockFileURL: assets + "pyodide-lock.json",
  stdout: () => {},
  stderr: () => {},
});
const failures = [];
await pyodide.loadPackage("pulsewire-collector", {
  messageCallback: () => {},
  errorCallback: (message) => failures.push(message),
});
if (failures.length) throw new Error("cannot load the collector: " + failures.join("; "));
const { init } = inbox.shift();
let config = {};
try {
  const answer = await fetch(`${init.base}/pw/v1/config/${encodeURIComponent(init.site)}`);
  if (answer.ok) config = await answer.json();
} catch (_) {
  // the defaults serve
}
const browser = pyodide.pyimport("collector.browser");
host = browser.start(pyodide.toPy(init), pyodide.toPy(config), (message) =>
  self.postMessage(message));
for (const message of inbox.splice(0)) host.receive(message);
self.postMessage({ ready: true, boot_ms: Math.round(performance.now() - started) });
