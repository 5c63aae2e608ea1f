/**
 * One writer per backup path, checked (litestream.yml: two processes replicating to one path
 * interleave generations, and a restore then takes whichever wrote last). The database records
 * who writes its backup (table `backup_writer`), so the latest generation of a path says which
 * node, on which machine, for which file, wrote it. run.sh compares that with itself before it
 * starts replicating (`distributed-sqlite check-backup-writer`).
 *
 * The table is the deploy tooling's, not part of the counter schema (migrations/): the store
 * never reads it, the union does not copy it, and recordWriter creates it when missing, so a
 * node run without run.sh never has it.
 *
 * A writer is the same writer when its backup name, machine and database path all match; when
 * NODE_NAME is set explicitly off Fly.io, the name is the identity (run.sh's
 * BACKUP_WRITER_IDENTITY=node-name) and the machine is left out, since a container recreated
 * under the same name gets a new host name. A node that lost its data folder and restored its own
 * backup takes over; a second node with the same backup name (no NODE_NAME, so both use the host
 * name; or one NODE_NAME for two databases) is refused while the other writer is live
 * (check-writer-command.ts).
 */
import Database from 'better-sqlite3';
import { BUSY_TIMEOUT_MS, migrate } from '../store/migrate.js';

/** One row at most (id 1): the writer, and since when it writes there (ISO 8601). */
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS backup_writer (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  node_id TEXT NOT NULL,
  machine TEXT NOT NULL,
  database_path TEXT NOT NULL,
  since TEXT NOT NULL
)`;

export interface BackupWriter {
  /** The backup's name under REPLICA_URL (run.sh's NODE_ID). */
  readonly nodeId: string;
  /** FLY_MACHINE_ID, else the host name. */
  readonly machine: string;
  /** The absolute path of the database file. */
  readonly databasePath: string;
  /** Compare by backup name and path only (NODE_NAME set explicitly off Fly.io): not recorded. */
  readonly byNodeName?: boolean;
}

export interface RecordedWriter extends BackupWriter {
  readonly since: string;
}

/** The longest value a field may have (a host name, a path): longer comes from a bad file. */
const MAX_FIELD_CHARS = 4096;

/** Whether `recorded` is `me`, by `me`'s identity (see the top). */
export function sameWriter(recorded: BackupWriter, me: BackupWriter): boolean {
  return recorded.nodeId === me.nodeId && recorded.databasePath === me.databasePath && (me.byNodeName === true || recorded.machine === me.machine);
}

export function describeWriter(writer: BackupWriter): string {
  return `node ${JSON.stringify(writer.nodeId)} on machine ${JSON.stringify(writer.machine)} for ${writer.databasePath}`;
}

/** The writer from run.sh's environment (NODE_ID, BACKUP_MACHINE, BACKUP_WRITER_IDENTITY, DATABASE_PATH), if it set one. */
export function writerFromEnv(env: Readonly<Record<string, string | undefined>>): BackupWriter | undefined {
  const { NODE_ID: nodeId, BACKUP_MACHINE: machine, DATABASE_PATH: databasePath } = env;
  if (nodeId === undefined || nodeId === '' || machine === undefined || machine === '' || databasePath === undefined || databasePath === '') return undefined;
  return env.BACKUP_WRITER_IDENTITY === 'node-name' ? { nodeId, machine, databasePath, byNodeName: true } : { nodeId, machine, databasePath };
}

/**
 * Reads the writer recorded in a database file (a restored backup). Undefined when there is none
 * (a backup made by an older version, or by a node not run by run.sh). Opened read-only.
 */
export function readWriter(path: string): RecordedWriter | undefined {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'backup_writer'").get();
    if (table === undefined) return undefined;
    const row = db.prepare('SELECT node_id AS nodeId, machine, database_path AS databasePath, since FROM backup_writer WHERE id = 1').get() as
      | Record<string, unknown>
      | undefined;
    if (row === undefined) return undefined;
    const text = (value: unknown): string => (typeof value === 'string' ? value.slice(0, MAX_FIELD_CHARS) : String(value));
    return { nodeId: text(row.nodeId), machine: text(row.machine), databasePath: text(row.databasePath), since: text(row.since) };
  } finally {
    db.close();
  }
}

/**
 * At the node's start under Litestream: records `writer` in the database (created and migrated if
 * needed), unless it is recorded already. Uses its own connection, which never checkpoints
 * (Litestream must be the only one to). Close the returned handle only once the store has opened
 * the file: the last connection to close checkpoints the WAL, and this one must not be it.
 */
export function recordWriter(path: string, writer: BackupWriter, now: () => Date = () => new Date()): { close(): void } {
  const db = new Database(path);
  const handle = { close: () => db.close() };
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    migrate(db);
    db.exec(CREATE_TABLE);
    const current = db.prepare('SELECT node_id AS nodeId, machine, database_path AS databasePath FROM backup_writer WHERE id = 1').get() as BackupWriter | undefined;
    if (current !== undefined && sameWriter(current, writer)) return handle;
    db.prepare(
      'INSERT INTO backup_writer (id, node_id, machine, database_path, since) VALUES (1, ?, ?, ?, ?) ' +
        'ON CONFLICT (id) DO UPDATE SET node_id = excluded.node_id, machine = excluded.machine, database_path = excluded.database_path, since = excluded.since',
    ).run(writer.nodeId, writer.machine, writer.databasePath, now().toISOString());
    return handle;
  } catch (error) {
    db.close();
    throw error;
  }
}
