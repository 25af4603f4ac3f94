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
import { createRoot } from 'react-dom/client';
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

// The fetcher speaks GraphQL over HTTP: a JSON POST that prefers
// application/graphql-response+json. Headers typed into GraphiQL's headers
// editor (e.g. Authorization: Bearer …) are added last so they can override
// the defaults. Cookies are never sent: cloudkeys authenticates by bearer token
// only.
async function fetcher(params, opts) {
  const headers = new Headers({
    'Content-Type': 'application/json',
    Accept: 'application/graphql-response+json, application/json',
  });
  for (const [name, value] of Object.entries(opts?.headers ?? {})) {
    headers.set(name, String(value));
  }
  const res = await fetch(endpoint, {
    method: 'POST',
    headers,
    body: JSON.stringify(params),
    credentials: 'omit',
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    // Not a GraphQL response (a proxy error page, 413, 405…): show what came
    // back instead of a bare JSON parse error.
    return {
      errors: [{ message: `HTTP ${res.status} ${res.statusText}: ${text.slice(0, 500)}` }],
    };
  }
}

// JSONC: the headers editor accepts comments, so the hint costs nothing on
// the wire until the user uncomments it.
const defaultHeaders = `{
  // Paste the token returned by a login mutation:
  // "Authorization": "Bearer <token>"
}
`;

createRoot(root).render(
  <GraphiQL
    fetcher={fetcher}
    isHeadersEditorEnabled
    shouldPersistHeaders={false}
    defaultHeaders={defaultHeaders}
    defaultEditorToolsVisibility="headers"
  />,
);
