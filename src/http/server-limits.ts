/**
 * The HTTP server's limits against slow and greedy clients, chosen on purpose (issue 14: 200 slow
 * request bodies were held for 75 s and more under Node's 300 s request timeout, and 96 KiB of
 * headers were taken on every route):
 *
 * - HEADERS_TIMEOUT_MS: a client has 10 s to send its request line and headers.
 * - REQUEST_TIMEOUT_MS: 20 s for the whole request, body included (a 1 MiB batch at 64 KiB/s
 *   fits); then Node answers 408 and closes. Checked every CONNECTIONS_CHECK_INTERVAL_MS.
 * - KEEP_ALIVE_TIMEOUT_MS: an idle keep-alive connection is closed after 5 s.
 * - Headers: the server parses up to LIVE_MAX_HEADER_BYTES (the live feed's query names up to 100
 *   pages of 256 bytes); every other route, and the peer upgrade, takes MAX_HEADER_BYTES (431).
 * - Connections: the public server takes MAX_REQUEST_CONNECTIONS beyond what the live feed may
 *   hold (LIVE_MAX_CLIENTS), so live pages at their cap still leave room for counting; slow ones
 *   free theirs within the timeouts above. The cluster port takes MAX_REQUEST_CONNECTIONS.
 */
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import { AppError, errorBody } from '../errors.js';
import { LIVE_MAX_HEADER_BYTES } from './live-query.js';

export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 20_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/** Request line plus headers on every route but the live feed (Node's own default is 16 KiB). */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Connections for requests (and peers), on top of the live feed's client cap. */
export const MAX_REQUEST_CONNECTIONS = 2_048;

/**
 * Options for `http.createServer` with the limits above; `maxHeaderSize` is what the parser takes
 * (the public server's live feed needs LIVE_MAX_HEADER_BYTES, the cluster port MAX_HEADER_BYTES).
 */
export function serverOptions(maxHeaderSize: number = LIVE_MAX_HEADER_BYTES): ServerOptions {
  return {
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
    maxHeaderSize,
  };
}

/** The status line for a `clientError` from Node's HTTP parser. */
export function clientErrorStatus(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  return '400 Bad Request';
}

/** Bytes of the request line and headers as sent (near enough: names, values, separators). */
export function headerBytes(req: IncomingMessage): number {
  let bytes = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i++) bytes += (raw[i] as string).length + 2;
  return bytes;
}

/** The error for a request over `limit`, or undefined. */
export function headersProblem(req: IncomingMessage, limit = MAX_HEADER_BYTES): AppError | undefined {
  if (headerBytes(req) <= limit) return undefined;
  return new AppError('headers_too_large', `the request line and headers are larger than ${limit} bytes`);
}

/** Answers 431 with the usual JSON error and closes the connection. */
export function refuseHeaders(res: ServerResponse, error: AppError): void {
  const body = JSON.stringify(errorBody(error));
  res.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}
