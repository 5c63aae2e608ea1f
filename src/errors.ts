/**
 * The one error catalogue. Every error the service reports carries a stable `code`, an HTTP
 * `status`, and whether its message may be shown to the caller (`expose`): 4xx messages say what
 * to fix; 5xx messages are logged, never shown. The original error stays in `cause`. An entry
 * with an `exit` code means a start that cannot go on: `main.ts` prints its message alone and
 * exits with that code. Any other error that stops a start exits with `EXIT_FAILURE` and its stack.
 *
 * Subclasses only add structured detail to an entry (`ConfigError` lists every problem); they
 * never add a code outside this table.
 */

/** Exit code for a failure at start or while running. */
export const EXIT_FAILURE = 1;
/** Exit code for bad configuration: one message naming every problem on stderr. */
export const EXIT_BAD_CONFIG = 2;

export const ERRORS = {
  bad_page_name: { status: 400, expose: true },
  bad_increment: { status: 400, expose: true },
  bad_request: { status: 400, expose: true },
  bad_json: { status: 400, expose: true },
  /** A `from`/`to` that is not a time (series routes). */
  bad_time: { status: 400, expose: true },
  /** `from` not before `to`. */
  bad_range: { status: 400, expose: true },
  /** A series range of more than MAX_SERIES_POINTS points. */
  too_many_points: { status: 400, expose: true },
  /** A `step` that is not hour or day (series routes). */
  bad_step: { status: 400, expose: true },
  /** A top-pages range longer than MAX_TOP_RANGE_DAYS. */
  range_too_long: { status: 400, expose: true },
  body_too_large: { status: 413, expose: true },
  /** Request line and headers over the route's limit (src/http/server-limits.ts). */
  headers_too_large: { status: 431, expose: true },
  unsupported_media_type: { status: 415, expose: true },
  counter_overflow: { status: 400, expose: true },
  not_found: { status: 404, expose: true },
  method_not_allowed: { status: 405, expose: true },
  forbidden_origin: { status: 403, expose: true },
  /** `by`, a batch, or another token-only action without `Authorization: Bearer <write token>`. */
  token_required: { status: 401, expose: true },
  /** A bearer token that is not one of WRITE_TOKENS: refused whatever the request, nothing counted. */
  bad_token: { status: 403, expose: true },
  /** An anonymous view past RATE_LIMIT_PER_IP / RATE_LIMIT_BURST for its client address (Retry-After set). */
  rate_limited: { status: 429, expose: true },
  /** An anonymous view of a new page while the cluster holds MAX_PAGES pages. */
  too_many_pages: { status: 403, expose: true },
  /** An anonymous view of a new page whose name does not match PAGE_PATTERN. */
  page_not_allowed: { status: 403, expose: true },
  /** A private view or admin route asked for on the public port without an admin token. */
  admin_token_required: { status: 401, expose: true },
  /** An admin route with a token that is not one of ADMIN_TOKENS, or with none configured. */
  admin_token_refused: { status: 403, expose: true },
  not_ready: { status: 503, expose: true },
  /** Starting with peers: counts wait until one sync round with each reachable peer is merged. */
  catching_up: { status: 503, expose: true },
  /**
   * An increment whose `Counter-Session` saw a reset of the page this node has not received yet:
   * counted here it would land in the epoch the reset ended and be dropped when the reset
   * arrives, so it is refused (Retry-After set) instead of acknowledged and lost.
   */
  reset_not_seen: { status: 503, expose: true },
  /** An `Idempotency-Key` sent again with other views than the batch it first counted (idempotency.ts). */
  idempotency_key_reused: { status: 422, expose: true },
  /** A `Counter-Session` header that is malformed, tampered with or from another cluster. */
  bad_session: { status: 400, expose: true },
  shutting_down: { status: 503, expose: true },
  too_many_clients: { status: 503, expose: true },
  // A bounded queue is full (group commit, batch bodies in flight): retry shortly.
  overloaded: { status: 503, expose: true },
  /**
   * A write the store cannot take now: a large commit is spread over loop turns and holds the
   * write transaction (sqlite-store.ts). Callers wait for `writesHeld()`; one that did not fails here.
   */
  store_busy: { status: 503, expose: true },
  // Writes refused, reads still served: the disk has no room, or the database file on disk is no
  // longer the one the node has open (see src/store/write-health.ts).
  disk_full: { status: 503, expose: true },
  database_gone: { status: 503, expose: true },
  /** Configuration (env, flags, or options an adapter was built with) that cannot work. */
  bad_config: { status: 500, expose: true, exit: EXIT_BAD_CONFIG },
  database_too_new: { status: 500, expose: true },
  /** Another live node process holds DATABASE_PATH: a second writer on one file is refused. */
  database_in_use: { status: 500, expose: true, exit: EXIT_BAD_CONFIG },
  /**
   * The machine refuses what the start needs (a port in use, an address not on this host, a data
   * directory that cannot be written): one line saying what, nothing left half-created.
   */
  start_failed: { status: 500, expose: true, exit: EXIT_FAILURE },
  /** A peer's frame that does not decode or validate; closes that connection only. */
  bad_frame: { status: 400, expose: true },
  /**
   * Peer discovery could not get an answer (timeout, SERVFAIL, unreachable resolver): the peer
   * list stands as it was. Logged, never shown; the resolver's own code stays in `cause`.
   */
  discovery_failed: { status: 503, expose: false },
  internal: { status: 500, expose: false },
} as const satisfies Record<string, { status: number; expose: boolean; exit?: number }>;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;
  /** The process exit code when this error stops a start; undefined for request-level errors. */
  readonly exit: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    const entry: { status: number; expose: boolean; exit?: number } = ERRORS[code];
    this.code = code;
    this.status = entry.status;
    this.expose = entry.expose;
    this.exit = entry.exit;
  }
}

/** `bad_config` with every problem found, so a bad start is fixed in one go. */
export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('bad_config', `bad configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}

/** The JSON body of an error response: `{"error": {"code", "message"}}`. */
export function errorBody(error: AppError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: error.code, message: error.expose ? error.message : 'internal error' } };
}
