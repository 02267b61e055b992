// Debian's Chromium, headless, launched the way every browser test needs it: nothing leaves
// this machine (every host name but 127.0.0.1 resolves nowhere; no background networking,
// updates or sync), and a "person" is a desktop Chrome that does not declare automation.
import { chromium } from "../../sdk_js/node_modules/playwright-core/index.mjs";

export const USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
  "Chrome/131.0.0.0 Safari/537.36";

/** `person`: no automation flag, a normal user agent (on the command line too: a context's
 * override does not reach the beacons a page sends as it unloads, which would otherwise go as
 * HeadlessChrome and be dropped as a bot's). `netLog`: a file for Chromium's own network log.
 * `backForwardCache`: on, as in a person's Chrome (Playwright turns it off). */
export function launch({ person = true, netLog = "", backForwardCache = false } = {}) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-domain-reliability",
      "--disable-sync",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      ...(netLog ? [`--log-net-log=${netLog}`] : []),
      ...(person ? ["--disable-blink-features=AutomationControlled",
        `--user-agent=${USER_AGENT}`] : []),
    ],
    ignoreDefaultArgs: [...(person ? ["--enable-automation"] : []),
      ...(backForwardCache ? ["--disable-back-forward-cache"] : [])],
  });
}
