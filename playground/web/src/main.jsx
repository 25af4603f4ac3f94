// Entry point of the cloudkeys playground bundle (dist/graphiql.js).
//
// The page (playground/page.html, rendered by the Go handler) carries no
// inline script, so everything this script needs arrives as data-* attributes
// on the #graphiql element:
//
//   data-endpoint        GraphQL endpoint, a same-origin path ("/graphql")
//   data-editor-worker   URL of dist/editor.worker.js   (Monaco core worker)
//   data-json-worker     URL of dist/json.worker.js     (variables/headers editors)
//   data-graphql-worker  URL of dist/graphql.worker.js  (operation editor)
//
// The worker URLs come from the Go handler so that they carry the same
// content-hash query string as graphiql.js and graphiql.css.
import { GraphiQL } from 'graphiql';
import { useState, useSyncExternalStore } from 'react';
import { createRoot } from 'react-dom/client';
import { createFetcher, getSnapshot, signOut, subscribe } from './session.js';
import 'graphiql/style.css';
import './page.css';

const root = document.getElementById('graphiql');
const { endpoint, editorWorker, jsonWorker, graphqlWorker } = root.dataset;

// Monaco asks for a worker per language; it must be a same-origin script
// (CSP: script-src 'self' also governs workers), never a blob: or CDN URL.
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    switch (label) {
      case 'json':
        return new Worker(jsonWorker, { name: 'json' });
      case 'graphql':
        return new Worker(graphqlWorker, { name: 'graphql' });
      default:
        return new Worker(editorWorker, { name: 'editor' });
    }
  },
};

// The fetcher (session.js) speaks GraphQL over HTTP: a JSON POST that prefers
// application/graphql-response+json. After a login or refreshToken run here,
// it adds the answer's access token as Authorization: Bearer; headers typed
// into GraphiQL's headers editor are added last, so an Authorization there
// wins. Cookies are never sent: cloudkeys authenticates by bearer token only.
const fetcher = createFetcher(endpoint);

// "Signed in as …" and "Sign out", in GraphiQL's logo slot (top right).
function SessionStatus() {
  const { session, notice } = useSyncExternalStore(subscribe, getSnapshot);
  const [busy, setBusy] = useState(false);
  if (!session) {
    return (
      <span className="ck-session" data-state="signed-out" title={notice || undefined}>
        {notice ? <span className="ck-session-notice">{notice}</span> : 'not signed in: run a login mutation'}
      </span>
    );
  }
  return (
    <span className="ck-session" data-state="signed-in">
      <span className="ck-session-who">signed in as <strong>{session.email ?? 'an unknown user'}</strong></span>
      <button
        type="button"
        className="ck-session-signout"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await signOut(endpoint);
          } finally {
            setBusy(false);
          }
        }}
      >
        sign out
      </button>
    </span>
  );
}

// GraphiQL's storage: localStorage, as by default, except that the query
// history and the favourites (graphiql:queries, graphiql:favorites) are saved
// without their headers. GraphiQL's history keeps the headers of every run
// even with shouldPersistHeaders={false}, so an Authorization typed into the
// Headers tab would otherwise stay on disk.
const HISTORY_KEYS = new Set(['graphiql:queries', 'graphiql:favorites']);
function withoutHeaders(value) {
  try {
    const v = JSON.parse(value);
    if (Array.isArray(v?.queries)) {
      v.queries = v.queries.map(({ headers, ...rest }) => rest);
      return JSON.stringify(v);
    }
  } catch {
    // Not what GraphiQL writes: drop it rather than keep headers.
    return JSON.stringify({ queries: [] });
  }
  return value;
}
const storage = {
  getItem: (key) => localStorage.getItem(key),
  setItem: (key, value) => localStorage.setItem(key, HISTORY_KEYS.has(key) ? withoutHeaders(value) : value),
  removeItem: (key) => localStorage.removeItem(key),
  get length() {
    return Object.keys(localStorage).filter((k) => k.startsWith('graphiql:')).length;
  },
  clear() {
    for (const k of Object.keys(localStorage)) if (k.startsWith('graphiql:')) localStorage.removeItem(k);
  },
};

// JSONC: the headers editor accepts comments, so the hint costs nothing on
// the wire until the user uncomments it.
const defaultHeaders = `{
  // After a login (or refreshToken) mutation run here, requests carry its
  // access token by themselves. An Authorization header set here wins:
  // "Authorization": "Bearer <token>"
}
`;

createRoot(root).render(
  <GraphiQL
    fetcher={fetcher}
    storage={storage}
    isHeadersEditorEnabled
    shouldPersistHeaders={false}
    defaultHeaders={defaultHeaders}
    defaultEditorToolsVisibility="headers"
  >
    <GraphiQL.Logo>
      <SessionStatus />
    </GraphiQL.Logo>
  </GraphiQL>,
);
