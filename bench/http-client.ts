/**
 * A lean keep-alive HTTP client over node:http, one agent per target, so the generator's own
 * cost per request stays small and its connections are reused like a real client's.
 */
import { Agent, request } from 'node:http';

/** A request that takes longer than this is abandoned and counted as an error. */
export const REQUEST_TIMEOUT_MS = 30_000;

export interface Response {
  readonly status: number;
  readonly body: string;
}

export class HttpTarget {
  readonly agent: Agent;
  readonly host: string;
  readonly port: number;

  /** `Authorization` sent with every POST: the benchmark counts as a write-token holder. */
  private readonly authorization: string | undefined;
  /** `Authorization` sent with every GET: an admin token, for the private views (`/metrics`). */
  private readonly adminAuthorization: string | undefined;

  constructor(url: string, options: { maxSockets?: number; writeToken?: string; adminToken?: string } = {}) {
    const maxSockets = options.maxSockets ?? 64;
    this.authorization = options.writeToken === undefined ? undefined : `Bearer ${options.writeToken}`;
    this.adminAuthorization = options.adminToken === undefined ? undefined : `Bearer ${options.adminToken}`;
    const parsed = new URL(url);
    this.host = parsed.hostname;
    this.port = Number(parsed.port);
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  send(method: string, path: string, body?: string, extraHeaders: Readonly<Record<string, string>> = {}): Promise<Response> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { ...extraHeaders };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      } else if (method === 'POST') headers['content-length'] = 0;
      if (method === 'POST' && this.authorization !== undefined) headers.authorization = this.authorization;
      if (method === 'GET' && this.adminAuthorization !== undefined) headers.authorization = this.adminAuthorization;
      const req = request({ host: this.host, port: this.port, method, path, headers, agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async json<T>(path: string): Promise<T> {
    const res = await this.send('GET', path);
    if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
    return JSON.parse(res.body) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined> | T | undefined, intervalMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? `: ${String(lastError)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
