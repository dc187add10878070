// The explorer's detail views: a block (header, certificate, transactions) and a
// transaction (with its inclusion proof checked here). Every value reaches the page as
// text (textContent), never as markup: payloads are chosen by whoever submits them.

import * as verify from "./verify.js";

/// An element with attributes (strings) and children (nodes or text).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const HEX64 = /^[0-9a-f]{64}$/;

/// A link inside the page: only the page's own routes, built from checked values.
export function blockLink(height, text = `#${height}`) {
  return /^\d+$/.test(String(height)) ? el("a", { href: `#/block/${height}` }, text) : String(text);
}

export function txLink(id, text = short(id)) {
  return HEX64.test(id) ? el("a", { href: `#/tx/${id}`, class: "mono" }, text) : String(text);
}

export function short(hex) {
  const text = String(hex);
  return text.length > 16 ? `${text.slice(0, 10)}…${text.slice(-6)}` : text;
}

export function time(ms) {
  const date = new Date(Number(ms));
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString().replace("T", " ").replace("Z", " UTC");
}

/// A payload for people: its text when it is printable UTF-8, else hex; cut to `max`.
export function payloadText(hex, max = 120) {
  let text;
  try {
    const bytes = verify.hexToBytes(hex);
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    if (/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) text = `0x${hex}`;
  } catch {
    text = `0x${hex}`;
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function table(rows, attributes = {}) {
  return el("table", { class: "fields", ...attributes },
    el("tbody", {}, rows.map(([name, value, id]) =>
      el("tr", id ? { "data-field": id } : {}, el("th", {}, name), el("td", {}, value)))));
}

/// One line of the checks list: ✓ or ✗, what was checked, and how it came out.
function check(id, ok, what, detail) {
  return el("li", { class: ok === null ? "check skipped" : ok ? "check ok" : "check bad", "data-check": id, "data-ok": String(ok) },
    el("span", { class: "mark" }, ok === null ? "–" : ok ? "✓" : "✗"), " ", el("strong", {}, what), " ", detail);
}

function hashEngine() {
  return verify.webCrypto() ? "Web Crypto SHA-256" : "this page's SHA-256 (no Web Crypto outside HTTPS or localhost)";
}

function certificateCheck(result) {
  const detail = result.verified === null
    ? `${result.signers} distinct signers, quorum ${result.quorum}; signatures not checked (this browser offers no Ed25519 here)`
    : `${result.verified} of ${result.signers} Ed25519 signatures verify, quorum ${result.quorum}`;
  return check("certificate", result.ok, "Commit certificate:", result.ok ? detail : `${detail}: ${result.problems.join("; ")}`);
}

function certificateTable(certificate, peers) {
  return el("table", { class: "list" },
    el("thead", {}, el("tr", {}, el("th", {}, "Validator"), el("th", {}, "Signature"))),
    el("tbody", {}, certificate.signatures.map(({ validator, signature }) =>
      el("tr", {}, el("td", {}, peers.validators[validator]?.name ?? `#${validator}`), el("td", { class: "mono" }, short(signature))))));
}

/// The block at `height`.
export async function blockView(api, height) {
  const [block, peers] = await Promise.all([api.get(`/v1/blocks/${height}`), api.peers()]);
  const { header, certificate, transactions } = block;
  const ids = await Promise.all(transactions.map((tx) => verify.txId(tx)));
  const [hash, root, cert] = await Promise.all([
    verify.headerHash(header),
    verify.merkleRoot(ids),
    verify.checkCertificate(header.chain_id, block.hash, header.height, certificate, peers),
  ]);
  const proposer = peers.validators.find((v) => v.public_key === header.proposer);
  const checks = el("ul", { class: "checks" },
    check("block-hash", hash === block.hash, "Block hash:", `the header hashes to ${short(hash)} (${hashEngine()})`),
    check("tx-root", root === header.tx_root && ids.length === Number(header.tx_count), "Transaction root:",
      `${ids.length} transaction ids give root ${short(root)}, the header says ${short(header.tx_root)}`),
    certificateCheck(cert));
  const height0 = BigInt(header.height);
  return el("section", { class: "view", "data-view": "block", "data-height": String(header.height) },
    el("h2", {}, `Block ${header.height}`),
    el("p", { class: "mono wrap" }, block.hash),
    checks,
    el("h3", {}, "Header"),
    table([
      ["Height", String(header.height)],
      ["Previous", height0 > 1n ? blockLink(String(height0 - 1n), header.prev_hash) : `${header.prev_hash} (genesis)`],
      ["Transaction root", header.tx_root],
      ["Transactions", String(header.tx_count)],
      ["Proposer", proposer ? `${proposer.name} (${short(header.proposer)})` : header.proposer],
      ["View", String(header.view)],
      ["Time", time(header.timestamp_ms)],
      ["Chain", header.chain_id],
      ["Version", String(header.version)],
    ]),
    el("h3", {}, `Certificate (view ${certificate.view}, ${certificate.signatures.length} signatures)`),
    certificateTable(certificate, peers),
    el("h3", {}, `Transactions (${transactions.length})`),
    el("table", { class: "list" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Id"), el("th", {}, "Sender"), el("th", {}, "Nonce"), el("th", {}, "Payload"))),
      el("tbody", {}, transactions.map((tx, i) => el("tr", {},
        el("td", {}, String(i)), el("td", {}, txLink(ids[i])), el("td", { class: "mono" }, short(tx.sender)),
        el("td", {}, String(tx.nonce)), el("td", { class: "payload" }, payloadText(tx.payload)))))));
}

/// The transaction `id`: pending, or committed with its inclusion proof checked here.
export async function txView(api, id) {
  const status = await api.get(`/v1/transactions/${id}`);
  const tx = status.transaction;
  const computed = await verify.txId(tx);
  const fields = table([
    ["Status", el("span", { class: `status ${status.status}`, "data-status": status.status }, status.status)],
    ["Sender", tx.sender],
    ["Nonce", String(tx.nonce)],
    ["Payload", el("span", { class: "payload" }, payloadText(tx.payload, 4096))],
    ["Payload (hex)", el("span", { class: "mono wrap" }, tx.payload.length > 512 ? `${tx.payload.slice(0, 512)}…` : tx.payload)],
    ["Chain", tx.chain_id],
    ["Signature", el("span", { class: "mono wrap" }, tx.signature)],
  ]);
  const idCheck = check("tx-id", computed === status.id, "Transaction id:", `its fields hash to ${short(computed)} (${hashEngine()})`);
  const section = el("section", { class: "view", "data-view": "tx", "data-id": status.id, "data-status": status.status },
    el("h2", {}, "Transaction"), el("p", { class: "mono wrap" }, status.id));
  if (status.status !== "committed") {
    section.append(el("ul", { class: "checks" }, idCheck), el("p", { class: "note" }, "Waiting in the mempool; this view updates once it is committed."), fields);
    return section;
  }
  const [block, peers] = await Promise.all([api.get(`/v1/blocks/${status.height}`), api.peers()]);
  const header = block.header;
  const [root, hash, cert] = await Promise.all([
    verify.proofRoot(status.id, status.proof),
    verify.headerHash(header),
    verify.checkCertificate(header.chain_id, status.block_hash, header.height, block.certificate, peers),
  ]);
  const proofOk = root !== null && root === header.tx_root && String(status.proof.leaf_count) === String(header.tx_count);
  const hashOk = hash === status.block_hash && block.hash === status.block_hash;
  const all = computed === status.id && proofOk && hashOk && cert.ok;
  section.append(
    el("p", { class: all ? "verdict ok" : "verdict bad", id: "proof-result", "data-verified": String(all) },
      all ? `Included in block ${header.height}: inclusion proof verified in this browser` : "Verification FAILED: see the checks below"),
    el("ul", { class: "checks" },
      idCheck,
      check("inclusion-proof", proofOk, "Inclusion proof (RFC 9162):",
        `leaf ${status.proof.index} of ${status.proof.leaf_count}, ${status.proof.path.length} sibling hashes lead to ${root === null ? "no root (malformed proof)" : short(root)}; the block's tx_root is ${short(header.tx_root)}`),
      check("block-hash", hashOk, "Block hash:", `the block's header hashes to ${short(hash)}`),
      certificateCheck(cert)),
    table([
      ["Block", blockLink(String(status.height), `${status.height} (${short(status.block_hash)})`)],
      ["Index in block", String(status.index)],
      ["Proof path", el("ol", { class: "mono" }, status.proof.path.map((p) => el("li", {}, p)))],
    ]),
    fields);
  return section;
}
