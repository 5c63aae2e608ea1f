/**
 * Reading and checking request bodies. Everything here is untrusted input: the size is bounded
 * before and while reading, the media type is checked, and JSON is parsed and validated field by
 * field before anything is counted.
 */
import type { IncomingMessage } from 'node:http';
import { AppError } from '../errors.js';
import { pageNameProblem, type PageName } from '../ids.js';
import type { Steps } from '../steps.js';
import type { Increment } from '../store/store.js';

/** Most views accepted in one `POST /api/views`: keeps one commit and one response bounded. */
export const MAX_BATCH_VIEWS = 10_000;
/**
 * A refused body is read and thrown away up to this many bytes before the error is answered:
 * closing a socket with unread data makes the kernel send a RST, and the client would see
 * "connection reset" instead of its 413. Past the bound the node answers and closes anyway (a
 * client sending that much is not waiting for an answer; the bound keeps it from holding the
 * node). Discarding costs no memory, only the time to read.
 */
export const MAX_DRAIN_BYTES = 16 * 1024 * 1024;

/**
 * Reads and discards what is left of the request body, at most `limit` bytes; resolves at its end,
 * when the client goes away, or once past the limit (then reading stops). Never rejects.
 */
export function drainRequest(req: IncomingMessage, limit = MAX_DRAIN_BYTES): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > limit) {
        req.pause();
        done();
      }
    };
    req.on('data', onData);
    req.on('end', done);
    req.on('error', done);
    req.on('close', done);
    req.resume();
  });
}

/** True when the request declares no body at all (the common, allocation-free increment path). */
export function hasNoBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return length === '0' || (length === undefined && req.headers['transfer-encoding'] === undefined);
}

function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function requireJson(req: IncomingMessage): void {
  if (!isJsonType(req.headers['content-type'])) {
    throw new AppError('unsupported_media_type', 'a request body must be JSON (Content-Type: application/json); send no body to count one view');
  }
}

/**
 * Reads the whole body, at most `maxBytes`. Past the limit the rest is drained and discarded (up
 * to MAX_DRAIN_BYTES, so the client can read the 413) and then the error is raised.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    await drainRequest(req);
    throw tooLarge(maxBytes);
  }
  return readAtMost(req, maxBytes);
}

function readAtMost(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        chunks.length = 0;
        void drainRequest(req, MAX_DRAIN_BYTES - size).then(() => reject(tooLarge(maxBytes)));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new AppError('bad_request', 'the request body could not be read', { cause: error }));
    };
    const onAborted = (): void => onError(new Error('request aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

function tooLarge(maxBytes: number): AppError {
  return new AppError('body_too_large', `the request body is larger than ${maxBytes} bytes (MAX_BODY_BYTES)`);
}

/** Reads a JSON body; `undefined` when the body is empty (with any content type, for sendBeacon). */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const bytes = await readJsonBytes(req, maxBytes);
  return bytes === undefined ? undefined : parseJson(bytes);
}

/** `readJsonBody` without the parse: the body's bytes, `undefined` when it is empty. */
export async function readJsonBytes(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  if (hasNoBody(req)) return undefined;
  const declared = req.headers['content-length'];
  if (declared !== undefined && declared !== '0') requireJson(req);
  const bytes = await readBody(req, maxBytes);
  if (bytes.length === 0) return undefined;
  requireJson(req);
  return bytes;
}

/** The body's JSON value, or AppError `bad_json` with the parser's reason. */
export function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (error) {
    throw new AppError('bad_json', `the request body is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function isTextPlain(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'text/plain';
}

/**
 * The body of an anonymous view, at most `maxBytes`: empty, or JSON as `application/json` or as
 * `text/plain` (what `navigator.sendBeacon` and a CORS-simple `fetch` send for a string, so no
 * preflight is needed). `undefined` when empty.
 */
export async function readAnonymousBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  if (!isTextPlain(req.headers['content-type'])) return readJsonBody(req, maxBytes);
  const text = (await readBody(req, maxBytes)).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new AppError('bad_json', `the request body is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A page name from untrusted input, or AppError `bad_page_name` saying what is wrong. */
export function checkPageName(value: unknown, where = 'page name'): PageName {
  const problem = pageNameProblem(value);
  if (problem !== undefined) throw new AppError('bad_page_name', where === 'page name' ? problem : `${where}: ${problem}`);
  return value as PageName;
}

/** `by` from untrusted input: a positive safe integer; absent means 1. */
export function checkBy(value: unknown, where = 'by'): number {
  if (value === undefined) return 1;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new AppError('bad_increment', `${where} must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, got ${describe(value)}`);
  }
  return value;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return typeof value;
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function rejectUnknownFields(value: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new AppError('bad_request', `${where} has an unknown field ${describe(key)} (allowed: ${allowed.join(', ')})`);
  }
}

/** The `by` of `POST /api/pages/:page/views` from its parsed body (undefined body: 1). */
export function incrementBy(body: unknown): number {
  if (body === undefined) return 1;
  if (!isPlainObject(body)) throw new AppError('bad_request', 'the body must be a JSON object like {"by": 2}, or empty to count one view');
  rejectUnknownFields(body, ['by'], 'the body');
  return checkBy(body.by);
}

/** Entries of a batch checked in one step (some 10–50 µs). */
const BATCH_ENTRIES_PER_STEP = 64;

/**
 * The increments of `POST /api/views`: all valid, or an error naming the first bad entry. In
 * steps (src/steps.ts) of BATCH_ENTRIES_PER_STEP entries, so a maximal batch is checked in slices.
 */
export function* batchIncrementSteps(body: unknown): Steps<Increment[]> {
  if (!isPlainObject(body) || !Array.isArray(body.views)) {
    throw new AppError('bad_request', 'the body must be a JSON object like {"views": [{"page": "home", "by": 1}]}');
  }
  rejectUnknownFields(body, ['views'], 'the body');
  const views: unknown[] = body.views;
  if (views.length === 0 || views.length > MAX_BATCH_VIEWS) {
    throw new AppError('bad_request', `views must hold from 1 to ${MAX_BATCH_VIEWS} entries, got ${views.length}`);
  }
  const increments: Increment[] = new Array<Increment>(views.length);
  for (let i = 0; i < views.length; i++) {
    const entry = views[i];
    if (!isPlainObject(entry)) throw new AppError('bad_request', `views[${i}] must be an object like {"page": "home", "by": 1}`);
    rejectUnknownFields(entry, ['page', 'by'], `views[${i}]`);
    increments[i] = { page: checkPageName(entry.page, `views[${i}].page`), by: checkBy(entry.by, `views[${i}].by`) };
    if ((i + 1) % BATCH_ENTRIES_PER_STEP === 0) yield;
  }
  return increments;
}
