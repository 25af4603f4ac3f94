// Builds the GraphiQL assets embedded in the cloudkeys binary:
//
//   dist/graphiql.js        GraphiQL + React + Monaco (IIFE, minified)
//   dist/graphiql.css       GraphiQL + Monaco styles, fonts inlined as data: URLs
//   dist/editor.worker.js   Monaco web workers, loaded from the same origin
//   dist/json.worker.js
//   dist/graphql.worker.js
//
// Run with `npm run build` from playground/web. See README.md.
import { build } from 'esbuild';
import { readdir, rm, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, '../dist');

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2022', 'chrome111', 'firefox111', 'safari16.4'],
  platform: 'browser',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'eof',
  logLevel: 'warning',
  absWorkingDir: here,
};

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

await build({
  ...common,
  entryPoints: { graphiql: 'src/main.jsx' },
  outdir,
  jsx: 'automatic',
  // Fonts referenced from CSS become data: URLs (CSP: font-src data:), so the
  // stylesheet is one file with no relative references to keep in sync.
  loader: { '.ttf': 'dataurl', '.woff': 'dataurl', '.woff2': 'dataurl' },
});

await build({
  ...common,
  entryPoints: {
    'editor.worker': 'monaco-editor/esm/vs/editor/editor.worker.js',
    'json.worker': 'monaco-editor/esm/vs/language/json/json.worker.js',
    'graphql.worker': 'monaco-graphql/esm/graphql.worker.js',
  },
  outdir,
});

for (const name of (await readdir(outdir)).sort()) {
  const { size } = await stat(path.join(outdir, name));
  console.log(`${name.padEnd(20)} ${(size / 1024).toFixed(0).padStart(6)} KiB`);
}
