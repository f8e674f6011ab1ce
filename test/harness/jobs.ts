// Runs one job through the real runner (history row, last_run_at/next_run_at, time limit), as the
// scheduler does, for job tests. The clock can be fixed.
import { fixedClock, systemClock, type Clock } from '../../src/clock';
import { loadConfig, type Config } from '../../src/config/config';
import { loadUserById } from '../../src/db/auth';
import type { HistoryRow } from '../../src/db/backgroundJobHistories';
import { claimJobById, releaseJob } from '../../src/db/backgroundJobs';
import type { BackgroundJobRow, ClientRow } from '../../src/jobs/types';
import { memoryLogger } from '../../src/log/logger';
import { runClaimedJob } from '../../src/scheduler/runner';
import type { Installation } from './installation';

export interface RunJobOptions {
  /** Run this existing background_jobs row ... */
  jobId?: number;
  /** ... or insert a new interval row for this package first. */
  packageName?: string;
  /** YAML text (string) or an object dumped as YAML into data of the new row. */
  data?: string | Record<string, unknown> | null;
  cronSpec?: string | null;
  type?: 'interval' | 'once';
  /** Fixed "now" for the run (local time). */
  now?: Date;
  config?: Config;
  /** The scheduler's shutdown signal (aborting it stops the job as at shutdown). */
  shutdown?: AbortSignal;
}

export interface RunJobResult {
  history: HistoryRow;
  job: BackgroundJobRow;
  log: string[];
}

export async function insertJob(
  inst: Installation,
  clientName: string,
  row: { packageName: string; type?: string; cronSpec?: string | null; data?: string | null; active?: boolean; nextRunAt?: string | null; nodeId?: string | null; description?: string | null },
): Promise<number> {
  const db = await inst.clientDb(clientName);
  try {
    const r = await db.query(
      `INSERT INTO background_jobs (type, package_name, cron_spec, data, active, next_run_at, node_id, description)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
      [row.type ?? 'interval', row.packageName, row.cronSpec ?? null, row.data ?? null, row.active ?? true, row.nextRunAt ?? null, row.nodeId ?? null, row.description ?? null],
    );
    return r.rows[0].id;
  } finally {
    await db.end();
  }
}

export async function runJob(inst: Installation, clientName: string, opts: RunJobOptions): Promise<RunJobResult> {
  const config = opts.config ?? loadConfig(inst.root, 'config/kivitendo.conf');
  const clock: Clock = opts.now ? fixedClock(opts.now) : systemClock;
  let jobId = opts.jobId;
  if (jobId === undefined) {
    if (!opts.packageName) throw new Error('runJob needs jobId or packageName');
    const { dumpJobData } = await import('../../src/jobs/jobData');
    const data = opts.data && typeof opts.data === 'object' ? dumpJobData(opts.data) : (opts.data ?? null);
    jobId = await insertJob(inst, clientName, { packageName: opts.packageName, type: opts.type, cronSpec: opts.cronSpec ?? '* * * * *', data });
  }
  const auth = await inst.authConnection();
  const control = await inst.clientDb(clientName);
  const log = memoryLogger();
  try {
    const client = (await auth.query<ClientRow>('SELECT * FROM auth.clients WHERE name = $1', [clientName])).rows[0];
    const user = await loadUserById(auth, client.task_server_user_id, { language: config.system.language, kivitendoDir: inst.root });
    const job = await claimJobById(control, jobId);
    if (!job || job === 'locked') throw new Error(`job ${jobId} not found or locked`);
    try {
      const { history } = await runClaimedJob({ config, log, clock, nodeId: 'test-node', client, user, control, job, shutdown: opts.shutdown });
      const after = (await control.query<BackgroundJobRow>('SELECT * FROM background_jobs WHERE id = $1', [jobId])).rows[0];
      return { history, job: after, log: log.lines };
    } finally {
      await releaseJob(control, jobId);
    }
  } finally {
    await control.end();
    await auth.end();
  }
}
