// The AEGIS block explorer, served by the node at / (docs/api.md, "Explorer"). It reads
// the node's own client API, from this origin only: /v1/node, /v1/peers, /health,
// /v1/blocks/..., /v1/transactions/{id} and the live stream /v1/events.

import { parseJson, txId } from "./verify.js";
import { blockLink, blockView, el, short, time, txLink, txView } from "./views.js";

/// Latest blocks kept in the list.
const MAX_BLOCKS = 20;
/// Blocks read at start (the tip and the ones before it); later ones arrive as events.
const INITIAL_BLOCKS = 5;
/// How often health and peers are refreshed, and a pending transaction re-read.
const REFRESH_MS = 5000;
const PENDING_REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);

/// The client API: JSON (large integers kept exact), errors as the node words them.
const api = {
  async get(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    const text = await response.text();
    let body;
    try {
      body = parseJson(text);
    } catch {
      throw new Error(`${path}: HTTP ${response.status}, not JSON`);
    }
    if (!response.ok && !(path.startsWith("/health") && body.status)) {
      throw new Error(body.message ?? `${path}: HTTP ${response.status}`);
    }
    return body;
  },
  peersCache: null,
  /// /v1/peers, re-read at most every REFRESH_MS (certificate checks need its keys).
  async peers() {
    const now = Date.now();
    if (!this.peersCache || now - this.peersCache.at > REFRESH_MS) {
      this.peersCache = { at: now, value: this.get("/v1/peers") };
    }
    return this.peersCache.value;
  },
};

// ----- Latest blocks: the tip, then live from /v1/events -----

const blocks = new Map();

function showBlock({ height, hash, tx_count, tx_ids }, seen) {
  const key = String(height);
  if (blocks.has(key)) return;
  const ids = tx_ids ?? [];
  const firstTx = ids.length > 0 ? [txLink(ids[0]), ids.length > 1 ? ` +${ids.length - 1}` : ""] : "";
  const row = el("tr", { "data-height": key },
    el("td", {}, blockLink(key)),
    el("td", { class: "mono" }, short(hash)),
    el("td", {}, String(tx_count)),
    el("td", {}, firstTx),
    el("td", {}, seen));
  row.dataset.txIds = ids.join(" ");
  blocks.set(key, row);
  const body = $("blocks-body");
  const after = [...body.children].find((other) => BigInt(other.dataset.height) < BigInt(key));
  body.insertBefore(row, after ?? null);
  while (body.children.length > MAX_BLOCKS) {
    const last = body.lastElementChild;
    blocks.delete(last.dataset.height);
    last.remove();
  }
  $("blocks-empty").hidden = true;
}

async function loadRecentBlocks() {
  let tip;
  try {
    tip = await api.get("/v1/blocks/latest");
  } catch (error) {
    $("blocks-empty").textContent = `No block yet (${error.message}).`;
    return;
  }
  const show = async (block) => showBlock({
    height: block.header.height,
    hash: block.hash,
    tx_count: block.header.tx_count,
    tx_ids: await Promise.all(block.transactions.map((tx) => txId(tx))),
  }, time(block.header.timestamp_ms));
  await show(tip);
  const top = BigInt(tip.header.height);
  const earlier = [];
  for (let h = top - 1n; h >= 1n && h > top - BigInt(INITIAL_BLOCKS); h--) earlier.push(h);
  const read = await Promise.allSettled(earlier.map((h) => api.get(`/v1/blocks/${h}`)));
  for (const result of read) {
    if (result.status === "fulfilled") await show(result.value);
  }
}

function followEvents() {
  const state = $("live-state");
  const events = new EventSource("/v1/events");
  events.addEventListener("open", () => {
    state.textContent = "live";
    state.className = "live";
  });
  events.addEventListener("error", () => {
    // EventSource reconnects by itself, resuming after the last id it saw.
    state.textContent = "reconnecting…";
    state.className = "down";
  });
  events.addEventListener("block", (event) => {
    const block = parseJson(event.data);
    showBlock(block, `${time(Date.now())} (live)`);
  });
}

// ----- Health and peers -----

async function refreshHealth() {
  const box = $("health");
  try {
    const health = await api.get("/health");
    const checks = Object.entries(health.checks ?? {}).map(([name, check]) =>
      el("li", { class: `check ${check.status}` }, el("strong", {}, name), ` ${check.status}`));
    box.replaceChildren(
      el("p", { class: `status ${health.status}`, "data-status": health.status }, health.status),
      el("p", {}, `Height ${health.block_height}, sync ${health.sync_status}, up ${health.uptime_seconds} s`),
      el("ul", { class: "checks" }, checks));
  } catch (error) {
    box.replaceChildren(el("p", { class: "status unhealthy" }, `unreachable: ${error.message}`));
  }
}

async function refreshPeers() {
  const box = $("peers");
  try {
    api.peersCache = null;
    const peers = await api.peers();
    box.replaceChildren(
      el("p", { "data-connected": String(peers.connected) },
        `${peers.connected} of ${peers.validators.length - 1} other validators connected; a block needs ${peers.quorum} votes.`),
      el("table", { class: "list" },
        el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Validator"), el("th", {}, "State"), el("th", {}, "RTT"))),
        el("tbody", {}, peers.validators.map((v) => el("tr", { "data-peer": v.name, "data-state": v.state },
          el("td", {}, String(v.validator_id)),
          el("td", { title: v.public_key }, v.name),
          el("td", { class: `state ${v.state}` }, v.state === "connected" ? `${v.state} (${v.direction})` : v.state),
          el("td", {}, v.rtt_ms === undefined ? "" : `${Number(v.rtt_ms).toFixed(1)} ms`))))));
  } catch (error) {
    box.replaceChildren(el("p", {}, `unavailable: ${error.message}`));
  }
}

async function showNode() {
  try {
    const node = await api.get("/v1/node");
    $("node-info").textContent = `${node.node_id} · chain ${node.chain_id} · ${node.algorithm} · ${node.validators} validators · v${node.version}`;
  } catch (error) {
    $("node-info").textContent = `node unavailable: ${error.message}`;
  }
}

// ----- Routes: #/block/<height>, #/tx/<id>, or the latest blocks -----

let routeSerial = 0;

async function route() {
  const serial = ++routeSerial;
  const view = $("view");
  const hash = decodeURIComponent(location.hash.slice(1));
  const block = /^\/block\/(\d+)$/.exec(hash);
  const tx = /^\/tx\/([0-9a-fA-F]{64})$/.exec(hash);
  if (!block && !tx) {
    view.replaceChildren();
    view.hidden = true;
    return;
  }
  view.hidden = false;
  view.replaceChildren(el("p", { class: "note" }, "Loading…"));
  try {
    const shown = block ? await blockView(api, block[1]) : await txView(api, tx[1].toLowerCase());
    if (serial !== routeSerial) return;
    view.replaceChildren(shown);
    if (shown.dataset.view === "tx" && shown.dataset.status === "pending") {
      setTimeout(() => serial === routeSerial && route(), PENDING_REFRESH_MS);
    }
  } catch (error) {
    if (serial === routeSerial) view.replaceChildren(el("p", { class: "error", "data-error": "" }, error.message));
  }
}

function search(event) {
  event.preventDefault();
  const text = $("search-input").value.trim();
  if (/^\d+$/.test(text)) location.hash = `#/block/${text}`;
  else if (/^[0-9a-fA-F]{64}$/.test(text)) location.hash = `#/tx/${text.toLowerCase()}`;
  else $("search-hint").textContent = "Give a block height or a 64-digit transaction id.";
}

function start() {
  $("search").addEventListener("submit", search);
  window.addEventListener("hashchange", route);
  // Anything the page could not do is shown, not only logged to the console.
  window.addEventListener("error", (event) => {
    $("page-errors").append(el("li", {}, String(event.message)));
  });
  window.addEventListener("unhandledrejection", (event) => {
    $("page-errors").append(el("li", {}, String(event.reason?.message ?? event.reason)));
  });
  document.addEventListener("securitypolicyviolation", (event) => {
    $("page-errors").append(el("li", {}, `blocked by the content security policy: ${event.violatedDirective} ${event.blockedURI}`));
  });
  showNode();
  refreshHealth();
  refreshPeers();
  setInterval(refreshHealth, REFRESH_MS);
  setInterval(refreshPeers, REFRESH_MS);
  // Subscribe before reading the tip: a block committed in between is not missed.
  followEvents();
  loadRecentBlocks();
  route();
  document.body.dataset.ready = "true";
}

start();
