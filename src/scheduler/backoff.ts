// Retry timing for unreachable databases: exponential, capped; a clean success resets it.

export class Backoff {
  private failures = 0;
  retryAt = 0;

  constructor(
    private readonly firstMs: number,
    private readonly capMs: number,
  ) {}

  get failing(): boolean {
    return this.failures > 0;
  }

  /** Records a failure at `now`; `capMs` overrides the cap (e.g. long for a wrong password). */
  fail(now: number, capMs = this.capMs): void {
    const wait = Math.min(this.firstMs * 2 ** this.failures, capMs);
    this.failures += 1;
    this.retryAt = now + wait;
  }

  succeed(): void {
    this.failures = 0;
    this.retryAt = 0;
  }
}

/**
 * Errors after which the server is expected back soon (refused, reset, shutting down), as opposed
 * to configuration errors (wrong password, missing database) that only an admin fixes.
 */
export function isTransientDbError(e: unknown): boolean {
  const err = e as { code?: string; cause?: { code?: string } };
  const code = err.code ?? err.cause?.code ?? '';
  if (['28P01', '28000', '3D000'].includes(code)) return false; // auth failed, no such database
  return true;
}
