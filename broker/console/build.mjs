/**
 * Builds the console page into broker/console/dist/ (served by broker/src/console/): the
 * TypeScript bundled and minified by esbuild, the stylesheet minified, the HTML copied.
 * `npm run build` runs it; the console tests call buildConsole() before they start a browser.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
export const OUT = here('./dist/');

/** Builds the page; returns the files' sizes in bytes, raw and gzipped. */
export async function buildConsole() {
  await mkdir(OUT, { recursive: true });
  const common = { bundle: true, minify: true, write: false, legalComments: 'none', logLevel: 'silent' };
  const js = await build({ ...common, entryPoints: [here('./src/main.ts')], format: 'esm', target: 'es2020' });
  const css = await build({ ...common, entryPoints: [here('./console.css')], target: 'chrome100' });
  const files = {
    'app.js': js.outputFiles[0].contents,
    'console.css': css.outputFiles[0].contents,
    'index.html': await readFile(here('./index.html')),
    'icon.svg': await readFile(here('./icon.svg')),
  };
  const sizes = {};
  for (const [name, bytes] of Object.entries(files)) {
    await writeFile(OUT + name, bytes);
    sizes[name] = { bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  }
  return sizes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = await buildConsole();
  for (const [name, s] of Object.entries(sizes)) console.log(`console/${name}: ${s.bytes} B, ${s.gzip} B gzipped`);
}
