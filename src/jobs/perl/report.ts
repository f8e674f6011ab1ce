// The report of a Perl run, turned into its outcome: the action's result, or a PerlRunError with one
// line naming the run and the cause (or kivitendo's own exception text for a package's failure,
// as kivitendo writes it into the history).
import { JobError } from '../types';

/** What the glue reports for run_job. */
export interface PerlJobResult {
  result: string | null;
  /** background_jobs.data as the package left it in memory (YAML text). */
  data: string | null;
}

export type PerlFailureKind = 'no-perl' | 'missing-module' | 'compile' | 'init' | 'run' | 'crash' | 'no-report' | 'time-limit' | 'shutdown';

/** A failed Perl run. `message` is one line naming the run and the cause, except for kind 'run' of run_job (kivitendo's own exception text, as kivitendo writes it into the history). */
export class PerlRunError extends JobError {
  constructor(
    message: string,
    readonly kind: PerlFailureKind,
    /** kivitendo's exception text, in full (kinds run, compile, init, missing-module). */
    readonly perlError?: string,
    /** For run_job: the job's data after the failed run, when the package got that far. */
    readonly data?: string | null,
  ) {
    super(message);
    this.name = 'PerlRunError';
  }
}

/** The result line of kivitendo-child.pl. */
export interface Answer {
  ok: 0 | 1;
  phase?: 'init' | 'load' | 'run';
  error?: string;
  missing_module?: string;
  result?: unknown;
  data?: string | null;
  /** A forked run's modules beyond its parent's (see learn_modules in kivitendo-child.pl). */
  kts_modules?: string[];
}

/** How a run's process ended, and what it left to say about it. */
export interface RunEnd {
  label: string;
  action: string;
  clientName: string;
  perl: string;
  answer: Answer | undefined;
  answerTooLong: boolean;
  /** The time limit or shutdown stopped it before it reported. */
  stopped?: { kind: 'time-limit' | 'shutdown'; message: string };
  spawnError?: NodeJS.ErrnoException;
  code: number | null;
  signal: NodeJS.Signals | null;
  lastStderr: string;
  /** Why the preloaded parent that forked it died during the run. */
  parentDied?: string;
  /** Hides passwords in every text that leaves the run. */
  hide: (text: string) => string;
}

function firstLine(text: string): string {
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

/** The run's result (for run_job a PerlJobResult), or the PerlRunError it failed with. */
export function outcomeOf(e: RunEnd): { value: unknown } | { error: PerlRunError } {
  const fail = (message: string, kind: PerlFailureKind, perlError?: string, data?: string | null) => ({
    error: new PerlRunError(e.hide(message), kind, perlError && e.hide(perlError), data),
  });
  const { label, answer } = e;
  if (e.stopped) return fail(e.stopped.message, e.stopped.kind);
  if (e.spawnError) {
    const why = e.spawnError.code === 'ENOENT' ? `'${e.perl}' not found` : e.spawnError.code === 'EACCES' ? `'${e.perl}' is not executable` : e.spawnError.message;
    return fail(`${label} needs kivitendo's Perl code, but perl cannot be started: ${why} (install perl or set [task_server] perl)`, 'no-perl');
  }
  if (e.answerTooLong) return fail(`${label}: kivitendo's Perl process reported a result larger than 64 MiB; it was dropped`, 'no-report');
  if (!answer) {
    const tail = e.lastStderr ? `; last output: ${e.lastStderr.slice(0, 500)}` : '';
    if (e.parentDied) return fail(`${label}: kivitendo's Perl process was killed because ${e.parentDied}${tail}`, 'crash');
    if (e.signal) {
      const oom = e.signal === 'SIGKILL' ? " (the kernel's OOM killer sends SIGKILL: out of memory?)" : '';
      return fail(`${label}: kivitendo's Perl process was killed by ${e.signal}${oom} before it reported a result${tail}`, 'crash');
    }
    return fail(`${label}: kivitendo's Perl process exited with code ${e.code} without reporting a result${tail}`, 'no-report');
  }
  if (answer.ok) return { value: e.action === 'run_job' ? { result: (answer.result as string | null) ?? null, data: answer.data ?? null } : answer.result };
  const error = answer.error ?? 'unknown error';
  if (answer.missing_module) {
    return fail(`${label} cannot run: kivitendo's Perl code needs the Perl module ${answer.missing_module}, which is not installed`, 'missing-module', error, answer.data);
  }
  if (answer.phase === 'init') return fail(`${label}: kivitendo could not be initialised for client ${e.clientName}: ${firstLine(error)}`, 'init', error);
  if (answer.phase === 'load') return fail(`${label} does not compile: ${firstLine(error)}`, 'compile', error);
  // A package's own failure: kivitendo's history text, unchanged (run_job); one line for actions.
  if (e.action === 'run_job') return fail(error, 'run', error, answer.data);
  return fail(`${label}: ${firstLine(error)}`, 'run', error);
}
