// `check`: configuration, auth DB, pending auth upgrades, every client (task server user, database
// reachable, due jobs), daemon state. Exit 0 when everything is fine, 1 with the reasons otherwise.
// Never prints a password.
import { formatLocalTimestamp } from '../clock';
import { hasDeprecatedKeys, loadConfig, type Config } from '../config/config';
import { allClients, appliedAuthUpgradeTags } from '../db/auth';
import { activeJobs, countDueJobs } from '../db/backgroundJobs';
import { countOutputConfigs } from '../jobs/periodic-invoices/configs';
import { routeJobPackage } from '../jobs/registry';
import { describeRoute, readClientKivitendo } from '../jobs/clientRouting';
import { describeClientDatabase, perlGlueNote, releaseOf, type ClientKivitendo } from '../jobs/releases';
import { readInstallationRelease } from '../db/schemaInfo';
import { probePerlPackages, type PackageProbe } from '../jobs/perl/child';
import { resolveNodeId } from '../scheduler/scheduler';
import { pendingUpgrades, readAuthUpgradeControls } from '../db/authUpgrades';
import { openConnection, redact, type Client } from '../db/pg';
import { oneLine } from '../daemon/errors';
import { pidState, processUid } from '../daemon/pidFile';
import { RUN_AS_ROOT_WARNING, runsAsRootWithoutRunAs } from '../daemon/privileges';
import { readConfig } from '../daemon/preflight';
import type { Context } from './control';
import { PROGRAM } from './usage';

const out = (line: string) => process.stdout.write(line + '\n');

export async function check(ctx: Context): Promise<number> {
  const problems: string[] = [];
  // Syntax errors etc. end here with one line; the deprecated keys are reported as a problem instead.
  let config: Config;
  try {
    config = readConfig({ root: ctx.root, configPath: ctx.configPath, explicit: ctx.explicitConfig });
  } catch (e) {
    if ((e as { exitCode?: number }).exitCode !== 2) throw e;
    config = loadConfig(ctx.root, ctx.configPath);
  }
  if (hasDeprecatedKeys(config)) problems.push("[task_server] still contains the deprecated keys 'login' and/or 'client'; remove them");
  out(`Configuration looks okay (${config.files.join(', ')})`);
  // Jobs would run as root: when check runs as root (started like this, the daemon would), or when
  // the running daemon does.
  const running = pidState(ctx.pidFile);
  const daemonUid = running.state === 'running' ? processUid(running.pid) : undefined;
  if (runsAsRootWithoutRunAs(config.taskServer.runAs) || runsAsRootWithoutRunAs(config.taskServer.runAs, daemonUid)) {
    process.stderr.write(RUN_AS_ROOT_WARNING + '\n');
  }
  const nodeId = resolveNodeId(config);
  out(`Node ID: ${nodeId}${config.taskServer.onlyRunTasksForThisNode ? ' (only jobs assigned to this node)' : ''}`);

  const pw = config.authDb.password;
  const a = config.authDb;
  let auth: Client | undefined;
  try {
    auth = await openConnection(a, { applicationName: 'kivitendo-task-server check' });
    out(`Auth database ${a.database} on ${a.host}:${a.port} as ${a.user}: ok`);
  } catch (e) {
    problems.push(`Auth database ${a.database} on ${a.host}:${a.port} as ${a.user} is not reachable: ${redact(oneLine(e), pw)}`);
  }
  if (auth) {
    try {
      const pending = pendingUpgrades(readAuthUpgradeControls(config.kivitendoDir), await appliedAuthUpgradeTags(auth));
      if (pending.length) problems.push(`Auth database upgrades pending: ${pending.map((p) => p.tag).join(', ')}`);
      else out('Auth database upgrades: none pending');
      const logins = new Map<number, string>();
      for (const r of (await auth.query<{ id: number; login: string }>('SELECT id, login FROM auth."user"')).rows) logins.set(r.id, r.login);
      const clients = await allClients(auth);
      if (!clients.some((c) => c.task_server_user_id !== null)) out('No client has a task server user: the task server has nothing to do');
      const installation = readInstallationRelease(config.kivitendoDir);
      if (installation.problem) problems.push(`kivitendo installation ${config.kivitendoDir}: not known which kivitendo: ${installation.problem}`);
      else {
        const note = perlGlueNote({ version: installation.version, release: releaseOf(installation.version) });
        out(`kivitendo installation ${config.kivitendoDir}: kivitendo ${installation.version}, ${installation.tags.size} client database upgrades${note ? `; ${note}` : ''}`);
      }
      const now = formatLocalTimestamp(new Date());
      const probes = new Map<string, string | undefined>();
      for (const c of clients) {
        const head = `Client ${c.id} (${c.name})`;
        if (c.task_server_user_id === null) {
          out(`${head}: task server disabled (no task server user)`);
          continue;
        }
        const login = logins.get(c.task_server_user_id);
        if (!login) {
          problems.push(`${head}: task server user ID ${c.task_server_user_id} does not exist`);
          continue;
        }
        const where = `${c.dbname} on ${c.dbhost || 'localhost'}:${c.dbport || 5432}`;
        let db: Client | undefined;
        try {
          db = await openConnection(
            { host: c.dbhost || 'localhost', port: Number(c.dbport) || 5432, database: c.dbname, user: c.dbuser, password: c.dbpasswd ?? '' },
            { applicationName: 'kivitendo-task-server check', connectTimeoutMs: 5000 },
          );
          const due = await countDueJobs(db, now, { nodeId, onlyRunTasksForThisNode: config.taskServer.onlyRunTasksForThisNode });
          out(`${head}: task server user ${login}, database ${where} reachable, ${due} job${due === 1 ? '' : 's'} due`);
          const kivi = await readClientKivitendo(config.kivitendoDir, db);
          out(`${head}: ${describeClientDatabase(kivi)}`);
          const jobs = await activeJobs(db);
          await describeJobs(config, head, jobs, problems, probes, kivi);
          await checkPeriodicInvoiceOutput(config, head, db, jobs, problems);
        } catch (e) {
          problems.push(`${head}: task server user ${login}, database ${where} not usable: ${redact(redact(oneLine(e), c.dbpasswd), pw)}`);
        } finally {
          await db?.end().catch(() => undefined);
        }
      }
    } catch (e) {
      problems.push(`Cannot read the auth database: ${redact(oneLine(e), pw)}`);
    } finally {
      await auth.end().catch(() => undefined);
    }
  }

  const s = pidState(ctx.pidFile);
  out(s.state === 'running' ? `${PROGRAM} running - pid ${s.pid}` : s.state === 'dead' ? `${PROGRAM} dead (stale pid file)` : `No ${PROGRAM} running`);

  if (problems.length) {
    for (const p of problems) process.stderr.write(`Problem: ${p}\n`);
    return 1;
  }
  out('Everything looks fine');
  return 0;
}

/**
 * CreatePeriodicInvoices posts natively, but prints and e-mails through kivitendo's Perl code: with
 * the Perl path switched off, configurations that print or e-mail would fail that step every run.
 */
async function checkPeriodicInvoiceOutput(config: Config, head: string, db: Client, jobs: { package_name: string | null }[], problems: string[]) {
  if (config.taskServer.perl || !jobs.some((j) => j.package_name === 'CreatePeriodicInvoices')) return;
  const n = await countOutputConfigs(db);
  if (n) {
    problems.push(
      `${head}: ${n} active periodic invoice configuration${n === 1 ? '' : 's'} print or e-mail their invoices, but the Perl path is switched off ([task_server] perl = 0): CreatePeriodicInvoices would post the invoices and fail printing/e-mailing them`,
    );
  }
}

/**
 * One line per active job: how it runs here (native, kivitendo's Perl code) or why it cannot.
 * kivitendo's modules of the Perl packages are loaded once (not run) to find missing Perl modules.
 */
async function describeJobs(
  config: Config, head: string, jobs: { id: number; package_name: string | null }[], problems: string[], probes: PackageProbe, kivi: ClientKivitendo,
): Promise<void> {
  const routes = jobs.map((j) => ({ job: j, route: routeJobPackage(config, j.package_name, kivi) }));
  const unprobed = [...new Set(routes.filter((r) => r.route.kind === 'perl' && !probes.has(r.job.package_name!)).map((r) => r.job.package_name!))];
  if (unprobed.length) {
    try {
      for (const [name, why] of await probePerlPackages(config, unprobed)) probes.set(name, why);
    } catch (e) {
      for (const name of unprobed) probes.set(name, `perl cannot be started: ${(e as Error).message} (install perl or set [task_server] perl)`);
    }
  }
  for (const { job, route } of routes) {
    const what = `job ${job.id} ${job.package_name ?? '(no package)'}`;
    if (route.kind === 'native' || (route.kind === 'perl' && !probes.get(job.package_name!))) {
      out(`  ${what}: ${describeRoute(route, config.kivitendoDir)}`);
    } else {
      const why = route.kind === 'perl' ? `job package ${job.package_name}: ${probes.get(job.package_name!)}` : route.reason;
      out(`  ${what}: cannot run: ${why}`);
      problems.push(`${head}: active ${what} cannot run: ${why}`);
    }
  }
}
