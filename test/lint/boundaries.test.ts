/**
 * The layering lint rules (eslint.config.js) fail on a violation: each probe is linted as if it
 * were a file in the folder named, and must be refused by the rule named.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: new URL('../..', import.meta.url).pathname });

async function ruleIds(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((message) => message.ruleId ?? message.message);
}

describe('the layering lint rules', () => {
  it.each([
    ["import { setTimeout as later } from 'node:timers';\nexport const x = later;\n"],
    ["import p from 'node:process';\nexport const x = p;\n"],
    ["import { tmpdir } from 'node:os';\nexport const x = tmpdir;\n"],
    ["import { readFileSync } from 'fs';\nexport const x = readFileSync;\n"],
    ["import { listBackups } from '../recovery/backup-names.js';\nexport const x = listBackups;\n"],
    ["import { openSqliteStore } from '../store/sqlite-store.js';\nexport const x = openSqliteStore;\n"],
  ])('keep src/crdt/ free of I/O: %s', async (code) => {
    expect(await ruleIds('src/crdt/probe.ts', code)).toContain('no-restricted-imports');
  });

  it('refuses a dynamic import in the pure core', async () => {
    expect(await ruleIds('src/protocol/probe.ts', "export const x = () => import('node:fs');\n")).toContain('no-restricted-syntax');
  });

  it('refuses process and timers as globals in the pure core', async () => {
    expect(await ruleIds('src/protocol/probe.ts', 'export const x = process.pid;\n')).toContain('no-restricted-globals');
    expect(await ruleIds('src/crdt/probe.ts', 'export const x = setTimeout;\n')).toContain('no-restricted-globals');
  });

  it('keeps http/ apart from replication/ and twins apart from the real adapters', async () => {
    expect(await ruleIds('src/http/probe.ts', "import { Replicator } from '../replication/replicator.js';\nexport const x = Replicator;\n")).toContain(
      'no-restricted-imports',
    );
    expect(await ruleIds('src/store/memory-store.ts', "import { SqliteStore } from './sqlite-store.js';\nexport const x = SqliteStore;\n")).toContain(
      'no-restricted-imports',
    );
    // The twin's series part, and the SQLite store's series file (once imported by both twin files).
    expect(await ruleIds('src/store/memory-series.ts', "import { SeriesTables } from './sqlite-series.js';\nexport const x = SeriesTables;\n")).toContain(
      'no-restricted-imports',
    );
    expect(await ruleIds('src/store/memory-store.ts', "import { SeriesTables } from './sqlite-series.js';\nexport const x = SeriesTables;\n")).toContain(
      'no-restricted-imports',
    );
  });

  it('lets the pure core import what it may (node:crypto, lib0, its own modules)', async () => {
    const code = "import { hash } from 'node:crypto';\nimport * as encoding from 'lib0/encoding';\nimport { compareUtf8 } from '../utf8.js';\nexport const x = [hash, encoding, compareUtf8];\n";
    expect(await ruleIds('src/crdt/probe.ts', code)).toEqual([]);
  });
});
