// PLACEHOLDER (the cron helper replaces this file): kivitendo's cron dialect, pure functions.
export class CronSyntaxError extends Error {
  constructor(readonly spec: string, message: string) {
    super(`invalid cron_spec '${spec}': ${message}`);
    this.name = 'CronSyntaxError';
  }
}

/** The next occurrence of `spec` strictly after `after` (process-local time zone). False spec = every minute. */
export function nextRunAt(spec: string | null | undefined, after: Date): Date {
  void spec;
  const d = new Date(after.getTime());
  d.setSeconds(0, 0);
  return new Date(d.getTime() + 60_000);
}
