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
  entryPoints: { app: path.join(root, 'web/src/main.js') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: path.join(tmp, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const files = {};
for (const f of Object.keys(result.metafile.outputs)) {
  const name = path.basename(f);
  if (name.endsWith('.js')) files.js = name;
  if (name.endsWith('.css')) files.css = name;
}
const icon = readFileSync(path.join(root, 'web/favicon.svg'));
files.favicon = `favicon-${createHash('sha256').update(icon).digest('hex').slice(0, 8).toUpperCase()}.svg`;
writeFileSync(path.join(tmp, 'assets', files.favicon), icon);

let page = readFileSync(path.join(root, 'web/index.html'), 'utf8');
page = page.replace(/\{\{(js|css|favicon)\}\}/g, (_, k) => files[k]);
writeFileSync(path.join(tmp, 'index.html'), page);

const sizes = {};
for (const name of readdirSync(path.join(tmp, 'assets'))) {
  const buf = readFileSync(path.join(tmp, 'assets', name));
  const gz = gzipSync(buf, { level: 9 });
  writeFileSync(path.join(tmp, 'assets', `${name}.gz`), gz);
  sizes[name] = { bytes: buf.length, gzip: gz.length };
}

// Replace the previous build in one step (a running server never sees half of one).
rmSync(`${out}.old`, { recursive: true, force: true });
try { renameSync(out, `${out}.old`); } catch { /* first build */ }
renameSync(tmp, out);
rmSync(`${out}.old`, { recursive: true, force: true });

const first = sizes[files.js].gzip + sizes[files.css].gzip;
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ out, files, sizes, firstPageGzip: first })}\n`);
} else {
  console.log(`web: ${out} — ${files.js} ${(sizes[files.js].gzip / 1024).toFixed(1)} KiB gzipped, ` +
    `${files.css} ${(sizes[files.css].gzip / 1024).toFixed(1)} KiB gzipped`);
}
