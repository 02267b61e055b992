// pulsewire console: the Live page's rows as they arrive (server-sent events). Nothing else
// needs script: every page works without it. Text is set with textContent, never as HTML.
"use strict";
(function () {
  const table = document.querySelector("table[data-stream]");
  if (!table || !window.EventSource) return;
  const rows = document.getElementById("live-rows");
  const shown = new Set(Array.from(rows.querySelectorAll("tr[data-number]"), (r) => r.dataset.number));
  const source = new EventSource(table.dataset.stream);
  const cell = (row, text) => { const td = row.insertCell(); td.textContent = text; return td; };
  source.onmessage = (message) => {
    const e = JSON.parse(message.data);
    const number = String(e.number);
    if (shown.has(number)) return;
    shown.add(number);
    const row = document.createElement("tr");
    row.dataset.number = number;
    row.dataset.user = e.user;
    row.className = "new";
    cell(row, new Date(e.at_ms).toISOString().replace(".000Z", "Z"));
    const who = row.insertCell();
    const link = document.createElement("a");
    link.href = "/console/users?who=" + encodeURIComponent(e.user);
    link.textContent = e.user;
    who.appendChild(link);
    cell(row, e.event);
    cell(row, Object.entries(e.props).map(([k, v]) => k + "=" + v).join(", "));
    cell(row, e.moved.join(", "));
    rows.insertBefore(row, rows.firstChild);
    while (rows.rows.length > 200) rows.deleteRow(rows.rows.length - 1);
  };
})();
