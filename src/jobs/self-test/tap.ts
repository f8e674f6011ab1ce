// A minimal TAP producer for the SelfTest modules: kivitendo runs each module as a Test::Builder
// subtest and mails the captured TAP text. The text here is TAP version 12 (plan, ok/not ok, #-diag).
import type { Client } from '../../db/pg';

export class Tap {
  private lines: string[] = [];
  private count = 0;
  private failures = 0;
  private planned: number | undefined;

  plan(tests: number): void {
    this.planned = tests;
    this.lines.push(`1..${tests}`);
  }

  ok(pass: boolean, description: string): void {
    this.count += 1;
    if (!pass) this.failures += 1;
    this.lines.push(`${pass ? 'ok' : 'not ok'} ${this.count} - ${description}`);
    if (!pass) this.lines.push(`#   Failed test '${description}'`);
  }

  /** Each line of a multi-line message becomes its own comment line. */
  diag(message: string): void {
    for (const line of message.split('\n')) this.lines.push(`# ${line}`);
  }

  /** Marks a check this server cannot run: it fails, so the report never passes it silently. */
  notSupported(description: string, why: string): void {
    this.ok(false, `${description} (not supported: ${why})`);
  }

  get failed(): number {
    return this.failures;
  }

  /** A module passes when every test passed and the number of tests matches the plan. */
  get passed(): boolean {
    return this.failures === 0 && (this.planned === undefined || this.planned === this.count);
  }

  get output(): string {
    const lines = [...this.lines];
    if (this.planned !== undefined && this.planned !== this.count) {
      lines.push(`# Looks like you planned ${this.planned} tests but ran ${this.count}.`);
    } else if (this.failures > 0) {
      lines.push(`# Looks like you failed ${this.failures} test${this.failures === 1 ? '' : 's'} of ${this.count}.`);
    }
    return lines.join('\n') + '\n';
  }
}

export interface SelfTestEnv {
  db: Client;
  /** "Today" (local) for business-day arithmetic. */
  today: Date;
  /** The year the checks cover (kivitendo takes it from DateTime->today, i.e. UTC). */
  year: number;
}

export interface SelfTestModule {
  readonly name: string;
  run(tap: Tap, env: SelfTestEnv): Promise<void>;
}
