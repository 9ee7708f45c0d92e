// toolgate console: the little behaviour the server-rendered pages need.
// No inline script is allowed by the page's Content-Security-Policy: everything is here.
"use strict";

const csrf = () => {
  const meta = document.querySelector('meta[name="toolgate-csrf"]');
  return meta ? meta.content : "";
};

// Pages that show figures reload themselves, unless someone is typing.
function autoRefresh() {
  const holder = document.querySelector("[data-refresh]");
  if (!holder) return;
  const seconds = Number(holder.dataset.refresh) || 10;
  setInterval(() => {
    const active = document.activeElement;
    const typing = active && (active.tagName === "INPUT" || active.tagName === "SELECT");
    if (!document.hidden && !typing) location.reload();
  }, seconds * 1000);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  row.appendChild(td);
  return td;
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

function took(us) {
  if (us < 1000) return us + " µs";
  if (us < 1000000) return (us / 1000).toFixed(1) + " ms";
  return (us / 1000000).toFixed(2) + " s";
}

function toolHref(server, tool) {
  return "/tools/" + encodeURIComponent(server || "-") + "/" + encodeURIComponent(tool);
}

// Live: each decision the stream sends becomes the table's first row.
function live() {
  const table = document.querySelector("table[data-live]");
  if (!table) return;
  const rows = document.getElementById("live-rows");
  const status = document.getElementById("live-status");
  const showServer = table.dataset.showServer === "true";
  const source = new EventSource(table.dataset.live);
  source.onopen = () => { status.textContent = "Live: new decisions appear at the top."; };
  source.onerror = () => { status.textContent = "Disconnected; reconnecting…"; };
  source.addEventListener("lagged", (e) => {
    const missed = JSON.parse(e.data).missed;
    status.textContent = "This page fell behind and missed " + missed + " decisions.";
  });
  source.addEventListener("decision", (e) => {
    const d = JSON.parse(e.data);
    const row = document.createElement("tr");
    row.className = "new";
    cell(row, clock(d.at_ms));
    if (showServer) cell(row, d.server);
    const link = document.createElement("a");
    link.href = toolHref(d.server, d.tool);
    link.textContent = d.tool;
    cell(row, "").appendChild(link);
    cell(row, d.decision, "tag " + d.decision);
    cell(row, d.rule || "");
    cell(row, d.identity || "");
    cell(row, d.outcome);
    cell(row, took(d.latency_us));
    rows.insertBefore(row, rows.firstChild);
    while (rows.children.length > 200) rows.removeChild(rows.lastChild);
  });
}

// Copy buttons: the text of the element the button names.
function copyButtons() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Toolgate-Csrf": csrf() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// Approvals: approve, deny with a reason, show the arguments' values on request, and
// reload when a new request arrives.
function approvals() {
  const result = (id) => document.querySelector('[data-result-for="' + CSS.escape(id) + '"]');
  const decided = (id, text) => {
    result(id).textContent = text;
    setTimeout(() => location.reload(), 800);
  };
  document.querySelectorAll("button[data-approve]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.approve;
      try {
        const record = await post("/v1/approvals/" + encodeURIComponent(id) + "/approve", {});
        decided(id, "Approved (" + record.state + ").");
      } catch (e) {
        result(id).textContent = "Not approved: " + e.message;
      }
    });
  });
  document.querySelectorAll("button[data-deny]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.deny;
      const input = document.querySelector('[data-reason-for="' + CSS.escape(id) + '"]');
      const reason = input.value.trim();
      if (!reason) {
        result(id).textContent = "Say why: the agent is told the reason.";
        input.focus();
        return;
      }
      try {
        const record = await post("/v1/approvals/" + encodeURIComponent(id) + "/deny", { reason });
        decided(id, "Denied (" + record.state + ").");
      } catch (e) {
        result(id).textContent = "Not denied: " + e.message;
      }
    });
  });
  document.querySelectorAll("button[data-reveal]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.reveal;
      const response = await fetch("/v1/approvals/" + encodeURIComponent(id), { credentials: "same-origin" });
      const record = await response.json();
      button.previousElementSibling.textContent = JSON.stringify(record.arguments, null, 2);
      button.remove();
    });
  });
  if (document.querySelector("[data-approvals-live]")) {
    const shown = new Set([...document.querySelectorAll("[data-approval]")].map((e) => e.dataset.approval));
    const source = new EventSource("/v1/approvals/events");
    source.addEventListener("requested", (e) => {
      const id = JSON.parse(e.data).id;
      const typing = [...document.querySelectorAll("[data-reason-for]")].some((i) => i.value);
      if (!shown.has(id) && !typing) location.reload();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  autoRefresh();
  live();
  copyButtons();
  approvals();
});
