import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PROCESS_ENV = { object: 'process', property: 'env', message: 'Read configuration in src/config.ts only.' };

/** `no-restricted-imports` patterns matching a relative import of a module or folder by name. */
const local = (names, message) => ({ regex: `(^|/)(${names.join('|')})(/|\\.js$|$)`, message });
const packages = (names, message) => ({ regex: `^(node:)?(${names.join('|')})(/.*)?$`, message });

// The layering of docs/design.md, enforced: imports point down, the pure core does no I/O, twins
// stand alone, and the narrow types between layers stay narrow.
const PURE_CORE = 'src/crdt/ and src/protocol/ are pure: no I/O, no process, no timers (docs/design.md, "Layering").';
const TWIN = 'An in-memory twin must not lean on the real adapter it stands in for (docs/design.md, "Layering").';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'bench/results/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', PROCESS_ENV],
    },
  },
  {
    // The browser's code (tsconfig.browser.json checks its types): classic scripts, browser globals only.
    files: ['src/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly', document: 'readonly', location: 'readonly', WebSocket: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        navigator: 'readonly', fetch: 'readonly', URL: 'readonly', URLSearchParams: 'readonly', HTMLScriptElement: 'readonly', Intl: 'readonly',
        uPlot: 'readonly', ResizeObserver: 'readonly', getComputedStyle: 'readonly', matchMedia: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', history: 'readonly', HTMLElement: 'readonly',
      },
    },
  },
  {
    files: ['src/main.ts', 'src/config.ts', 'test/**', 'bench/**', 'scripts/**', 'vitest.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['src/crdt/**', 'src/protocol/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            local(['store', 'transport', 'replication', 'recovery', 'http', 'discovery', 'node', 'metrics', 'log', 'config', 'settings', 'timers'], PURE_CORE),
            packages(
              ['fs', 'net', 'http', 'https', 'http2', 'tls', 'dgram', 'dns', 'child_process', 'worker_threads', 'cluster', 'process', 'timers', 'os', 'readline', 'vm'],
              PURE_CORE,
            ),
            packages(['ws', 'better-sqlite3', 'koa', '@koa/router', 'pino', 'prom-client'], PURE_CORE),
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['process', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask'].map((name) => ({ name, message: PURE_CORE })),
      ],
      // A dynamic import() would slip past no-restricted-imports.
      'no-restricted-syntax': ['error', { selector: 'ImportExpression', message: PURE_CORE }],
      'no-restricted-properties': [
        'error',
        PROCESS_ENV,
        { object: 'globalThis', property: 'process', message: PURE_CORE },
        { object: 'global', property: 'process', message: PURE_CORE },
      ],
    },
  },
  {
    files: ['src/http/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [local(['replication'], 'src/http/ sees replication only through the status type it is handed (src/node.ts wires them).')] },
      ],
    },
  },
  {
    files: [
      'src/store/memory-store.ts',
      'src/store/memory-series.ts',
      'src/store/memory-disk.ts',
      'src/transport/simulated-network.ts',
      'src/transport/simulated-transport.ts',
      'src/discovery/memory-discovery.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            local(['sqlite-store', 'sqlite-connection', 'sqlite-statements', 'sqlite-series', 'websocket-transport', 'websocket-connection', 'dns-discovery'], TWIN),
            packages(['better-sqlite3', 'ws', 'dns'], TWIN),
          ],
        },
      ],
    },
  },
  {
    files: ['src/metrics.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [local(['store'], 'src/metrics.ts takes what it watches through its own narrow interface, not the store module.')] },
      ],
    },
  },
);
