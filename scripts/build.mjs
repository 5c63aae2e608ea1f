// The build (`npm run build`, and ensure-built.mjs when dist/ is stale): tsc compiles the node's
// TypeScript into dist/ (tsconfig.build.json); the browser's code (every .js file under src/) is
// type-checked with its own project (tsconfig.browser.json: DOM, no Node) and copied into dist/
// byte for byte, beside the module that serves it.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function browserFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return browserFiles(path);
    return entry.name.endsWith('.js') ? [path] : [];
  });
}

function tscProject(config) {
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, config)], { stdio: 'inherit' });
  } catch {
    // tsc has printed the errors.
    process.exit(1);
  }
}

// dist/src/main.js is written last: ensure-built.mjs takes its age as the age of the whole build.
tscProject('tsconfig.browser.json');
for (const file of browserFiles(join(root, 'src'))) {
  const target = join(root, 'dist', relative(root, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
tscProject('tsconfig.build.json');
