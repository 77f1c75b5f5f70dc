// Build the Vue Flow bundle into static/designer/dist (committed, so users never need Node).
import { build } from 'esbuild';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'static', 'designer', 'dist');

await build({
  entryPoints: [join(here, 'entry.js')], outfile: join(out, 'index.js'), bundle: true,
  format: 'esm', minify: true, external: ['vue'], legalComments: 'none', logLevel: 'info',
});
await build({
  entryPoints: [join(here, 'entry.css')], outfile: join(out, 'vueflow.css'), bundle: true,
  minify: true, logLevel: 'info',
});

// One notice file with the license text of every bundled package.
// @vue-flow/core's own ESM build inlines d3 and @vueuse, so their notices are included too.
const packages = ['@vue-flow/core', '@vue-flow/background', '@vue-flow/controls',
  '@vue-flow/minimap', '@vueuse/core', '@vueuse/shared', 'd3-color', 'd3-dispatch', 'd3-drag',
  'd3-ease', 'd3-interpolate', 'd3-selection', 'd3-timer', 'd3-transition', 'd3-zoom']
  .filter((name) => existsSync(join(here, 'node_modules', name)));
const parts = ['Third-party software bundled in index.js and vueflow.css', ''];
for (const name of packages) {
  const dir = join(here, 'node_modules', name);
  const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = ['LICENSE', 'LICENSE.md', 'license'].map((f) => join(dir, f)).find(existsSync);
  const text = file ? readFileSync(file, 'utf8') : `License: ${meta.license}`;
  parts.push(`== ${name} ${meta.version} (${meta.license}) ==`, text.trim(), '');
}
writeFileSync(join(out, 'THIRD_PARTY_LICENSES'), parts.join('\n'));
