// Boots Pyodide under Node from the built web assets, installs the collector by name from the
// built lock file, runs scripted_session.py (beside this file) in it and prints one JSON line:
// versions, boot/load/import times in ms and the base64 of every batch the session sent.
// Usage: node tests/collector/pyodide_batch.mjs   (after scripts/build_web; needs no network)
//
// Everything comes from build/web/assets/<ID>/, the directory a browser is served: Pyodide's
// runtime, the lock file and the two wheels, so a file missing there fails here too. Node
// reads the wheels from disk and does not check the lock's sha256 (a browser's fetch does);
// test_pyodide_boot.py checks those hashes itself.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const manifest = JSON.parse(readFileSync(path.join(root, "build/web/manifest.json"), "utf8"));
const indexURL = path.join(root, "build/web/assets", manifest.assets_id) + path.sep;
const { loadPyodide, version } = await import(pathToFileURL(path.join(indexURL, "pyodide.mjs")));

const t0 = performance.now();
const pyodide = await loadPyodide({ indexURL, lockFileURL: indexURL + "pyodide-lock.json" });
const t1 = performance.now();
const problems = [];
// loadPackage reports a failed package through errorCallback and does not throw.
await pyodide.loadPackage("pulsewire-collector", {
  messageCallback: () => {},
  errorCallback: (message) => problems.push(message),
});
const t2 = performance.now();
if (problems.length) throw new Error("loadPackage failed:\n" + problems.join("\n"));

const session = readFileSync(path.join(here, "scripted_session.py"));
pyodide.FS.writeFile("/home/pyodide/scripted_session.py", session);  // the cwd, on sys.path
const result = pyodide.runPython(`
import base64, json, sys, time
t = time.perf_counter()
import collector
import_ms = (time.perf_counter() - t) * 1000
import google.protobuf
from google.protobuf.internal import api_implementation
import scripted_session
json.dumps({
    "python": sys.version,
    "protobuf": google.protobuf.__version__,
    "protobuf_implementation": api_implementation.Type(),
    "collector_file": collector.__file__,
    "import_ms": round(import_ms, 1),
    "batches": [base64.b64encode(b).decode() for b in scripted_session.run()],
})
`);
const out = JSON.parse(result);
console.log(JSON.stringify({
  pyodide: version,
  assets_id: manifest.assets_id,
  boot_ms: Math.round(t1 - t0),
  load_package_ms: Math.round(t2 - t1),
  ...out,
}));
