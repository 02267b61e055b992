/* pulsewire loader: the script behind the tag
   <script async src="https://shop.example.com/pw.js" data-site="SITE_KEY"></script>

   How this works: from its first moment to the page's end the loader records what happens on
   the page as raw signals (collector/raw_signals.py describes them). Until someone takes them
   they wait in a bounded buffer. In `browser` mode the loader imports the collector's boot
   module in idle time and hands the buffer over through `take()`; from then on every new signal,
   `pw(...)` calls included, also goes to `H.sink` (the boot module feeds them to the collector
   in a Web Worker, so Python never runs on the page's own thread), and stays in the buffer
   until the worker says it took it in (`taken`). `back(n)` returns the page to the loader (the
   boot module gives up at page hide): what the worker had not taken in is sent raw as chunk n
   and later signals follow raw. If the page hides or closes before the handoff, or the import
   fails, the loader "goes raw": it sends its buffer as JSON chunks to the signals endpoint,
   where the server replays them through the same collector code, and keeps sending raw for the
   rest of the page load. `edge` mode is raw from the start (a first-party edge worker replays
   the chunks).

   Every chunk carries its history (the page view's signals before it), so the receiver can
   replay it alone: chunks may arrive in any order, twice, or at a host that lost the page
   load, and each signal is still applied once. While the page lives, chunks go one at a time
   by fetch (keepalive), so a failed one is known and goes again unchanged; at page hide all
   that is left goes at once by beacon, in as few chunks as fit, and nothing is recorded after
   the page's end (until a back-forward cache restore starts a new page view).

   Plain ES2017 classic script (plus the dynamic import()), no dependencies; it is served
   minified with terser, and the server replaces the assets placeholder below with its
   versioned assets path, such as /pw/a/0123abcd4567/. */
(() => {
  "use strict";
  try {
    const W = window, D = document, N = navigator, old = W.pw;
    if (old && old.d >= 0) return; // the tag is on the page twice: the first one runs
    const tag = D.currentScript || [...D.querySelectorAll("script[data-site]")].pop();
    const data = tag && tag.dataset, site = data && data.site;
    if (!site) return;
    const src = tag.src, base = new URL(src).origin;
    const assets = new URL("__PW_ASSETS__", src).href;
    const endpoint = data.endpoint || base + "/pw/v1/signals";
    let raw = data.mode == "edge", done = false;

    const random = (array) => crypto.getRandomValues(array);
    const newId = () => btoa(String.fromCharCode(...random(new Uint8Array(16))))
      .slice(0, 22).replace(/\+/g, "-").replace(/\//g, "_");
    let device;
    try {
      device = localStorage.getItem("pw.did");
      if (!/^[\w-]{22}$/.test(device)) localStorage.setItem("pw.did", device = newId());
    } catch (e) {
      device = newId(); // storage blocked: this page load gets an id of its own
    }
    const load = random(new Uint32Array(1))[0] % 2147483647 + 1;
    const t0 = Date.now();
    const ctx = {
      tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
      locale: N.language,
      vw: innerWidth,
      vh: innerHeight,
      cur: data.currency || "",
    };

    // The buffer holds what is not sent or taken in by the worker yet. Past 1000 signals only
    // commands and the page end are kept (up to 1200); whatever is dropped is counted in pw.d.
    // `hist`: what a chunk made now carries as its history (the page view's signals that left
    // the buffer, without the stateless t and i); `k`: how far the page load's engaged time
    // was counted before it.
    // `finals`: the chunks beaconed at the page's end, beaconed once more by the visibility
    // change that follows it (a browser closing a tab has been seen dropping the first; a chunk
    // sent twice is applied once).
    let buf = [], hist = [], finals = [], k, n = 0, f = 0, out, busy = false, ended = false,
      debounce, interval;
    const record = (kind, ...args) => {
      if (ended && kind != "p") return;
      ended = kind == "x";
      const signal = [Math.max(0, Date.now() - t0), kind, ...args];
      const urgent = "tip".includes(kind);
      if (!done && (buf.length >= 1200 || (buf.length >= 1000 && !urgent && !ended))) return P.d++;
      buf.push(signal);
      if (done) H.sink(signal);
      else if (raw && urgent) {
        clearTimeout(debounce);
        debounce = setTimeout(send, 100);
      }
    };
    const pass = (signals) => signals.forEach((signal) => {
      if (signal[1] == "p") hist = [signal];
      else if (!"ti".includes(signal[1])) hist.push(signal);
      if (hist.length > 3000) hist.splice(1, 1);
    });
    const cut = (text, max) => String(text).slice(0, max || 2048);

    // Raw sending, in chunks of at most 1000 signals and 64 KB with their history (the server's
    // limit and the browsers' quota for beacons).
    const make = () => {
      let count = Math.min(buf.length, 1000), json;
      const sent = Math.max(0, Date.now() - t0);
      while (count) {
        json = JSON.stringify({ v: 1, site, device, load, t0, n, f, sent, k, ctx, h: hist,
          s: buf.slice(0, count) });
        if (new Blob([json]).size <= 65536) break;
        if (count > 1) count >>= 1;
        else if (hist.length > 1) hist.splice(1, hist.length >> 1);
        else { // one signal larger than any payload the server takes
          buf.shift();
          P.d++;
          count = Math.min(buf.length, 1000);
        }
      }
      if (!count) return null;
      pass(buf.splice(0, count));
      k = sent;
      n++;
      return json;
    };
    // At page hide a beacon, or fetch(keepalive) where the browser refuses the beacon.
    const post = (chunk, final) => {
      try {
        if (final && N.sendBeacon(endpoint, new Blob([chunk], { type: "text/plain" }))) {
          return finals.push(chunk);
        }
      } catch (e) { /* no sendBeacon, or an invalid endpoint URL */ }
      busy = true;
      fetch(endpoint, { method: "POST", body: chunk, keepalive: true, mode: "no-cors" }).then(
        () => { busy = false; if (out == chunk) out = null; send(); },
        () => { busy = false; }); // offline: the same chunk goes again
      return true;
    };
    // While the page lives one chunk is in flight at a time; `final` (page hide) sends the
    // rest at once, the chunk in flight again too (a chunk sent twice is applied once).
    const send = (final) => {
      if (busy && final !== true) return;
      while ((out = out || make()) && post(out, final === true) && final === true) out = null;
    };
    const goRaw = () => {
      if (done) return;
      raw = true;
      interval = interval || setInterval(send, 5000);
      send(ended || D.hidden);
    };

    // Listeners: passive, each handler guarded.
    const on = (target, types, handler, capture) => types.split(" ").forEach((type) =>
      target.addEventListener(type, (e) => {
        try { handler(e); } catch (x) { /* never into the page */ }
      }, { passive: true, capture: !!capture }));

    let frame = 0, deepest = 0;
    on(W, "scroll", () => {
      frame = frame || requestAnimationFrame(() => {
        frame = 0;
        const pct = Math.round((scrollY + innerHeight) / D.documentElement.scrollHeight * 100);
        if (Math.min(100, pct) > deepest) record("s", deepest = Math.min(100, pct));
      });
    });
    on(D, "visibilitychange", () => {
      const hidden = D.visibilityState == "hidden";
      if (hidden && ended) finals.splice(0).forEach((chunk) => post(chunk, 1));
      record("v", hidden ? 0 : 1);
      if (hidden) goRaw();
    });
    on(W, "focus", () => record("f", 1));
    on(W, "blur", () => record("f", 0));
    let lastActive = -1e4;
    on(W, "pointermove pointerdown keydown touchstart wheel", () => {
      const now = Date.now() - t0;
      if (now - lastActive >= 250) {
        lastActive = now;
        record("a");
      }
    }, true);

    // Hover: the innermost [data-pw-hover] element under the pointer; moving between its
    // children records nothing.
    let hovered = null, hoveredValue;
    const hoverable = (el) => (el && el.closest ? el.closest("[data-pw-hover]") : null);
    on(D, "pointerover", (e) => {
      const el = hoverable(e.target);
      if (!el || el == hovered) return;
      if (hovered) record("l", hoveredValue);
      hovered = el;
      record("e", hoveredValue = cut(el.getAttribute("data-pw-hover"), 256));
    }, true);
    on(D, "pointerout", (e) => {
      if (hovered && hoverable(e.relatedTarget) != hovered) {
        record("l", hoveredValue);
        hovered = null;
      }
    }, true);

    let lastUrl;
    const pageView = (referrer) => {
      record("p", cut(location.pathname), cut(D.title), cut(referrer));
      lastUrl = location.href;
      deepest = 0;
      hovered = null;
    };
    on(W, "pagehide", () => {
      record("x");
      goRaw();
    });
    // A page restored from the back-forward cache is viewed again.
    on(W, "pageshow", (e) => e.persisted && pageView(D.referrer));

    const command = ([name, a, b]) => {
      if (name == "track") record("t", a, b || {});
      else if (name == "identify") {
        a = a || {};
        record("i", a.user_id || "", a.email || "", a.signature || "", a.traits || {});
      } else if (name == "page") pageView(lastUrl);
    };
    const P = W.pw = (...args) => {
      try {
        command(args);
      } catch (e) { /* a bad call never breaks the page */ }
    };
    P.d = 0;

    // The handoff to the collector's boot module.
    const H = {
      site, device, load, t0, ctx, assets, base,
      take: () => {
        if (raw || done) return null;
        done = true;
        return buf.slice();
      },
      // the worker took in `count` more signals and counted engaged time up to `at`
      taken: (count, at) => {
        pass(buf.splice(0, count));
        k = at;
      },
      back: (chunk) => {
        done = false;
        n = f = chunk;
        goRaw();
      },
    };

    if (raw) interval = setInterval(send, 5000);
    pageView(D.referrer);
    if (D.hidden) record("v", 0);
    ((old && old.q) || []).forEach((queued) => command([...queued]));
    const boot = () => raw || done ||
      import(assets + "boot.mjs").then((m) => m.boot(H)).catch(goRaw);
    if (!raw) W.requestIdleCallback ? requestIdleCallback(boot, { timeout: 3000 }) : setTimeout(boot, 1);
  } catch (e) { /* never throw into the page */ }
})();
