/* pulsewire loader: the script behind the tag
   <script async src="https://shop.example.com/pw.js" data-site="SITE_KEY"></script>

   How this works: from its first moment to the page's end the loader records what happens on
   the page as raw signals (collector/raw_signals.py describes them). Until someone takes them
   they wait in a bounded buffer. In `browser` mode the loader imports the collector's boot
   module in idle time and hands the buffer over through `take()`; from then on every new signal,
   `pw(...)` calls included, goes straight to `H.sink` (the boot module feeds them to the
   collector in a Web Worker, so Python never runs on the page's own thread). `back(signals, n)`
   returns the page to the loader (the boot module gives up at page hide): those signals are sent
   raw as chunk n and later ones follow raw. If the page hides or closes before the handoff, or
   the import fails, the loader "goes raw": it sends its buffer as JSON chunks to the signals
   endpoint, where the server replays them through the same collector code, and keeps sending
   raw for the rest of the page load. `edge` mode is raw from the start (a first-party edge
   worker replays the chunks).

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

    // The buffer holds what is not handed over or sent yet. Past 1000 signals only commands
    // and the page end are kept (up to 1200); whatever is dropped is counted in pw.d.
    let buf = [], n = 0, busy = false, debounce, interval;
    const record = (kind, ...args) => {
      const signal = [Math.max(0, Date.now() - t0), kind, ...args];
      if (done) return H.sink(signal);
      const urgent = "tip".includes(kind);
      if (buf.length >= 1200 || (buf.length >= 1000 && !urgent && kind != "x")) return P.d++;
      buf.push(signal);
      if (raw && urgent) {
        clearTimeout(debounce);
        debounce = setTimeout(send, 100);
      }
    };
    const cut = (text, max) => String(text).slice(0, max || 2048);

    // Raw sending, in chunks of at most 1000 signals and 64 KB (the server's limit and the
    // browsers' quota for beacons); a failed send puts its signals back and keeps its number.
    const send = () => {
      if (busy || !buf.length) return;
      let count = Math.min(buf.length, 1000), json, blob;
      const sent = Math.max(0, Date.now() - t0);
      for (;;) {
        json = JSON.stringify({ v: 1, site, device, load, t0, n, sent, ctx, s: buf.slice(0, count) });
        blob = new Blob([json], { type: "text/plain" });
        if (blob.size <= 65536) break;
        if (count < 2) { // one signal larger than any payload the server takes
          buf.shift();
          P.d++;
          return send();
        }
        count >>= 1;
      }
      const part = buf.splice(0, count);
      const next = () => { n++; send(); };
      const failed = () => { buf = part.concat(buf); };
      if (N.sendBeacon) {
        let ok = false;
        try { ok = N.sendBeacon(endpoint, blob); } catch (e) { /* an invalid endpoint URL */ }
        ok ? next() : failed();
      } else {
        busy = true;
        fetch(endpoint, { method: "POST", body: json, keepalive: true, mode: "no-cors" }).then(
          () => { busy = false; next(); },
          () => { busy = false; failed(); });
      }
    };
    const goRaw = () => {
      if (done) return;
      raw = true;
      interval = interval || setInterval(send, 5000);
      send();
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
        return buf.splice(0);
      },
      back: (signals, chunk) => {
        done = false;
        buf = signals.concat(buf);
        n = chunk;
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
