// A shop's page with Segment's analytics.js 2.0 (@segment/analytics-next, its UMD build from
// the npm package) in Debian's headless Chromium, sending to pulsewire: the page is served by a
// tiny server of its own on 127.0.0.1 (another origin than pulsewire's, as a real shop is), and
// analytics.js loads its settings from `cdnURL` (pulsewire's /v1/projects/{key}/settings), which
// name pulsewire as its API host. Every visitor is a fresh browser context (a new anonymousId)
// that identifies (with `signature` in context.traits when given) and adds a product to the
// cart (`offline`: while the connection is down, so analytics.js sends it again once it is back,
// as a retry). Prints one JSON line: every request the browser made, what each POST carried and
// got back, what the page's policy blocked, and any error the page or the network reported.
//
//   node tests/browser/segment_page.mjs '{"server": "http://127.0.0.1:8080", "pagePort": 8081,
//     "writeKey": "demo", "visitors": [{"userId": "u-1", "email": "a@b.c", "signature": "",
//     "offline": false}]}'
//
// Nothing leaves this machine, twice over: Chromium resolves no host name but 127.0.0.1
// (chromium.mjs), and the page's Content-Security-Policy lets it reach only its own origin and
// pulsewire's, so a request for anything else (a CDN, Segment's API, an IP address) is refused
// by the browser before it starts, and reported. Not Playwright's route interception: while any
// route is set, Playwright answers CORS preflights itself, so the server's own answers to them
// (which a real browser depends on) would go untested.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";

const plan = JSON.parse(process.argv[2]);
const UMD = fileURLToPath(new URL(
  "../../sdk_js/node_modules/@segment/analytics-next/dist/umd/", import.meta.url));
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script src="/index.js"></script></head><body><h1>Shop</h1></body></html>`;
const POLICY = `default-src 'self'; connect-src 'self' ${plan.server}`;

// The page at /, and the UMD build's files beside it (its chunks load relative to the page).
const site = createServer(async (request, response) => {
  const name = path.basename(new URL(request.url, "http://page").pathname);
  try {
    const body = name ? await readFile(path.join(UMD, name)) : PAGE;
    const type = name ? "text/javascript" : "text/html";
    response.writeHead(200, { "content-type": type, "content-security-policy": POLICY }).end(body);
  } catch {
    response.writeHead(name === "favicon.ico" ? 204 : 404).end();
  }
});
await new Promise((resolve) => site.listen(plan.pagePort, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${plan.pagePort}`;

const browser = await launch();
const requests = [];
const posts = [];
const blocked = [];
const failures = [];

async function visit(visitor) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.__blocked = [];
    addEventListener("securitypolicyviolation", (e) => window.__blocked.push(e.blockedURI));
  });
  const answered = [];
  context.on("request", (r) => requests.push({ method: r.method(), url: r.url() }));
  context.on("requestfailed", (r) => failures.push(`${r.url()}: ${r.failure()?.errorText}`));
  context.on("response", async (response) => {
    const r = response.request();
    if (r.method() !== "POST") return;
    posts.push({ url: r.url(), status: response.status(), headers: await r.allHeaders(),
      body: JSON.parse(r.postData() ?? "null"), answer: await response.json() });
    answered.push(response.status());
  });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && failures.push(`console: ${m.text()}`));
  await page.goto(`${origin}/`);
  await page.evaluate(async ({ writeKey, cdnURL, visitor }) => {
    const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({ writeKey, cdnURL });
    window.analytics = analytics;
    const options = visitor.signature ? { context: { traits: { signature: visitor.signature } } } : {};
    await analytics.identify(visitor.userId, { email: visitor.email }, options);
  }, { writeKey: plan.writeKey, cdnURL: plan.server, visitor });
  await context.setOffline(visitor.offline);
  await page.evaluate((userId) => window.analytics.track("Product Added",
    { product_id: "sku-1", price: 19.99, quantity: 2, cart_id: `cart-${userId}` }), visitor.userId);
  await context.setOffline(false);
  // Destinations send after the calls resolve: wait for pulsewire's answers to both.
  const deadline = Date.now() + 10_000;
  while (answered.length < 2 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  blocked.push(...await page.evaluate(() => window.__blocked));
  await context.close();
}

try {
  for (const visitor of plan.visitors) await visit(visitor);
} finally {
  await browser.close();
  site.close();
}
console.log(JSON.stringify({ origin, requests, posts, blocked, failures }));
