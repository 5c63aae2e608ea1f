// Builds dist/ (scripts/build.mjs) when it is missing or older than any source file, so `npm start`
// and `npm test` work on a fresh clone without a separate build step, and skip tsc when nothing
// changed. Sources: the TypeScript of src/ and bench/, the browser's .js under src/, the tsconfigs.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = join(root, 'dist', 'src', 'main.js');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts') || entry.name.endsWith('.js')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const sources = Math.max(
  ...['src', 'bench'].filter((d) => existsSync(join(root, d))).map((d) => newestMtime(join(root, d))),
  ...['tsconfig.json', 'tsconfig.build.json', 'tsconfig.browser.json'].map((f) => statSync(join(root, f)).mtimeMs),
);
if (!existsSync(stamp) || statSync(stamp).mtimeMs < sources) {
  process.stderr.write('distributed-sqlite: compiling TypeScript (npm run build)…\n');
  execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });
}
