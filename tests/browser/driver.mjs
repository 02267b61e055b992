// Drives Debian's chromium (headless, through playwright-core) through one scripted visit of
// the demo shop and prints one JSON line: what the page sent (every POST to the server, with
// its body), every URL the browser asked for, and the facts the test compares against (the
// times of the actions, the scroll positions, the boot time).
//
//   node tests/browser/driver.mjs '{"base": "http://127.0.0.1:8080", "scenario": "abandon"}'
//
// The visitor is a person, not declared automation: a desktop Chrome user agent and no
// navigator.webdriver (scenario "automation" keeps Playwright's defaults, which declare it).
// Headless Chromium never hides a tab, so "hide the tab" sets document.visibilityState and
// fires visibilitychange, as the browser does.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { USER_AGENT, launch } from "./chromium.mjs";

const plan = JSON.parse(process.argv[2]);
const base = plan.base;
const person = plan.scenario !== "automation";

// Chromium's own network log sees every request, beacons sent at page close included (the
// automation protocol misses those): the test reads the URLs from it.
const logDir = mkdtempSync(path.join(tmpdir(), "pw-netlog-"));
const netLog = path.join(logDir, "net.json");
const browser = await launch({ person, netLog });
const context = await browser.newContext({
  viewport: { width: 1280, height: 800 },
  ...(person ? { userAgent: USER_AGENT } : {}),
});
const requests = [];
const posts = [];
context.on("request", (request) => {
  requests.push(request.url());
  if (request.method() === "POST") {
    const body = request.postDataBuffer();
    posts.push({ url: request.url(), at: Date.now(), body: body ? body.toString("base64") : "" });
  }
});
// The truth, at full resolution and on the page's own clock: every pointer and key event the
// page received, and when the pointer entered and left each data-pw-hover element.
await context.addInitScript(() => {
  window.__inputs = [];
  window.__rests = [];
  for (const type of ["pointermove", "pointerdown", "keydown", "touchstart", "wheel"]) {
    addEventListener(type, () => window.__inputs.push(Date.now()), { capture: true, passive: true });
  }
  const marked = (el) => (el && el.closest ? el.closest("[data-pw-hover]") : null);
  addEventListener("pointerover", (e) => {
    const el = marked(e.target);
    if (el && el !== marked(e.relatedTarget)) {
      window.__rests.push([el.getAttribute("data-pw-hover"), Date.now(), null]);
    }
  }, { capture: true, passive: true });
  addEventListener("pointerout", (e) => {
    const el = marked(e.target);
    const open = window.__rests[window.__rests.length - 1];
    if (el && el !== marked(e.relatedTarget) && open && open[2] === null) open[2] = Date.now();
  }, { capture: true, passive: true });
});
const page = await context.newPage();
const facts = { scenario: plan.scenario };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => page.evaluate(() => Date.now());

async function booted() {
  if (plan.mode === "edge") return; // no Pyodide in the page: the edge worker runs it
  await page.waitForFunction(() => window.pw && window.pw.boot_ms, null, { timeout: 90_000 });
  facts.boot_ms = await page.evaluate(() => window.pw.boot_ms);
}

// Keeps the visitor active: a small pointer move every `every` ms for `ms` ms.
async function active(ms, every = 400) {
  const end = Date.now() + ms;
  let x = 20;
  while (Date.now() < end) {
    x = x === 20 ? 24 : 20;
    await page.mouse.move(x, 20);
    await sleep(every);
  }
}

async function setVisible(visible) {
  await page.evaluate((shown) => {
    Object.defineProperty(document, "visibilityState", { value: shown ? "visible" : "hidden",
      configurable: true });
    Object.defineProperty(document, "hidden", { value: !shown, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, visible);
}

async function scrollTo(fraction) {
  return page.evaluate((f) => {
    const room = document.documentElement.scrollHeight - innerHeight;
    window.scrollTo(0, Math.round(room * f));
    return (scrollY + innerHeight) / document.documentElement.scrollHeight * 100;
  }, fraction);
}

async function center(selector) {
  const box = await page.locator(selector).first().boundingBox();
  return [box.x + box.width / 2, box.y + box.height / 2];
}

async function restOn(selector, ms) {
  const [x, y] = await center(selector);
  await page.mouse.move(x, y, { steps: 2 });
  await sleep(ms);
}

async function shoppingVisit() {
  await page.goto(`${base}/demo/product/premium-laptop`);
  await booted();
  facts.device = await page.evaluate(() => localStorage.getItem("pw.did"));
  for (const fraction of [0.3, 0.6, 0.9]) {
    facts.scroll_pct = await scrollTo(fraction);
    await active(600);
  }
  await active(plan.dwell_ms ?? 3500);
  const card = '[data-pw-hover^="card:"]';
  await page.locator(card).first().scrollIntoViewIfNeeded();
  await restOn(card, plan.hover_ms ?? 900);
  await page.mouse.move(5, 5);
  await page.locator("#add-to-cart").scrollIntoViewIfNeeded();
  facts.cart_at = await now();
  await page.click("#add-to-cart");
  await page.waitForSelector("#cart-status:has-text('Added')");
  await active(1200); // the batch with cart_add leaves within the site's batch age
  await page.goto(`${base}/demo/signin`);
  await page.fill('input[name="email"]', plan.email);
  await page.fill('input[name="name"]', "Ann");
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  await page.waitForSelector("text=Signed in as");
  await booted();
  await active(1200);
}

const scenarios = {
  async abandon() {
    await shoppingVisit();
    await page.close({ runBeforeUnload: true });
  },
  async purchase() {
    await shoppingVisit();
    await page.goto(`${base}/demo/checkout`);
    await booted();
    await active(600);
    facts.purchase_at = await now();
    await page.click("#place-order");
    await page.waitForURL(/\/demo\/thanks/);
    await booted();
    await active(1500);
    await page.close({ runBeforeUnload: true });
  },
  async early_close() {
    await page.goto(`${base}/demo/product/premium-laptop`);
    facts.device = await page.evaluate(() => localStorage.getItem("pw.did"));
    await scrollTo(0.8);
    await page.click("#add-to-cart");
    facts.booted_before_close = await page.evaluate(() => Boolean(window.pw && window.pw.boot_ms));
    facts.closed_at = Date.now();
    await page.close({ runBeforeUnload: true });
  },
  async automation() {
    await page.goto(`${base}/demo/product/premium-laptop`);
    await booted();
    facts.webdriver = await page.evaluate(() => navigator.webdriver);
    await page.click("#add-to-cart");
    await active(1500);
    await page.close({ runBeforeUnload: true });
  },
  async scroll_fidelity() {
    facts.cases = [];
    for (const path of ["/demo/product/premium-laptop", "/demo/", "/demo/product/anc-headphones"]) {
      await page.goto(base + path);
      await booted();
      let truth = 0;
      for (const fraction of plan.fractions) {
        truth = Math.max(truth, await scrollTo(fraction));
        await sleep(250);
      }
      facts.cases.push({ path, truth });
      await page.goto("about:blank"); // pagehide: the page's last word goes by beacon
    }
  },
  async dwell_fidelity() {
    await page.goto(`${base}/demo/product/premium-laptop`);
    let up = false;
    const boot = booted().then(() => { up = true; });
    while (!up) await active(300); // the visitor is active from the first moment
    await boot;
    await active(plan.active_ms);
    facts.hidden_at = await now();
    await setVisible(false);
    await active(plan.hidden_ms); // pointer moves while hidden count for nothing
    facts.shown_at = await now();
    await setVisible(true);
    await active(plan.active_ms);
    await page.mouse.move(30, 30);
    facts.idle_from = await now(); // the last activity: only the site's idle allowance follows
    await sleep(plan.idle_ms);
    facts.ended_at = await now();
    facts.inputs = await page.evaluate(() => window.__inputs);
    await page.goto("about:blank");
  },
  async hover_fidelity() {
    facts.cases = [];
    for (const round of plan.rounds) {
      await page.goto(`${base}/demo/`);
      await booted();
      const cards = await page.locator("[data-pw-hover]").evaluateAll(
        (els) => els.map((el) => el.getAttribute("data-pw-hover")));
      for (const [index, ms] of round.entries()) {
        const target = cards[index];
        const selector = `[data-pw-hover="${target}"]`;
        await page.locator(selector).scrollIntoViewIfNeeded();
        if (ms === "sweep") { // across the card and on, without stopping
          const box = await page.locator(selector).boundingBox();
          await page.mouse.move(box.x - 5, box.y + box.height / 2);
          await page.mouse.move(box.x + box.width + 5, box.y + box.height / 2, { steps: 4 });
          facts.cases.push({ target, ms: 0 });
        } else {
          await restOn(selector, ms);
          facts.cases.push({ target, ms });
        }
        await page.mouse.move(2, 2); // off every card
        await sleep(150);
      }
      facts.rests = (facts.rests || []).concat([await page.evaluate(() => window.__rests)]);
      await page.goto("about:blank");
    }
  },
};

try {
  await scenarios[plan.scenario]();
  await sleep(plan.linger_ms ?? 1000); // beacons sent at close are on their way
} catch (err) {
  facts.error = String(err && err.stack || err);
} finally {
  await browser.close();
}
// Every request the network stack started, with who started it: a page or worker (its origin,
// or "null") or the browser itself ("not an origin": update checks and the like, which the
// resolver rule above sends nowhere).
const log = JSON.parse(readFileSync(netLog, "utf8"));
const started = log.constants.logEventTypes.URL_REQUEST_START_JOB;
const netlog = log.events.filter((e) => e.type === started && e.params && e.params.url)
  .map((e) => ({ url: e.params.url, initiator: e.params.initiator }));
rmSync(logDir, { recursive: true, force: true });
console.log(JSON.stringify({ ...facts, requests, posts, netlog }));
