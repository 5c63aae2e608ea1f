/** The one error the codec throws: a frame (or a message to send) that a peer must not accept. */
export type ProtocolErrorCode = 'protocol_version' | 'bad_frame';

/** A frame that cannot be accepted. The receiver answers `reject` with `code` and closes. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The peer's protocol version, for `protocol_version`. */
  readonly version: number | undefined;

  constructor(code: ProtocolErrorCode, message: string, options?: { version?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.version = options?.version;
  }
}

/** Throws `ProtocolError('bad_frame', message)`. */
export function bad(message: string): never {
  throw new ProtocolError('bad_frame', message);
}
