// Clean-up after a Perl run: nothing of it may outlive it — not the processes it started (its
// process group), not the database backends it left open. Only what the run itself opened: its
// backends carry perlRunApplicationName, so the native run that started a Perl step (whose own
// connection is named after the job) keeps its connection.
import fs from 'node:fs';
import { jobBackendPids, terminateBackend } from '../../db/jobBackends';
import { clientDbParams, openConnection } from '../../db/pg';
import type { ClientRow } from '../types';

/** After SIGTERM to the child's process group, SIGKILL follows after this long. */
export const KILL_GRACE_MS = 3000;

/**
 * Terminates the backends a Perl run for the job left behind in the client's database. Job ids are
 * per client database, and several clients' databases (and every client's auth connections) share
 * a cluster, so the name is only matched inside the client's own database: elsewhere job 5 may be
 * another client's job 5 running right now.
 */
export async function terminatePerlRunBackends(client: ClientRow, jobId: number): Promise<number> {
  const db = await openConnection(clientDbParams(client), { applicationName: 'kivitendo-task-server' });
  try {
    let n = 0;
    for (const pid of await jobBackendPids(db, jobId, 'perl')) if (await terminateBackend(db, pid)) n++;
    return n;
  } finally {
    await db.end().catch(() => undefined);
  }
}

/**
 * Process groups of the Perl children now running. Should the daemon exit while one runs (a second
 * SIGTERM, a fatal error), they are killed on the way out instead of running on as orphans.
 */
const running = new Set<number>();
let exitHookInstalled = false;

export function trackGroup(pgid: number): void {
  running.add(pgid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const g of running) killGroup(g, 'SIGKILL');
  });
}

export function untrackGroup(pgid: number): void {
  running.delete(pgid);
}

export function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (!pgid) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    /* the group is gone */
  }
}

/** Waits (at most ms) until pid has ended: no such process, or a zombie left to its parent to reap. */
export async function untilGone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return;
    }
    if (/\) [ZX] /.test(stat)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
