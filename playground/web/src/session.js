// The playground's sign-in (SPEC §5): after a `login` or `refreshToken` run in
// the playground succeeds, later requests carry `Authorization: Bearer
// <accessToken>` from its answer, until the user signs out.
//
// Where the tokens live: in this module's memory, mirrored in sessionStorage
// so that reloading the page keeps the user signed in. Never in localStorage:
// sessionStorage belongs to this tab alone and is gone when the tab closes,
// while localStorage stays on disk in the browser profile for as long as
// nobody clears it and is shared by every tab of the origin — a 30-day
// refresh token left there outlives the development session that made it.
// Nothing is persisted by GraphiQL either: the headers editor is not saved
// (shouldPersistHeaders={false}) and the token never appears in it.
//
// Refreshing: an answer whose every error is UNAUTHENTICATED with
// extensions.reason TOKEN_EXPIRED (SPEC §9: the one reason refreshing helps)
// makes the fetcher refresh once with the stored refresh token and, when
// nothing of the operation ran, send it again. Refreshes are serialised (one
// at a time; a request that waited for one uses its result). Any other
// UNAUTHENTICATED reason on a signed-in request, or a failed refresh, signs
// the playground out and says why.
import { getOperationAST, parse } from 'graphql';

const STORAGE_KEY = 'cloudkeys:playground:session';

/** @typedef {{accessToken: string, refreshToken: string|null, email: string|null, expiresAt: string|null}} Session */

/** @type {Session|null} */
let session = load();
/** @type {string} why the playground is signed out, when it was signed out by the server */
let notice = '';
const listeners = new Set();

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    return s && typeof s.accessToken === 'string' ? s : null;
  } catch {
    return null;
  }
}

function save() {
  try {
    if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage may be unavailable (a privacy mode): memory alone still works.
  }
  snapshot = { session, notice };
  for (const l of listeners) l();
}

let snapshot = { session, notice };

/** For React's useSyncExternalStore. */
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
export function getSnapshot() {
  return snapshot;
}

function signIn(payload) {
  session = {
    accessToken: payload.accessToken,
    refreshToken: typeof payload.refreshToken === 'string' ? payload.refreshToken : null,
    email: typeof payload.user?.email === 'string' ? payload.user.email : null,
    expiresAt: typeof payload.expiresAt === 'string' ? payload.expiresAt : null,
  };
  notice = '';
  save();
}

/** Forgets the tokens; why (if given) is shown to the user. */
function forget(why = '') {
  session = null;
  notice = why;
  save();
}

const JSON_HEADERS = {
  'Content-Type': 'application/json',
  Accept: 'application/graphql-response+json, application/json',
};

async function post(endpoint, body, headers) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    credentials: 'omit', // cloudkeys authenticates by bearer token only
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    // Not a GraphQL response (a proxy error page, 413, 405…): show what came
    // back instead of a bare JSON parse error.
    return { errors: [{ message: `HTTP ${res.status} ${res.statusText}: ${text.slice(0, 500)}` }] };
  }
}

function reasonsOf(result) {
  return (result?.errors ?? [])
    .filter((e) => e?.extensions?.code === 'UNAUTHENTICATED')
    .map((e) => e.extensions.reason ?? '');
}

/**
 * The root fields of the operation run, as [field name, response key].
 * params.query is parsed here rather than trusting GraphiQL's documentAST,
 * which lags behind the editor by a debounce: a query typed and run at once
 * would be read as the previous one.
 */
function rootFields(params) {
  let doc;
  try {
    doc = parse(params.query);
  } catch {
    return { kind: null, fields: [] };
  }
  const op = getOperationAST(doc, params.operationName || undefined);
  if (!op) return { kind: null, fields: [] };
  const fields = [];
  for (const sel of op.selectionSet.selections) {
    if (sel.kind === 'Field') fields.push([sel.name.value, sel.alias?.value ?? sel.name.value]);
  }
  return { kind: op.operation, fields };
}

let refreshing = null; // the refresh in flight, shared by every request that needs it

/**
 * Refreshes the session whose access token is `stale`, at most one refresh at
 * a time. Resolves to true when a fresh access token is stored.
 */
function refresh(endpoint, stale) {
  if (session && session.accessToken !== stale) return Promise.resolve(true); // someone did already
  if (!session?.refreshToken) {
    forget('Your access token expired and this sign-in has no refresh token (select refreshToken in login). Sign in again.');
    return Promise.resolve(false);
  }
  refreshing ??= (async () => {
    const rt = session.refreshToken;
    const email = session.email;
    try {
      const result = await post(endpoint, {
        query: 'mutation PlaygroundRefresh($rt: String!) { refreshToken(refreshToken: $rt) { accessToken refreshToken expiresAt user { email } } }',
        variables: { rt },
        operationName: 'PlaygroundRefresh',
      }, JSON_HEADERS);
      const p = result?.data?.refreshToken;
      if (p?.accessToken) {
        signIn({ ...p, user: { email: p.user?.email ?? email } });
        return true;
      }
      const e = result?.errors?.[0];
      forget(`Refreshing failed (${e?.extensions?.reason ?? e?.extensions?.code ?? 'no answer'}): sign in again.`);
      return false;
    } catch (err) {
      return false; // the network: keep the session, the next request tries again
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Learns the email of a sign-in whose answer did not select user { email }. */
async function learnEmail(endpoint) {
  const token = session?.accessToken;
  if (!token) return;
  try {
    const r = await post(endpoint, { query: '{ me { email } }' }, { ...JSON_HEADERS, Authorization: `Bearer ${token}` });
    const email = r?.data?.me?.email;
    if (email && session?.accessToken === token) {
      session = { ...session, email };
      save();
    }
  } catch {
    // Shown as "signed in" without the email.
  }
}

/** Whether the user's own headers set Authorization (they win over the session). */
function hasOwnAuthorization(headers) {
  return Object.keys(headers ?? {}).some((k) => k.toLowerCase() === 'authorization');
}

/**
 * Returns GraphiQL's fetcher for endpoint: a JSON POST that prefers
 * application/graphql-response+json, with the session's access token unless
 * the headers editor sets Authorization itself; it watches the answers for
 * sign-in, refresh and sign-out.
 */
export function createFetcher(endpoint) {
  const send = (params, userHeaders, token) => {
    const headers = new Headers(JSON_HEADERS);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    for (const [name, value] of Object.entries(userHeaders ?? {})) headers.set(name, String(value));
    return post(endpoint, params, headers);
  };

  return async function fetcher(params, opts) {
    const own = hasOwnAuthorization(opts?.headers);
    const token = own ? null : session?.accessToken ?? null;
    let result = await send(params, opts?.headers, token);
    const { kind, fields } = rootFields(params);

    if (token) {
      const reasons = reasonsOf(result);
      const everyErrorExpired = reasons.length > 0 && reasons.length === (result.errors?.length ?? 0) &&
        reasons.every((r) => r === 'TOKEN_EXPIRED');
      if (everyErrorExpired) {
        const ok = await refresh(endpoint, token);
        // Send it again only if nothing of it ran: a query, or a mutation
        // whose every root field is null (each was refused before running).
        const nothingRan = kind !== 'mutation' || fields.every(([, key]) => result.data?.[key] == null);
        if (ok && nothingRan && session) result = await send(params, opts?.headers, session.accessToken);
      } else if (reasons.length > 0 && session?.accessToken === token) {
        // TOKEN_INVALID, SESSION_ENDED, …: refreshing cannot help.
        forget(`The server refused the access token (${reasons[0] || 'UNAUTHENTICATED'}): sign in again.`);
      }
    }

    // Sign-in and sign-out come from the answer of the operation run.
    for (const [name, key] of fields) {
      const value = result?.data?.[key];
      if ((name === 'login' || name === 'refreshToken') && typeof value?.accessToken === 'string') {
        const email = value.user?.email ?? (name === 'refreshToken' ? session?.email : null);
        signIn({ ...value, user: { email } });
        if (!session.email) learnEmail(endpoint);
      } else if (name === 'logout' && value === true && !own) {
        forget();
      }
    }
    return result;
  };
}

/**
 * Signs out: ends the session on the server (logout with the refresh token;
 * refreshed first if the access token has expired) and forgets the tokens,
 * whatever the server answered.
 */
export async function signOut(endpoint) {
  if (!session) return;
  const query = 'mutation PlaygroundSignOut($rt: String) { logout(refreshToken: $rt) }';
  const once = () => post(endpoint, { query, variables: { rt: session.refreshToken }, operationName: 'PlaygroundSignOut' },
    { ...JSON_HEADERS, Authorization: `Bearer ${session.accessToken}` });
  try {
    const token = session.accessToken;
    const r = await once();
    if (reasonsOf(r).includes('TOKEN_EXPIRED') && (await refresh(endpoint, token)) && session) await once();
  } catch {
    // Forget the tokens all the same.
  }
  forget();
}
