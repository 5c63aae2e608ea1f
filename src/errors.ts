/**
 * The one error catalogue. Every error the service reports carries a stable `code`, an HTTP
 * `status`, and whether its message may be shown to the caller (`expose`): 4xx messages say what
 * to fix; 5xx messages are logged, never shown. The original error stays in `cause`.
 */
export const ERRORS = {
  bad_page_name: { status: 400, expose: true },
  bad_increment: { status: 400, expose: true },
  bad_request: { status: 400, expose: true },
  bad_json: { status: 400, expose: true },
  body_too_large: { status: 413, expose: true },
  unsupported_media_type: { status: 415, expose: true },
  counter_overflow: { status: 400, expose: true },
  not_found: { status: 404, expose: true },
  method_not_allowed: { status: 405, expose: true },
  forbidden_origin: { status: 403, expose: true },
  not_ready: { status: 503, expose: true },
  shutting_down: { status: 503, expose: true },
  too_many_clients: { status: 503, expose: true },
  bad_config: { status: 500, expose: true },
  database_too_new: { status: 500, expose: true },
  bad_frame: { status: 400, expose: true },
  internal: { status: 500, expose: false },
} as const satisfies Record<string, { status: number; expose: boolean }>;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.expose = ERRORS[code].expose;
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}

/** The JSON body of an error response: `{"error": {"code", "message"}}`. */
export function errorBody(error: AppError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: error.code, message: error.expose ? error.message : 'internal error' } };
}
