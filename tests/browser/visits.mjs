// Runs many visitors through the demo shop in one headless Chromium, a few at a time, and
// prints one JSON line: for each visitor, the page's own record of what it signalled.
//
//   node tests/browser/visits.mjs '{"base": "http://127.0.0.1:8080", "mode": "browser",
//     "pool": 6, "visitors": [{"id": "v01", "pattern": "leave_1s", "sku": "premium-laptop"}]}'
//
// How this works: each visitor is a browser context of its own (its own localStorage, hence its
// own device id `pw.did`), a person to the server: a desktop Chrome user agent and no automation
// flag. An init script in every document reports to Node, through a binding (which outlives the
// document), each page view the page makes (a document load, or a restore from the
// back-forward cache) and each pw("track") and pw("identify") call, with the page's device id
// and path; it sees the calls by wrapping whatever function `window.pw` is (the queue stub from
// <head>, then the loader), so a call is recorded once, when the page makes it. A visitor
// follows one pattern (leave after N s, sign in, back and forward, reload, close the tab, two
// tabs, the network down), ends on a page that stays a moment, then closes its tabs; the
// browser closes a while after the last visit.
import { USER_AGENT, launch } from "./chromium.mjs";

const plan = JSON.parse(process.argv[2]);
const STAY_MS = 1500; // a visit's last page stays this long
const BOOT_WAIT_MS = 30_000; // browser mode: at most this long for the collector to boot
const DELIVER_MS = 3000; // after the last visit: its beacons are on their way
const OUTAGE_MS = 20_000;
const CART_LINK = 'header nav a[href="/demo/cart"]';
const CATALOG_LINK = 'header nav a[href="/demo/"]';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const once = (fn) => {
  let called = false;
  return () => {
    if (!called) fn();
    called = true;
  };
};

// Runs in every document before the page's own scripts (sent as source: it uses nothing of
// Node's).
function recordInPage() {
  if (!location.pathname.startsWith("/demo")) return;
  const report = (kind, detail) => {
    let device = null;
    try {
      device = localStorage.getItem("pw.did");
    } catch (e) { /* storage blocked: Node fills in the visitor's device */ }
    window.__pwRecord({ kind, ...detail, device, path: location.pathname, at: Date.now() });
  };
  const recordCall = ([name, a, b]) => {
    if (name === "track") report("track", { name: a, props: b || {} });
    else if (name === "identify") report("identify", { user_id: (a && a.user_id) || "" });
  };
  // A Proxy, so the loader and the stub see their own function: its properties (pw.q, pw.d,
  // pw.boot_ms) read and write through.
  const watched = (fn) => (typeof fn !== "function" ? fn : new Proxy(fn, {
    apply(target, self, args) {
      try { recordCall(args); } catch (e) { /* never into the page */ }
      return Reflect.apply(target, self, args);
    },
  }));
  let current;
  Object.defineProperty(window, "pw", {
    configurable: true,
    get: () => current,
    set: (fn) => { current = watched(fn); },
  });
  report("page_view", { restored: false });
  addEventListener("pageshow", (e) => e.persisted && report("page_view", { restored: true }));
}

class Visitor {
  // `onCollectorUp` is called once: when the pattern has its collector up, or at the end.
  constructor(browser, spec, onCollectorUp) {
    this.browser = browser;
    this.spec = spec;
    this.onCollectorUp = onCollectorUp;
    this.entries = [];
    this.failedRequests = []; // the paths of requests that failed (the network down)
    this.collectorUpMs = []; // per wait for the collector: how long it took (null: not up)
    this.leftAfterMs = null; // leave patterns: from the page's load to the click that left it
  }

  async start() {
    this.context = await this.browser.newContext({
      viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
    await this.context.exposeBinding("__pwRecord", (_source, entry) => this.entries.push(entry));
    await this.context.addInitScript(recordInPage);
    this.context.on("requestfailed", (r) => this.failedRequests.push(new URL(r.url()).pathname));
  }

  async open(path) {
    const page = await this.context.newPage();
    await page.goto(plan.base + path);
    return page;
  }

  // The collector is up: in browser mode Pyodide has booted and taken the loader's signals;
  // in edge mode the loader sends raw from the start, so a moment is enough.
  async collectorUp(page) {
    if (plan.mode !== "browser") return sleep(1000);
    const started = Date.now();
    const up = await page.waitForFunction(() => window.pw && window.pw.boot_ms, null,
      { timeout: BOOT_WAIT_MS }).then(() => true, () => false); // not up: it goes on anyway
    this.collectorUpMs.push(up ? Date.now() - started : null);
  }

  // A visit's last page stays a moment, as a reader would; it is closed at the end.
  async stay() {
    await sleep(STAY_MS);
  }

  // Closes the visitor's tabs. Its context stays open until every visit is over: closing it
  // would cancel the beacons its pages sent as they closed, which no real browser does.
  async end() {
    for (const page of this.context.pages()) await closeTab(page);
  }

  result() {
    const devices = [...new Set(this.entries.map((e) => e.device).filter(Boolean))];
    const entries = this.entries.map((e) => ({ ...e, device: e.device || devices[0] || null }));
    return { ...this.spec, devices, entries, failed_requests: this.failedRequests,
      collector_up_ms: this.collectorUpMs, left_after_ms: this.leftAfterMs,
      restored: entries.filter((e) => e.restored).length };
  }
}

async function closeTab(page) {
  const closed = page.waitForEvent("close");
  await page.close({ runBeforeUnload: true }); // pagehide runs: the page's last word
  await closed;
}

// A click as the page's own script sees it: without Playwright's actionability checks, which
// take seconds on a loaded machine.
async function press(page, selector) {
  await page.$eval(selector, (el) => el.click());
}

async function addToCart(page) {
  await press(page, "#add-to-cart");
}

// In the page: adds to the cart now and follows `link` `afterMs` after the load event, timed
// by the page's own clock (a round trip from Node can take seconds on a loaded machine); says
// when the add happened, in ms after load.
function addThenLeave({ link, afterMs }) {
  const loadedAt = performance.getEntriesByType("navigation")[0].loadEventEnd;
  document.getElementById("add-to-cart").click();
  setTimeout(() => document.querySelector(link).click(), loadedAt + afterMs - performance.now());
  return performance.now() - loadedAt;
}

// A real navigation by a link of the page: the page is unloaded (or kept in the bfcache).
async function follow(page, link) {
  await Promise.all([page.waitForNavigation(), press(page, link)]);
}

const patterns = {
  // Open a product, add it to the cart, leave for the cart `afterS` seconds after load.
  async leave(v, afterS) {
    const page = await v.open(`/demo/product/${v.spec.sku}`);
    const [, addedAtMs] = await Promise.all([page.waitForNavigation(),
      page.evaluate(addThenLeave, { link: CART_LINK, afterMs: afterS * 1000 })]);
    v.leftAfterMs = Math.round(Math.max(addedAtMs, afterS * 1000));
    await v.stay();
  },
  // The sign-in form's POST navigation; the page it lands on identifies the visitor.
  async sign_in(v) {
    const page = await v.open("/demo/signin");
    await page.fill('input[name="email"]', `${v.spec.id}@example.com`);
    await page.fill('input[name="name"]', "Ann");
    await Promise.all([page.waitForNavigation(), press(page, 'button[type="submit"]')]);
    await sleep(1000);
    await follow(page, 'main a[href="/demo/"]');
    await v.stay();
  },
  async back_forward(v) {
    const page = await v.open(`/demo/product/${v.spec.sku}`);
    await addToCart(page);
    await sleep(1000);
    await follow(page, CART_LINK);
    await sleep(1000);
    await page.goBack({ waitUntil: "commit" });
    await sleep(1000);
    await page.goForward({ waitUntil: "commit" });
    await v.stay();
  },
  async reload(v) {
    const page = await v.open(`/demo/product/${v.spec.sku}`);
    await addToCart(page);
    await sleep(1000);
    await page.reload();
    await addToCart(page);
    await sleep(1000);
    await follow(page, CART_LINK);
    await v.stay();
  },
  async tab_closed(v) {
    const page = await v.open(`/demo/product/${v.spec.sku}`);
    await addToCart(page);
    await sleep(2000);
    await closeTab(page);
  },
  // Two tabs of one device at once; the second opens once the first has made the device id.
  async two_tabs(v) {
    const first = await v.open(`/demo/product/${v.spec.sku}`);
    const second = await v.open("/demo/product/usb-c-hub");
    await addToCart(first);
    await addToCart(second);
    await sleep(1000);
    await follow(first, CART_LINK);
    await sleep(1500);
    await follow(second, CATALOG_LINK);
    await v.stay();
  },
  // The collector is up, then the network goes for 20 s; the cart add happens in the outage.
  async network_down(v) {
    const page = await v.open(`/demo/product/${v.spec.sku}`);
    await v.collectorUp(page);
    v.onCollectorUp();
    await v.context.setOffline(true);
    await addToCart(page);
    await sleep(OUTAGE_MS);
    await v.context.setOffline(false);
    await sleep(3000);
    await follow(page, CART_LINK); // the next page load resends what is still queued
    await v.stay();
  },
};

async function visit(browser, spec, onCollectorUp = () => {}) {
  const v = new Visitor(browser, spec, once(onCollectorUp));
  const started = Date.now();
  let error = null;
  try {
    await v.start();
    const leave = /^leave_([\d.]+)s$/.exec(spec.pattern);
    await (leave ? patterns.leave(v, Number(leave[1])) : patterns[spec.pattern](v));
    await v.end();
  } catch (err) {
    error = String((err && err.stack) || err);
  }
  v.onCollectorUp();
  return { ...v.result(), took_ms: Date.now() - started, error };
}

// The network-down visitors start first, and the others once those have their collectors up:
// forty pages booting Pyodide at once on a small machine would starve those boots past any
// wait, and the outage is meant to meet a running collector (its retry queue). The others then
// run `pool` at a time beside them.
async function visitAll(browser) {
  const first = plan.visitors.filter((spec) => spec.pattern === "network_down");
  const rest = plan.visitors.filter((spec) => spec.pattern !== "network_down");
  let waiting = first.length, open;
  const gate = new Promise((resolve) => { open = resolve; });
  if (!waiting) open();
  const oneUp = () => {
    waiting -= 1;
    if (waiting === 0) open();
  };
  const firstDone = Promise.all(first.map((spec) => visit(browser, spec, oneUp)));
  await gate;
  const done = [...await inPool(rest, plan.pool, (spec) => visit(browser, spec)),
    ...await firstDone];
  return plan.visitors.map(({ id }) => done.find((found) => found.id === id));
}

// Runs `work` on every item, at most `size` at a time, keeping the items' order in the results.
async function inPool(items, size, work) {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      results[at] = await work(items[at]);
    }
  };
  await Promise.all(Array.from({ length: size }, worker));
  return results;
}

const browser = await launch({ backForwardCache: true });
const started = Date.now();
let visitors;
try {
  visitors = await visitAll(browser);
  await sleep(DELIVER_MS);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ took_ms: Date.now() - started, visitors }));
