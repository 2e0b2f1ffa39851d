// Builds the dashboard (web/) with esbuild into a directory campaignd serves
// as WEB_DIR: index.html (no-cache) and assets/ with content-hashed names
// (cached for a year), each also gzipped (assets/<name>.gz) for clients that
// accept it. Prints the sizes; --json writes them as JSON to stdout.
//   node scripts/build-web.mjs [outdir]      (default build/web)
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, rmSync, readdirSync, renameSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] || path.join(root, 'build/web'));
const tmp = `${out}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(path.join(tmp, 'assets'), { recursive: true });

const result = await build({
  absWorkingDir: root, // metafile paths are relative to it
  entryPoints: { app: 'web/src/main.js' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: path.join(tmp, 'assets'),
  splitting: true, // pages are dynamic imports: one chunk each, loaded when opened
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

// The entry, its stylesheet, and the chunks it imports statically: what the
// first page (sign-in) loads before it can paint.
const outputs = result.metafile.outputs;
const files = {};
const entryPath = Object.keys(outputs).find((f) => outputs[f].entryPoint === 'web/src/main.js');
files.js = path.basename(entryPath);
files.css = path.basename(outputs[entryPath].cssBundle);
const firstPage = new Set([entryPath, outputs[entryPath].cssBundle]);
const walk = (f) => {
  for (const imp of outputs[f].imports || [])
    if (imp.kind === 'import-statement' && !firstPage.has(imp.path)) { firstPage.add(imp.path); walk(imp.path); }
};
walk(entryPath);
const rel = (f) => path.basename(f);
const icon = readFileSync(path.join(root, 'web/favicon.svg'));
files.favicon = `favicon-${createHash('sha256').update(icon).digest('hex').slice(0, 8).toUpperCase()}.svg`;
writeFileSync(path.join(tmp, 'assets', files.favicon), icon);

let page = readFileSync(path.join(root, 'web/index.html'), 'utf8');
files.preload = [...firstPage].filter((f) => f !== entryPath && f.endsWith('.js'))
  .map((f) => `<link rel="modulepreload" href="/assets/${path.basename(f)}">`).join('\n');
page = page.replace(/\{\{(js|css|favicon|preload)\}\}/g, (_, k) => files[k]);
writeFileSync(path.join(tmp, 'index.html'), page);

const sizes = {};
for (const name of readdirSync(path.join(tmp, 'assets'))) {
  const buf = readFileSync(path.join(tmp, 'assets', name));
  const gz = gzipSync(buf, { level: 9 });
  writeFileSync(path.join(tmp, 'assets', `${name}.gz`), gz);
  sizes[name] = { bytes: buf.length, gzip: gz.length };
}

const first = [...firstPage].map(rel);
const firstGzip = first.reduce((n, f) => n + sizes[f].gzip, 0);
const all = Object.keys(sizes).filter((f) => /\.(js|css)$/.test(f));
const allGzip = all.reduce((n, f) => n + sizes[f].gzip, 0);
// Not under assets/, so never served: read by the e2e test's bundle check.
writeFileSync(path.join(tmp, 'build-info.json'), `${JSON.stringify({ files, firstPage: first, sizes }, null, 1)}\n`);

// Replace the previous build in one step (a running server never sees half of one).
rmSync(`${out}.old`, { recursive: true, force: true });
try { renameSync(out, `${out}.old`); } catch { /* first build */ }
renameSync(tmp, out);
rmSync(`${out}.old`, { recursive: true, force: true });

console.log(`web: ${out} — first page ${first.join(' + ')}: ${(firstGzip / 1024).toFixed(1)} KiB gzipped; ` +
  `all ${all.length} files ${(allGzip / 1024).toFixed(1)} KiB gzipped`);
