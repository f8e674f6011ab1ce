// An error that ends the process with a given exit code and a message meant for the user (one line,
// or a fixed multi-line text such as the deprecated-keys refusal). Everything else is a bug.
export class Fatal extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly stream: 'stdout' | 'stderr' = 'stderr',
  ) {
    super(message);
    this.name = 'Fatal';
  }
}

/** One line for an unexpected error: its message only, never a stack trace. */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].trim() || String(e);
}
