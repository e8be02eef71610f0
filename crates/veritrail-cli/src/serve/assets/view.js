// veritrail serve: the event page's in-browser verification and the events page's live mode.
//
// Verification trusts nothing the server says: it fetches the record's c2sp.org/tlog-proof@v1
// file, checks that it carries exactly the bytes shown on the page, checks the checkpoint's
// Ed25519 signature against the verifier key the reader pinned in this browser (localStorage;
// never taken from the server), and recomputes the RFC 6962 / RFC 9162 inclusion proof from
// the record's SHA-256 leaf hash up to the signed root. WebCrypto does the hashing and the
// signature check. Whatever fails is named.
"use strict";

(() => {
  const KEY_STORE = "veritrail.pinned-key";
  const encoder = new TextEncoder();

  for (const element of document.querySelectorAll(".js-only")) element.hidden = false;

  class Failure extends Error {
    constructor(step, message) {
      super(message);
      this.step = step;
    }
  }

  // Text from the server shown with its controls and bidi overrides escaped, as the pages do.
  const safe = (s) =>
    String(s).replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\\]/g, (c) =>
      c === "\\" ? "\\\\" : `\\u{${c.codePointAt(0).toString(16)}}`);

  function base64(text, what) {
    if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new Failure("proof", `${what} is not base64`);
    }
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const leafHash = (record) => sha256(concat(Uint8Array.of(0), record));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
  const decimal = (text, what) => {
    if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw new Failure("proof", `${what} is not a decimal number`);
    return BigInt(text);
  };

  // A signed-note verifier key: name+hexid+base64(0x01 || Ed25519 public key); the key ID
  // must be SHA-256(name || "\n" || 0x01 || key)[:4].
  async function verifierKey(text) {
    const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(text.trim());
    if (!match) throw new Failure("key", "the pinned key is not a verifier key (name+hexid+base64)");
    const raw = base64(match[3], "the pinned key");
    if (raw.length !== 33 || raw[0] !== 1) throw new Failure("key", "the pinned key is not an Ed25519 verifier key");
    const id = parseInt(match[2], 16) >>> 0;
    const hash = await sha256(concat(encoder.encode(match[1] + "\n"), raw));
    const expected = ((hash[0] << 24) | (hash[1] << 16) | (hash[2] << 8) | hash[3]) >>> 0;
    if (id !== expected) throw new Failure("key", "the pinned key's ID does not match its name and key");
    return { name: match[1], id, label: `${match[1]}+${match[2]}`, key: raw.slice(1) };
  }

  function parseProof(text) {
    const lines = text.split("\n");
    if (lines[0] !== "c2sp.org/tlog-proof@v1") throw new Failure("proof", "the server's answer is not a c2sp.org/tlog-proof@v1 file");
    if (!lines[1] || !lines[1].startsWith("extra ")) throw new Failure("proof", "the proof does not carry the record (no extra line)");
    if (!lines[2] || !lines[2].startsWith("index ")) throw new Failure("proof", "the proof has no index line");
    const record = base64(lines[1].slice(6), "the proof's record");
    const index = decimal(lines[2].slice(6), "the proof's index");
    const hashes = [];
    let line = 3;
    for (; line < lines.length && lines[line] !== ""; line++) {
      const hash = base64(lines[line], `proof line ${line + 1}`);
      if (hash.length !== 32) throw new Failure("proof", `proof line ${line + 1} is not a SHA-256 hash`);
      hashes.push(hash);
      if (hashes.length > 64) throw new Failure("proof", "the proof has more than 64 hashes");
    }
    if (line >= lines.length) throw new Failure("proof", "the proof has no checkpoint");
    return { record, index, hashes, checkpoint: lines.slice(line + 1).join("\n") };
  }

  // A C2SP signed note holding a tlog-checkpoint body.
  function parseCheckpoint(note) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Failure("checkpoint", "the checkpoint is not a signed note");
    const text = note.slice(0, split + 1);
    const signatures = note.slice(split + 2);
    if (!signatures.endsWith("\n")) throw new Failure("checkpoint", "the checkpoint's signature lines are malformed");
    const lines = signatures.slice(0, -1).split("\n").map((line) => {
      const match = /^\u2014 (\S+) ([A-Za-z0-9+/]+=*)$/.exec(line);
      if (!match) throw new Failure("checkpoint", "the checkpoint has a malformed signature line");
      const raw = base64(match[2], "a checkpoint signature");
      if (raw.length < 5) throw new Failure("checkpoint", "a checkpoint signature is too short");
      const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
      return { name: match[1], id, signature: raw.slice(4) };
    });
    const body = text.split("\n");
    if (body.length < 4) throw new Failure("checkpoint", "the checkpoint body is too short");
    const root = base64(body[2], "the checkpoint's root");
    if (root.length !== 32) throw new Failure("checkpoint", "the checkpoint's root is not a SHA-256 hash");
    return { text, lines, origin: body[0], size: decimal(body[1], "the checkpoint's size"), root };
  }

  async function checkSignature(checkpoint, key) {
    const mine = checkpoint.lines.filter((s) => s.name === key.name && s.id === key.id);
    if (mine.length === 0) {
      const others = checkpoint.lines.map((s) => `${s.name}+${s.id.toString(16).padStart(8, "0")}`).join(", ");
      throw new Failure("signature", `the checkpoint is not signed by the pinned key ${key.label} (it is signed by ${others || "no key"})`);
    }
    const publicKey = await crypto.subtle.importKey("raw", key.key, { name: "Ed25519" }, false, ["verify"]);
    for (const s of mine) {
      const valid = s.signature.length === 64 &&
        await crypto.subtle.verify({ name: "Ed25519" }, publicKey, s.signature, encoder.encode(checkpoint.text));
      if (!valid) throw new Failure("signature", `the checkpoint's signature by ${key.label} does not verify with the pinned key`);
    }
  }

  // RFC 9162 section 2.1.3.2: the root an inclusion proof leads to.
  async function inclusionRoot(index, size, leaf, proof) {
    if (index >= size) throw new Failure("inclusion", `record ${index} is outside the checkpoint's tree of size ${size}`);
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Failure("inclusion", "the proof is longer than the tree allows");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Failure("inclusion", "the proof is shorter than the tree needs");
    return r;
  }

  async function verify(section) {
    const index = BigInt(section.dataset.index);
    const shown = base64(section.dataset.record, "the record on this page");
    const pinned = localStorage.getItem(KEY_STORE);
    if (!pinned) throw new Failure("key", "no verifier key is pinned: pin the log's key, from a source you trust, first");
    const key = await verifierKey(pinned);
    const response = await fetch(`/api/v1/proof/${index}`, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Failure("proof", `the server did not give the proof (HTTP ${response.status})`);
    const proof = parseProof(await response.text());
    if (proof.index !== index) throw new Failure("proof", `the proof is for record ${proof.index}, not record ${index}`);
    if (!equal(proof.record, shown)) throw new Failure("record", "the proof carries other bytes than the record shown on this page");
    const checkpoint = parseCheckpoint(proof.checkpoint);
    await checkSignature(checkpoint, key);
    const root = await inclusionRoot(index, checkpoint.size, await leafHash(shown), proof.hashes);
    if (!equal(root, checkpoint.root)) {
      throw new Failure("inclusion", `record ${index} and its proof do not lead to the root signed in the checkpoint of size ${checkpoint.size}: the record or the proof is not the log's`);
    }
    return `verified: record ${index} is in ${safe(checkpoint.origin)}, under the checkpoint of size ${checkpoint.size} signed by the pinned key ${key.label}`;
  }

  const section = document.getElementById("verify");
  if (section) {
    const input = document.getElementById("pinned-key");
    const result = document.getElementById("verify-result");
    const show = (state, message) => {
      result.dataset.state = state;
      result.textContent = message;
    };
    input.value = localStorage.getItem(KEY_STORE) || "";
    document.getElementById("pin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const key = await verifierKey(input.value);
        localStorage.setItem(KEY_STORE, input.value.trim());
        show("pinned", `pinned ${key.label} in this browser`);
      } catch (e) {
        show("failed", `failed: ${e.step || "key"}: ${e.message}`);
      }
    });
    document.getElementById("verify-button").addEventListener("click", async () => {
      show("running", "verifying…");
      const started = performance.now();
      try {
        const message = await verify(section);
        result.dataset.ms = (performance.now() - started).toFixed(2);
        show("verified", message);
      } catch (e) {
        result.dataset.ms = (performance.now() - started).toFixed(2);
        show("failed", e instanceof Failure ? `failed: ${e.step}: ${e.message}` : `failed: ${e}`);
      }
    });
  }

  // The overview follows a full verification while it runs.
  if (document.querySelector("#verification[data-running]")) {
    setTimeout(() => location.reload(), 1000);
  }

  // Live mode: new rows from /api/v1/events/stream, on the newest page only.
  const live = document.getElementById("live");
  const table = document.querySelector("#events tbody");
  if (live && table) {
    const params = new URLSearchParams(location.search);
    if (params.has("before")) {
      live.disabled = true;
      live.parentElement.title = "Live mode shows the newest events: go to the newest page";
    }
    params.delete("before");
    params.delete("limit");
    let source = null;
    live.addEventListener("change", () => {
      if (source) {
        source.close();
        source = null;
        delete live.dataset.state;
      }
      if (!live.checked) return;
      source = new EventSource(`/api/v1/events/stream?${params}`);
      source.addEventListener("open", () => { live.dataset.state = "open"; });
      source.addEventListener("error", () => { live.dataset.state = "reconnecting"; });
      source.addEventListener("record", (message) => {
        const data = JSON.parse(message.data);
        table.insertAdjacentHTML("afterbegin", data.html);
        table.firstElementChild.classList.add("fresh");
      });
    });
  }
})();
