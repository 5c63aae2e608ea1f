/**
 * `distributed-sqlite recover`'s command line: bad input gets a clear message and touches
 * nothing (the real restores and merges are in test/deploy/recover.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { noLog } from '../../src/log.js';
import { EXIT_NO_BACKUPS, runRecoverCommand } from '../../src/recovery/recover-command.js';
import { parseBackupNames } from '../../src/recovery/backup-names.js';

async function run(args: readonly string[], env: Record<string, string | undefined>) {
  let stdout = '';
  let stderr = '';
  const code = await runRecoverCommand(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), log: noLog });
  return { code, stdout, stderr };
}

describe('recover command line', () => {
  it.each([
    [['--bogus'], 'unknown argument "--bogus"'],
    [['--output'], '--output needs a value'],
    [['--from', 'a', '--from=b'], '--from is given twice'],
    [['--timestamp', 'yesterday'], '--timestamp must be an RFC 3339 time'],
  ])('refuses %j with exit 2 and says why', async (args, message) => {
    const result = await run(args, { REPLICA_URL: 'file:///nowhere' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stdout).toBe('');
  });

  it('needs REPLICA_URL', async () => {
    const result = await run([], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('REPLICA_URL is not set');
  });

  it('asks for the names where it cannot list the backups, and says when there are none', async () => {
    const s3 = await run([], { REPLICA_URL: 's3://bucket/prefix' });
    expect(s3.code).toBe(1);
    expect(s3.stderr).toContain('name them with --from');
    const missing = await run([], { REPLICA_URL: 'file:///no/such/folder' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('does not exist');
    const empty = await run([], { REPLICA_URL: `file://${process.cwd()}/migrations` });
    expect(empty.code).toBe(EXIT_NO_BACKUPS);
    expect(empty.stderr).toContain('there are no backups under');
  });

  it('checks the names given', () => {
    expect(parseBackupNames('a, b,c')).toEqual(['a', 'b', 'c']);
    expect(() => parseBackupNames('a,../b')).toThrow(/is not a NODE_ID/);
    expect(() => parseBackupNames('a,a')).toThrow(/named twice/);
    expect(() => parseBackupNames(',')).toThrow(/at least one/);
  });
});
