// Talking to jafflr: every request has a timeout; a request that gets no HTTP answer at
// all throws Unreachable (jafflr itself cannot be reached), one that gets an error answer
// throws HttpError with jafflr's message. The panel talks to jafflr only.
//
// Every request carries X-Jafflr-Client: jafflr refuses a state-changing request that
// looks like it came from a browser without it, since a page on another site can make a
// browser send anything but a custom header. Admin requests are signed, never sent with
// the token: a single-use nonce from /v2/admin/challenge, then HMAC-SHA256 of the nonce,
// method, path and body hash (sha256.js; plain http has no WebCrypto).

import { hex, hmacSha256, sha256, utf8 } from './sha256.js';

export class Unreachable extends Error {}

export class HttpError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `jafflr answered ${status}`);
    this.status = status;
    this.code = error.code || '';
    this.field = error.field || '';
  }
}

const TOKEN_KEY = 'jafflr-admin-token';

// The admin token: entered once, kept for this tab only (sessionStorage).
export const adminToken = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set(value) {
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: not kept */ }
  },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
  },
};

// The Authorization header for one admin request (see the top of this file).
export function signature(token, nonce, method, path, payload) {
  const text = [nonce, method.toUpperCase(), path, hex(sha256(utf8(payload)))].join('\n');
  return `Jafflr-HMAC nonce="${nonce}", mac="${hex(hmacSha256(utf8(token), utf8(text)))}"`;
}

// What each order made in this tab may be cancelled with (its cancel_secret).
const SECRETS_KEY = 'jafflr-order-secrets';
export const orderSecrets = {
  all() {
    try { return JSON.parse(sessionStorage.getItem(SECRETS_KEY)) || {}; } catch { return {}; }
  },
  get(id) { return this.all()[id]; },
  set(id, secret) {
    const kept = Object.entries(this.all()).slice(-50);     // the last few are enough
    try { sessionStorage.setItem(SECRETS_KEY, JSON.stringify(Object.fromEntries([...kept, [id, secret]]))); } catch { /* not kept */ }
  },
};

export async function call(method, path, { body, key, admin = false, headers: extra = {}, timeoutMs = 4000 } = {}) {
  const headers = { Accept: 'application/json', 'X-Jafflr-Client': 'panel', ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers['Idempotency-Key'] = key;
  const payload = body === undefined ? '' : JSON.stringify(body);
  if (admin && adminToken.get()) {
    const challenge = await call('GET', '/v2/admin/challenge', { timeoutMs });
    headers.Authorization = signature(adminToken.get(), challenge.nonce, method, path, payload);
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let response;
  let data = null;
  try {
    response = await fetch(path, {
      method, headers, signal: abort.signal, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : payload,
    });
    data = await response.json().catch(() => null);
  } catch (error) {
    throw new Unreachable(error.name === 'AbortError'
      ? `no answer within ${timeoutMs / 1000} s` : 'no connection');
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

// A random UUID. crypto.randomUUID() exists only on https or localhost pages; the panel
// is usually plain http on the kitchen's LAN, where getRandomValues still works.
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// One Idempotency-Key per order attempt. A retry after a network blip (no answer: the
// order may or may not have arrived) sends the same key, and jafflr answers with the
// toastie it already made instead of making another. The key is kept until a definite
// answer, so pressing Order again for the same toastie is a retry too.
export class Orderer {
  constructor({ tries = 3, backoffMs = 600 } = {}) {
    this.tries = tries;
    this.backoffMs = backoffMs;
    this.pending = null;   // {fingerprint, key}
  }

  keyFor(body) {
    const fingerprint = JSON.stringify(body);
    if (!this.pending || this.pending.fingerprint !== fingerprint) {
      this.pending = { fingerprint, key: newKey() };
    }
    return this.pending.key;
  }

  async place(body, onRetry) {
    const key = this.keyFor(body);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const order = await call('POST', '/v2/toasties', { body, key, timeoutMs: 6000 });
        if (order.cancel_secret) orderSecrets.set(order.id, order.cancel_secret);
        this.pending = null;
        return order;
      } catch (error) {
        if (error instanceof HttpError) {
          this.pending = null;    // jafflr answered: refused, nothing was ordered
          throw error;
        }
        if (attempt >= this.tries) throw error;    // still unsure: the key is kept
        if (onRetry) onRetry(attempt + 1, this.tries);
        await sleep(this.backoffMs * attempt);
      }
    }
  }
}
