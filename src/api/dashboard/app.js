// The k8s-sync dashboard. The token lives in this tab's sessionStorage and travels in the
// Authorization header, never in a cookie: no other site can make the browser act with it.
"use strict";

const state = { token: sessionStorage.getItem("k8s-sync-token"), role: sessionStorage.getItem("k8s-sync-role"), user: sessionStorage.getItem("k8s-sync-user") };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (response.status === 401 && path !== "/api/login") { signedOut(); }
  if (!response.ok) {
    throw new Error((json && json.error) || ("HTTP " + response.status));
  }
  return json;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function yesNo(row, value) {
  cell(row, value ? "yes" : "no", value ? "yes" : "no");
}

function replace(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function signedIn() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  $("whoami").hidden = false;
  $("whoami").textContent = state.user + " (" + state.role + ")";
  refresh();
}

function signedOut() {
  state.token = null;
  sessionStorage.clear();
  $("login").hidden = false;
  $("board").hidden = true;
  $("logout").hidden = true;
  $("whoami").hidden = true;
}

async function refreshStatus() {
  const status = await api("GET", "/api/status");
  const primary = status.primary;
  const rows = [];
  if (primary) {
    const row = document.createElement("tr");
    cell(row, primary.name);
    yesNo(row, primary.reachable);
    yesNo(row, primary.authoritative !== false);
    cell(row, primary.objects);
    cell(row, primary.last_pass ? primary.last_pass.finished_at || primary.last_pass.started_at : "");
    const leader = status.leader;
    cell(row, leader ? (leader.holder || "") + (leader.leading ? " (this copy)" : "") : "");
    rows.push(row);
  }
  replace($("primary").tBodies[0], rows);
  replace($("replicas").tBodies[0], (status.replicas || []).map((r) => {
    const row = document.createElement("tr");
    row.dataset.replica = r.name;
    cell(row, r.name);
    yesNo(row, r.reachable);
    cell(row, r.last_success || "never");
    cell(row, r.drifted);
    cell(row, r.lag_seconds === undefined ? "" : r.lag_seconds.toFixed(1) + " s");
    cell(row, r.held);
    cell(row, r.queued);
    return row;
  }));
  const watchers = status.watchers || {};
  $("watchers").replaceChildren(...Object.keys(watchers).sort().map((name) => {
    const item = document.createElement("li");
    const w = watchers[name];
    item.textContent = name + ": " + w.state + (w.error ? " (" + w.error + ")" : "");
    return item;
  }));
}

async function refreshJobs() {
  const query = new URLSearchParams({ limit: $("limit").value });
  if ($("status").value) query.set("status", $("status").value);
  if ($("replica").value.trim()) query.set("replica", $("replica").value.trim());
  const listed = await api("GET", "/api/jobs?" + query.toString());
  replace($("jobs").tBodies[0], listed.jobs.map((job) => {
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    cell(row, job.id);
    cell(row, job.replica);
    cell(row, job.kind + " " + job.namespace + "/" + job.name);
    cell(row, job.action);
    cell(row, job.status, "status-" + job.status);
    cell(row, job.updated_at);
    cell(row, job.error, "error-text");
    const actions = cell(row, "");
    if (job.status === "failed" && state.role === "admin") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "retry";
      button.textContent = "Retry";
      button.addEventListener("click", () => retry(job, button));
      actions.appendChild(button);
    }
    return row;
  }));
}

async function retry(job, button) {
  button.disabled = true;
  try {
    const query = new URLSearchParams({ jobid: job.id, replica: job.replica });
    await api("POST", "/retry?" + query.toString());
    problem(null);
  } catch (error) {
    problem("retry of job " + job.id + ": " + error.message);
  }
  refresh();
}

function problem(message) {
  $("problem").hidden = !message;
  $("problem").textContent = message || "";
}

let refreshing = null;
async function refresh() {
  if (!state.token) return;
  clearTimeout(refreshing);
  try {
    await Promise.all([refreshStatus(), refreshJobs()]);
    if ($("problem").dataset.kind === "refresh") problem(null);
  } catch (error) {
    problem(error.message);
    $("problem").dataset.kind = "refresh";
  }
  refreshing = setTimeout(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").hidden = true;
    try {
      const session = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
      state.token = session.token;
      state.role = session.role;
      state.user = session.user;
      sessionStorage.setItem("k8s-sync-token", state.token);
      sessionStorage.setItem("k8s-sync-role", state.role);
      sessionStorage.setItem("k8s-sync-user", state.user);
      $("password").value = "";
      signedIn();
    } catch (error) {
      $("login-error").textContent = error.message;
      $("login-error").hidden = false;
    }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (_) { /* the session ends here anyway */ }
    signedOut();
  });
  for (const id of ["status", "limit"]) $(id).addEventListener("change", refresh);
  $("replica").addEventListener("input", refresh);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  if (state.token) signedIn(); else signedOut();
});
