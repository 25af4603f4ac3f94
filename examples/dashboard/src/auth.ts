// Holding and refreshing cloudkeys tokens (SPEC §3, §9), with nothing
// Apollo-specific: client.ts plugs this into Apollo Client's link chain.
//
// The recipe:
//   - login answers an access token (a JWT, 15 minutes by default) and a
//     refresh token (opaque, rotated on every use, 30 days by default).
//     Requests carry `Authorization: Bearer <accessToken>`; no cookies.
//   - A guarded field refused with extensions.code UNAUTHENTICATED carries
//     extensions.reason. Refresh on TOKEN_EXPIRED only, once, then send the
//     operation again; on any other reason (TOKEN_INVALID, SESSION_ENDED,
//     TOKEN_MISSING, or a refresh refused with REFRESH_TOKEN_*) sign out:
//     refreshing cannot help. ACCOUNT_DISABLED and ACCOUNT_PENDING sign out
//     too.
//   - Refresh one at a time. Tabs of one session refresh under a Web Lock
//     (navigator.locks), so one tab refreshes and the others adopt its tokens
//     (they hear of them over a BroadcastChannel). Where navigator.locks is
//     missing — Node 20 has no `navigator` at all, and Node 22 has one
//     without `locks` — an in-process mutex serialises the refreshes of this
//     process instead. Either way the server is lenient: up to 10 uses of
//     one refresh token within 10 s all get working tokens, so two tabs that
//     race anyway (a message that arrives late) are not signed out; a use
//     after that window is taken as theft and ends the session.
import { print } from 'graphql';
import type { ResultOf, TypedDocumentNode } from '@graphql-typed-document-node/core';
import { LogoutDocument, RefreshTokenDocument } from './operations.js';

/** What a signed-in client holds. */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires (Time: RFC 3339, UTC, milliseconds). */
  expiresAt: string;
  refreshExpiresAt: string;
  email: string;
}

/** Where the tokens are kept. */
export interface TokenStore {
  get(): Tokens | null;
  set(tokens: Tokens | null): void;
}

/** Keeps the tokens in memory only: gone on reload (Node, or the strictest browser setup). */
export function memoryStore(): TokenStore {
  let tokens: Tokens | null = null;
  return {
    get: () => tokens,
    set: (t) => {
      tokens = t;
    },
  };
}

/**
 * Keeps the tokens in memory, mirrored in sessionStorage so a reload stays
 * signed in. sessionStorage belongs to one tab and is gone when it closes
 * (a duplicated tab gets a copy); localStorage would keep a 30-day refresh
 * token on disk, readable by every script of the origin in every tab, for
 * as long as nobody clears it.
 */
export function sessionStorageStore(key = 'cloudkeys:tokens'): TokenStore {
  const storage = (globalThis as { sessionStorage?: Storage }).sessionStorage;
  let tokens: Tokens | null = null;
  try {
    tokens = JSON.parse(storage?.getItem(key) ?? 'null') as Tokens | null;
  } catch {
    tokens = null;
  }
  return {
    get: () => tokens,
    set: (t) => {
      tokens = t;
      try {
        if (t) storage?.setItem(key, JSON.stringify(t));
        else storage?.removeItem(key);
      } catch {
        // Storage full or forbidden: memory still works.
      }
    },
  };
}

/** The session (sid claim) an access token belongs to, read without verifying it. */
export function sessionOf(accessToken: string): string | null {
  try {
    const payload = accessToken.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const sid = (JSON.parse(json) as { sid?: unknown }).sid;
    return typeof sid === 'string' ? sid : null;
  } catch {
    return null;
  }
}

type TabMessage = { sid: string; tokens: Tokens | null };

/**
 * Wraps a store so that the tabs (or, in Node, the clients) of one session
 * keep the same tokens: a refresh or a sign-out in one is posted on a
 * BroadcastChannel and adopted by the others holding the same session (the
 * `sid` of their access token). Tabs signed in separately (other sessions)
 * are left alone.
 */
export function sharedAcrossTabs(inner: TokenStore, channelName = 'cloudkeys-tokens'): TokenStore & { close(): void } {
  const Channel = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
  const channel = Channel ? new Channel(channelName) : null;
  if (channel) {
    channel.onmessage = (ev: MessageEvent<TabMessage>) => {
      const mine = inner.get();
      if (mine && sessionOf(mine.accessToken) === ev.data.sid) inner.set(ev.data.tokens);
    };
  }
  return {
    get: () => inner.get(),
    set: (t) => {
      const sid = sessionOf((t ?? inner.get())?.accessToken ?? '');
      inner.set(t);
      if (channel && sid) channel.postMessage({ sid, tokens: t } satisfies TabMessage);
    },
    close: () => channel?.close(),
  };
}

// Serialising refreshes.

interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

const inProcess = new Map<string, Promise<unknown>>();

/**
 * Runs fn holding the lock called name: a Web Lock when the platform has
 * navigator.locks (browsers: held across every tab of the origin), else an
 * in-process mutex (Node 20 has no navigator; Node 22 has no navigator.locks).
 */
export function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  if (locks) return locks.request(name, fn);
  const previous = inProcess.get(name) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  inProcess.set(name, tail);
  void tail.then(() => {
    if (inProcess.get(name) === tail) inProcess.delete(name);
  });
  return run;
}

/** Whether navigator.locks serialises refreshes here (else the in-process mutex). */
export function hasWebLocks(): boolean {
  return Boolean((globalThis as { navigator?: { locks?: unknown } }).navigator?.locks);
}

// Talking to the server without Apollo (the refresh must not go through the
// link that calls it).

interface GraphQLError {
  message: string;
  extensions?: { code?: string; reason?: string; [k: string]: unknown };
}

export async function post<R, V>(
  endpoint: string,
  doc: TypedDocumentNode<R, V>,
  variables: V,
  accessToken?: string,
): Promise<{ data?: R | null; errors?: GraphQLError[] }> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    Accept: 'application/graphql-response+json, application/json',
  };
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  const res = await fetch(endpoint, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: print(doc), variables }),
    credentials: 'omit',
  });
  return (await res.json()) as { data?: R | null; errors?: GraphQLError[] };
}

type RefreshResult = ResultOf<typeof RefreshTokenDocument>;

/** Why the client signed out, for the UI. */
export type SignOutReason = string;

export interface AuthOptions {
  /** The GraphQL endpoint, e.g. http://localhost:8080/graphql. */
  endpoint: string;
  store: TokenStore;
  /** Called after the tokens were dropped, with the reason (e.g. SESSION_ENDED). */
  onSignedOut?: (reason: SignOutReason) => void;
}

/** The tokens of one client, and the refresh and sign-out rules. */
export class Auth {
  readonly endpoint: string;
  readonly store: TokenStore;
  private readonly onSignedOut?: (reason: SignOutReason) => void;
  /** How many refreshes this client sent (for tests and metrics). */
  refreshes = 0;

  constructor(opts: AuthOptions) {
    this.endpoint = opts.endpoint;
    this.store = opts.store;
    this.onSignedOut = opts.onSignedOut;
  }

  get accessToken(): string | null {
    return this.store.get()?.accessToken ?? null;
  }

  /** Stores the tokens of a login or refreshToken answer. */
  signedIn(p: NonNullable<RefreshResult['refreshToken']>): void {
    this.store.set({
      accessToken: p.accessToken,
      refreshToken: p.refreshToken,
      expiresAt: p.expiresAt,
      refreshExpiresAt: p.refreshExpiresAt,
      email: p.user.email,
    });
  }

  /** Drops the tokens (locally) and tells the application why. */
  signOutLocally(reason: SignOutReason): void {
    if (!this.store.get()) return;
    this.store.set(null);
    this.onSignedOut?.(reason);
  }

  /**
   * Replaces the access token `stale` that the server answered TOKEN_EXPIRED
   * to. Refreshes are serialised per session; inside the lock, tokens that
   * changed meanwhile (another request, or another tab, refreshed) are used
   * as they are. Resolves to true when a fresh access token is stored;
   * false when the client is (now) signed out. A network failure rejects
   * and keeps the tokens: it says nothing about the session.
   */
  async refresh(stale: string): Promise<boolean> {
    const sid = sessionOf(stale) ?? 'unknown';
    return withLock(`cloudkeys-refresh:${sid}`, async () => {
      const current = this.store.get();
      if (!current) return false;
      if (current.accessToken !== stale) return true; // refreshed while we waited
      this.refreshes++;
      const r = await post(this.endpoint, RefreshTokenDocument, { refreshToken: current.refreshToken });
      const p = r.data?.refreshToken;
      if (p) {
        const now = this.store.get();
        if (!now) return false; // signed out meanwhile: stay signed out
        if (now.refreshToken === current.refreshToken) this.signedIn(p); // else another tab's tokens arrived: keep them
        return true;
      }
      const e = r.errors?.[0];
      this.signOutLocally(e?.extensions?.reason ?? e?.extensions?.code ?? 'REFRESH_FAILED');
      return false;
    });
  }

  /**
   * Signs out: ends the session on the server (logout with the refresh
   * token), then drops the tokens whatever the server answered.
   */
  async signOut(): Promise<void> {
    const t = this.store.get();
    if (!t) return;
    try {
      let r = await post(this.endpoint, LogoutDocument, { refreshToken: t.refreshToken }, t.accessToken);
      if (reasonOf(r.errors) === 'TOKEN_EXPIRED' && (await this.refresh(t.accessToken))) {
        const now = this.store.get();
        if (now) r = await post(this.endpoint, LogoutDocument, { refreshToken: now.refreshToken }, now.accessToken);
      }
    } finally {
      this.signOutLocally('SIGNED_OUT');
    }
  }
}

/**
 * The reason to act on in a response's errors: the extensions.reason of an
 * UNAUTHENTICATED error (TOKEN_EXPIRED, SESSION_ENDED, …), or the code
 * ACCOUNT_DISABLED / ACCOUNT_PENDING; null when no error concerns the token.
 */
export function reasonOf(errors: readonly GraphQLError[] | undefined): string | null {
  for (const e of errors ?? []) {
    const code = e.extensions?.code;
    if (code === 'UNAUTHENTICATED') return e.extensions?.reason ?? 'UNAUTHENTICATED';
    if (code === 'ACCOUNT_DISABLED' || code === 'ACCOUNT_PENDING') return code;
  }
  return null;
}
