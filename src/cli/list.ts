// `list`: every job of every enabled client, one line each, sorted by next run — read from the
// databases as `check` does (no daemon needed). The running daemon's state file adds how long the
// last runs took (kivitendo's history has no end time). Never prints a password.
import { formatLocalTimestamp } from '../clock';
import { loadConfig, type Config } from '../config/config';
import { enabledClients } from '../db/auth';
import { listJobs, type ListedJobRow } from '../db/backgroundJobs';
import { clientDbParams, openConnection, redact, type Client } from '../db/pg';
import type { ClientRow } from '../db/rows';
import { oneLine } from '../daemon/errors';
import { pidState } from '../daemon/pidFile';
import { readStateFile, stateFilePath, type DaemonState } from '../daemon/stateFile';
import { readClientKivitendo } from '../jobs/clientRouting';
import { routeJobPackage } from '../jobs/registry';
import type { ClientKivitendo } from '../jobs/releases';
import { mapBounded, resolveNodeId } from '../scheduler/scheduler';
import type { Context } from './control';
import { filterJobs, formatTable, runsHow, sortByNextRun, toJson, type ListedJob, type RunsHow } from './listFormat';

/** Client databases read at the same time: with the auth connection at most 9 connections. */
export const LIST_CONCURRENCY = 8;
const APP = 'kivitendo-task-server list';

export async function list(ctx: Context): Promise<number> {
  const config = loadConfig(ctx.root, ctx.configPath);
  const now = new Date();
  const problems: string[] = [];
  const pw = config.authDb.password;
  let clients: ClientRow[];
  const auth = await openConnection(config.authDb, { applicationName: APP }).catch((e) => {
    throw new Error(redact(oneLine(e), pw));
  });
  try {
    clients = await enabledClients(auth);
  } finally {
    await auth.end().catch(() => undefined);
  }
  const wanted = ctx.opts.client;
  if (wanted !== undefined) {
    clients = clients.filter((c) => String(c.id) === wanted || c.name === wanted);
    if (!clients.length) throw new Error(`no enabled client with id or name '${wanted}'`);
  }
  const daemon = daemonState(ctx.pidFile);
  const jobs: ListedJob[] = [];
  await mapBounded(clients, LIST_CONCURRENCY, async (c) => {
    let db: Client | undefined;
    try {
      db = await openConnection(clientDbParams(c), { applicationName: APP, connectTimeoutMs: 5000 });
      const kivi = await readClientKivitendo(config.kivitendoDir, db);
      for (const job of await listJobs(db, formatLocalTimestamp(now), ctx.opts.all)) {
        // The daemon knows its own runs exactly; the history is matched by package and time only.
        const last = daemon?.lastRuns[`${c.id}:${job.id}`];
        const known = last && last.runAt === job.last_run_at ? last : undefined;
        jobs.push({
          clientId: c.id, clientName: c.name, job: known && known.status !== job.last_status ? { ...job, last_status: known.status, last_error: null } : job,
          runs: howItRunsHere(config, job, kivi), lastDurationMs: known?.ms,
        });
      }
    } catch (e) {
      problems.push(`client ${c.id} (${c.name}): database ${c.dbname} not readable: ${redact(redact(oneLine(e), c.dbpasswd), pw)}`);
    } finally {
      await db?.end().catch(() => undefined);
    }
  });
  const shown = sortByNextRun(filterJobs(jobs, { all: ctx.opts.all, failed: ctx.opts.failed }));
  if (ctx.opts.json) {
    process.stdout.write(JSON.stringify({ generated_at: now.toISOString(), node_id: resolveNodeId(config), jobs: toJson(shown, now), problems }, null, 2) + '\n');
  } else {
    process.stdout.write(formatTable(shown, now));
  }
  for (const p of problems) process.stderr.write(`Problem: ${p}\n`);
  return problems.length ? 1 : 0;
}

/** The route check and the runner use (the client's kivitendo decides native or Perl), plus this node. */
function howItRunsHere(config: Config, job: ListedJobRow, kivi: ClientKivitendo): RunsHow {
  const node = resolveNodeId(config);
  const mine = config.taskServer.onlyRunTasksForThisNode ? job.node_id === node : !job.node_id || job.node_id === node;
  if (!mine) return { how: 'cannot run', reason: 'other-node', detail: `the job is assigned to node '${job.node_id ?? ''}'; this node is '${node}'` };
  return runsHow(routeJobPackage(config, job.package_name, kivi));
}

function daemonState(pidFile: string): DaemonState | undefined {
  const s = pidState(pidFile);
  return s.state === 'running' ? readStateFile(stateFilePath(pidFile), s.pid) : undefined;
}
