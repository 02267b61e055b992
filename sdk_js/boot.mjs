// Boots the collector in the page: Pyodide and our two wheels from this server's own asset path
// (pyodide-lock.json lists them with their sha256, which the browser checks), then hands the
// page over from the loader to collector.browser (see collector/browser.py).
// `h` is the loader's handoff: {site, device, load, t0, ctx, assets, base, take}.
export async function boot(h) {
  const started = performance.now();
  const { loadPyodide } = await import(h.assets + "pyodide.mjs");
  const pyodide = await loadPyodide({
    indexURL: h.assets,
    lockFileURL: h.assets + "pyodide-lock.json",
    fullStdLib: false,
    stdout: () => {},
    stderr: () => {},
  });
  await pyodide.loadPackage("pulsewire-collector", { messageCallback: () => {} });
  let config = {};
  try {
    const answer = await fetch(h.base + "/pw/v1/config/" + encodeURIComponent(h.site));
    if (answer.ok) config = await answer.json();
  } catch (_) {
    // the defaults serve
  }
  const browser = pyodide.pyimport("collector.browser"); // throws if the wheel did not load
  const host = browser.start(h, pyodide.toPy(config));
  const pw = window.pw;
  if (pw) {
    pw.boot_ms = Math.round(performance.now() - started);
    pw.host = host || null;
  }
  return host;
}
