/**
 * One error type for everything a user can cause (bad file, bad option, bad model).
 * The CLI prints `message` as one line and exits non-zero; `--debug` adds the stack.
 */
export class LesionFuseError extends Error {
  /** The file or option the problem is about, when there is one. */
  readonly subject?: string;
  constructor(message: string, options?: { subject?: string; cause?: unknown }) {
    super(options?.subject ? `${options.subject}: ${message}` : message, { cause: options?.cause });
    this.name = 'LesionFuseError';
    this.subject = options?.subject;
  }
}

/** A short, one-line description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}
