// Drives Debian's chromium (headless, through playwright-core) through the web console at
// /console/ for tests/browser/test_console_in_chromium.py. One browser serves the whole test:
// the test writes one command a line on stdin (JSON) and reads one answer a line on stdout, so
// it can put traffic, a shopper and `pulsewire admin stats` between the browser's looks.
//
//   node tests/browser/console.mjs '{"base": "http://127.0.0.1:8080", "token": "...",
//                                    "shots": "/abs/build/screenshots/console"}'
//   stdin {"do": "access", "pages": [...], "posts": [...]}   stdout {...} or {"error": "..."}
//
// Two browser contexts: one that never logs in, and one that logs in once with the operator
// token through the login form (command "access") and keeps its session. Every page of either
// records the dialogs it opened (dismissed at once) and the errors it logged.
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const AXE = path.join(HERE, "../../sdk_js/node_modules/axe-core/axe.min.js");
const plan = JSON.parse(process.argv[2]);
const base = plan.base;
const browser = await launch();
const dialogs = [];
const errors = [];
let live; // the Live page, once open

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.on("page", (page) => {
    page.on("dialog", (dialog) => {
      dialogs.push({ url: page.url(), type: dialog.type(), message: dialog.message() });
      dialog.dismiss().catch(() => {});
    });
    page.on("pageerror", (err) => errors.push({ url: page.url(), text: String(err) }));
    page.on("console", (message) => {
      // a resource that failed to load is the server's answer, which the test reads itself
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
        errors.push({ url: page.url(), text: message.text(), from: message.location().url });
      }
    });
  });
  return context;
}
const anonymous = await newContext();
const signed = await newContext();

/** A form POST by the page's own fetch (same origin, the context's cookies): its status. */
function post(page, where, fields) {
  return page.evaluate(async ([url, body]) => {
    const response = await fetch(url, { method: "POST", body: new URLSearchParams(body),
      redirect: "manual" });
    return response.type === "opaqueredirect" ? 303 : response.status;
  }, [where, fields]);
}

async function submitLogin(page, token) {
  await page.goto(`${base}/console/login`);
  await page.fill("#token", token);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/console/login") &&
      r.request().method() === "POST"),
    page.click("form:has(#token) button[type=submit]"),
  ]);
  await page.waitForLoadState();
  return response.status();
}

async function cookie(context) {
  return (await context.cookies()).find((c) => c.name === "pw_console") || null;
}

const commands = {
  // Login, and what works without a session or without the form's CSRF token.
  async access({ pages, posts }) {
    const out = { anonymous: [], forged: [], no_session: {}, login: {}, with_session: {} };
    const page = await anonymous.newPage();
    for (const where of pages) {
      const response = await page.goto(base + where);
      out.anonymous.push({ path: where, url: page.url(), status: response.status(),
        login_form: await page.locator("form input#token").count() });
    }
    for (const where of posts) out.no_session[where] = await post(page, where, { csrf: "x" });
    // a session someone made up: the operator's, until 2100, signed with no key of the server's
    const body = Buffer.from(JSON.stringify(["operator", "nonce", 4102444800000]))
      .toString("base64").replaceAll("+", "-").replaceAll("/", "_");
    await anonymous.addCookies([{ name: "pw_console", value: `${body}.AAAA`, url: base }]);
    for (const where of pages.slice(0, 2)) {
      await page.goto(base + where);
      out.forged.push({ path: where, url: page.url() });
    }
    await anonymous.clearCookies();
    // the login form: a wrong token, then the right one without its CSRF token or a wrong one
    out.login.wrong_token = await submitLogin(page, "not-the-token");
    out.login.wrong_token_problem = await page.locator("[role=alert]").textContent();
    await page.goto(`${base}/console/login`);
    const loginCsrf = await page.locator("form input[name=csrf]").first().inputValue();
    out.login.no_csrf = await post(page, "/console/login", { token: plan.token });
    out.login.wrong_csrf = await post(page, "/console/login", { token: plan.token, csrf: "x" });
    out.login.cookie_after_refusals = await cookie(anonymous);
    await page.close();
    // the right token, through the form
    const mine = await signed.newPage();
    out.login.status = await submitLogin(mine, plan.token);
    out.login.landed = mine.url();
    out.login.cookie = await cookie(signed);
    out.login.who = await mine.locator(".who").textContent();
    // with a session: every form needs its token
    await mine.goto(`${base}/console/edit`);
    const csrf = await mine.locator("form.editor input[name=csrf]").inputValue();
    const wrong = (csrf[0] === "A" ? "B" : "A") + csrf.slice(1);
    const forms = {
      "/console/users/act": { action: "suppress", email: "nobody@example.com" },
      "/console/edit": { action: "reload" },
      "/console/logout": {},
    };
    for (const [where, fields] of Object.entries(forms)) {
      out.with_session[where] = {
        no_csrf: await post(mine, where, fields),
        wrong_csrf: await post(mine, where, { ...fields, csrf: wrong }),
        login_forms_csrf: await post(mine, where, { ...fields, csrf: loginCsrf }),
      };
    }
    // and with it, a form goes through: the editor validates (200), an unknown action is a 400
    out.with_session.valid_unknown_action = await post(mine, "/console/users/act",
      { action: "nothing", csrf });
    await mine.fill("#name", "checked.yaml");
    await mine.fill("#text", "id: checked\nentry: {event: signup}\nsteps:\n" +
      "  - send: {template: cart-reminder}\n");
    const [checked] = await Promise.all([
      mine.waitForResponse((r) => r.url().endsWith("/console/edit") &&
        r.request().method() === "POST"),
      mine.click("button[value=check]"),
    ]);
    await mine.waitForLoadState();
    out.with_session.valid_check = { status: checked.status(),
      outcome: await mine.locator("[data-outcome]").getAttribute("data-outcome") };
    await mine.goto(`${base}/console/`);
    out.with_session.still_logged_in = mine.url(); // the refused logouts changed nothing
    await mine.close();
    return out;
  },

  // Every data-metric and data-value on each page, as shown.
  async figures({ paths }) {
    const page = await signed.newPage();
    const out = {};
    for (const where of paths) {
      const response = await page.goto(base + where);
      out[where] = { status: response.status(), figures: await page.evaluate(() =>
        Array.from(document.querySelectorAll("[data-metric]"),
          (el) => [el.dataset.metric, el.dataset.value])) };
    }
    await page.close();
    return out;
  },

  // The Live page, open from now on, noting on the page's clock when each row arrives.
  async live_open() {
    const page = await signed.newPage();
    await page.addInitScript(() => {
      window.__rows = [];
      const note = (row) => window.__rows.push({ number: Number(row.dataset.number),
        user: row.dataset.user, seen_ms: Date.now(), text: row.textContent,
        cells: Array.from(row.cells, (cell) => cell.textContent),
        streamed: row.className === "new" });
      addEventListener("DOMContentLoaded", () => {
        const rows = document.getElementById("live-rows");
        new MutationObserver((changes) => {
          for (const change of changes) {
            for (const row of change.addedNodes) if (row.dataset && row.dataset.number) note(row);
          }
        }).observe(rows, { childList: true });
      });
    });
    const [stream] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/console/live/stream")),
      page.goto(`${base}/console/live`),
    ]);
    live = page;
    return { status: stream.status(), type: stream.headers()["content-type"],
      rendered: await page.locator("#live-rows tr[data-number]").count(), open_ms: Date.now() };
  },

  // The rows the open Live page has received, once one of `users` or with `text` is among them.
  async live_rows({ users = [], text = "", timeout_ms = 15_000 }) {
    const page = live;
    await page.waitForFunction(([keys, wanted]) => window.__rows.some((r) =>
      keys.includes(r.user) || (wanted && r.text.includes(wanted))), [users, text],
    { timeout: timeout_ms, polling: 50 });
    return { rows: await page.evaluate(() => window.__rows), ...(await injected(page)) };
  },

  // One page as the signed-in operator sees it: its main text, users and instances, and
  // whether anything was made of markup in the data (img or inline handlers).
  async look({ path: where }) {
    const page = await signed.newPage();
    const response = await page.goto(base + where);
    const out = {
      status: response.status(), url: page.url(),
      main: await page.locator("main").innerText(),
      user: await page.evaluate(() => {
        const found = document.querySelector("section[data-user]");
        return found && found.dataset.user;
      }),
      instances: await page.locator("tr[data-instance]").evaluateAll((rows) => rows.map((r) => ({
        sequence: r.dataset.instance, key: r.cells[1].textContent, at: r.cells[3].textContent,
        due: r.querySelector("[data-due]").dataset.due,
      }))),
      ...(await injected(page)),
    };
    await page.close();
    return out;
  },

  // Each template's preview: its warnings, and what each of its frames shows once loaded.
  async previews() {
    const page = await signed.newPage();
    await page.goto(`${base}/console/previews`);
    const out = [];
    for (const article of await page.locator("article[data-template]").all()) {
      const found = { name: await article.getAttribute("data-template"),
        warnings: await article.locator(".warnings li").allTextContents(), frames: [] };
      for (const frame of await article.locator("iframe").all()) {
        await frame.scrollIntoViewIfNeeded();
        const inside = await (await frame.elementHandle()).contentFrame();
        await inside.waitForLoadState("load");
        found.frames.push({ src: await frame.getAttribute("src"),
          sandbox: await frame.getAttribute("sandbox"),
          body: (await inside.locator("body").innerText()).trim().slice(0, 200) });
      }
      out.push(found);
    }
    await page.close();
    return { previews: out };
  },

  // For each page: a full-page screenshot, axe-core's violations, and the keyboard's way in
  // (the first Tab reaches the skip link; Enter on it puts focus on main).
  async audit({ pages }) {
    const axe = readFileSync(AXE, "utf8");
    const out = { pages: {}, injection: await injection() };
    for (const [name, { path: where, anonymous: alone }] of Object.entries(pages)) {
      const page = await (alone ? anonymous : signed).newPage();
      await page.goto(base + where);
      // the whole page in the viewport: every lazy frame loads, and the screenshot paints
      // frames below the fold (a full-page capture of a short viewport leaves them blank)
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.setViewportSize({ width: 1280, height: Math.min(Math.max(height, 900), 16000) });
      for (const frame of await page.locator("iframe").all()) {
        await (await (await frame.elementHandle()).contentFrame()).waitForLoadState("load");
      }
      const shot = path.join(plan.shots, `${name}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.evaluate(axe); // the CSP refuses inline script tags; evaluation is not one
      const found = await page.evaluate(() => window.axe.run(document, {
        iframes: false }));
      const ran = found.passes.length + found.violations.length + found.incomplete.length;
      const review = found.incomplete.map((v) => ({ id: v.id, impact: v.impact,
        nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
      const violations = found.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), html: n.html.slice(0, 200),
          summary: n.failureSummary })) }));
      await page.keyboard.press("Tab");
      const first = await page.evaluate(() => {
        const at = document.activeElement;
        return { tag: at.tagName, class: at.className, href: at.getAttribute("href"),
          text: at.textContent.trim() };
      });
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => location.hash === "#main", null, { timeout: 2000 })
        .catch(() => {});
      const after = await page.evaluate(() => ({ tag: document.activeElement.tagName,
        id: document.activeElement.id }));
      out.pages[name] = { url: page.url(), shot, ran, violations, review, first_tab: first,
        after_enter: after, landmarks: await page.evaluate(() => Array.from(
          document.querySelectorAll("header, nav, main, footer, [role=search]"),
          (el) => el.tagName.toLowerCase() + (el.getAttribute("aria-label") ?
            `[${el.getAttribute("aria-label")}]` : ""))) };
      await page.close();
    }
    return out;
  },

  // Everything the pages logged so far.
  async events() {
    return { dialogs, errors };
  },
};

/** Whether the console made markup of data: img elements, inline handlers, the dialogs. */
async function injected(page) {
  return { imgs: await page.locator("main img").count(),
    handlers: await page.locator("[onerror], [onload], [onclick]").count(),
    dialogs: dialogs.length };
}

/** How axe-core gets into a console page: a script tag (Playwright's addScriptTag inlines the
 * file) meets the CSP's script-src 'self'; page.evaluate does not. */
async function injection() {
  const probe = await signed.newPage();
  const logged = errors.length;
  await probe.goto(`${base}/console/login`);
  let how;
  try {
    await probe.addScriptTag({ path: AXE });
    how = await probe.evaluate(() => typeof window.axe) === "object" ? "addScriptTag" : "none";
  } catch (err) {
    how = `page.evaluate (addScriptTag: ${String(err.message).split("\n")[0].slice(0, 120)})`;
  }
  await probe.close();
  errors.splice(logged); // the probe's own CSP report is not the console's
  return how;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { do: command, ...args } = JSON.parse(line);
  if (command === "quit") break;
  let answer;
  try {
    answer = await commands[command](args);
  } catch (err) {
    answer = { error: `${command}: ${String(err && err.stack || err)}` };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser.close();
process.exit(0); // stdin may still be open
