// Pyodide's boot in the demo shop's product page, in headless Chromium: prints one JSON line.
//
//   node scripts/benchmarks/pyodide_boot.mjs '{"base": "http://127.0.0.1:8080", "loads": 4}'
//
// One browser context, so its HTTP cache is shared: the first load fetches everything (Pyodide,
// the standard library, the wheels), the later ones find them cached. Each load opens a new
// page and waits for `window.pw.boot_ms`, which the loader sets when the collector's Web Worker
// is up (milliseconds since the loader started). The visitor is a person: a desktop Chrome
// user agent and no navigator.webdriver.
import { chromium } from "../../sdk_js/node_modules/playwright-core/index.mjs";

const plan = JSON.parse(process.argv[2]);
const USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
  "Chrome/131.0.0.0 Safari/537.36";

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-blink-features=AutomationControlled"],
  ignoreDefaultArgs: ["--enable-automation"],
});
const out = { boot_ms: [], page_ready_ms: [] };
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT,
  });
  for (let i = 0; i < plan.loads; i++) {
    const page = await context.newPage();
    await page.goto(`${plan.base}/demo/product/premium-laptop`);
    await page.waitForFunction(() => window.pw && window.pw.boot_ms, null, { timeout: 90_000 });
    // boot_ms as the page reports it; page_ready_ms from the navigation's start, for reference
    out.boot_ms.push(await page.evaluate(() => window.pw.boot_ms));
    out.page_ready_ms.push(await page.evaluate(() => Math.round(performance.now())));
    await page.close();
  }
} catch (err) {
  out.error = String(err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
