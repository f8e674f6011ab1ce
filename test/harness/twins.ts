// Twin clients in one kivitendo installation: this server runs a job on one, kivitendo's own
// scripts/task_server.pl runs the same job id on the other (identical data), and the rows are compared.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { cliEnv, REPO } from './cli';
import type { KivitendoInstallation } from './kivitendo';

/** Columns holding the moment of writing; they differ between the twins by nature. */
const MOMENTS = ['itime', 'mtime', 'run_at', 'last_run_at', 'next_run_at', 'sent_on'];

/**
 * kivitendo's own task server runs job `id` in client `client` only (it runs an id in every client
 * with a task server user, so the others' are cleared meanwhile). Its exit code is not the job's
 * outcome (a failed SelfTest exits 1); the rows are compared. Returns its output for messages.
 */
export async function runWithKivitendoOn(inst: KivitendoInstallation, client: string, id: number): Promise<string> {
  const auth = await inst.authConnection();
  try {
    await auth.query('UPDATE auth.clients SET task_server_user_id = NULL WHERE name <> $1', [client]);
    const r = await runKivitendoTaskServer(inst, id, 300_000);
    assert.ok(r.code === 0 || r.code === 1, `kivitendo's task_server.pl --run-job=${id} exited ${r.code}: ${r.stdout}${r.stderr}`);
    return `kivitendo's task_server.pl --run-job=${id} (exit ${r.code}): ${r.stdout}${r.stderr}`;
  } finally {
    await auth.query('UPDATE auth.clients SET task_server_user_id = $1', [Object.values(inst.users)[0]]);
    await auth.end();
  }
}

/**
 * `scripts/task_server.pl --run-job=ID debug` without blocking this process (an SMTP sink of the
 * test lives in it).
 */
function runKivitendoTaskServer(inst: KivitendoInstallation, id: number, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(inst.perl, ['scripts/task_server.pl', `--run-job=${id}`, 'debug'], { cwd: inst.root, env: cliEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Rows of a table in a client without the columns that hold the moment of writing. */
export async function rowsWithoutMoments(inst: KivitendoInstallation, client: string, table: string, orderBy = 'id'): Promise<Record<string, unknown>[]> {
  const all = await inst.query(client, `SELECT * FROM ${table} ORDER BY ${orderBy}`);
  // A mail's Message-ID holds the moment and the process id of sending (email_journal.headers).
  const moment = (k: string, v: unknown) => (k === 'headers' && typeof v === 'string' ? v.replace(/^Message-ID: <[^>]*>/m, 'Message-ID: <…>') : v);
  return all.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !MOMENTS.includes(k)).map(([k, v]) => [k, moment(k, v)])));
}

export async function assertTwinsEqual(inst: KivitendoInstallation, ours: string, theirs: string, tables: string[]): Promise<void> {
  for (const t of tables) {
    const orderBy = t === 'acc_trans' ? 'acc_trans_id' : t === 'employee' ? 'login' : 'id';
    assert.deepEqual(await rowsWithoutMoments(inst, ours, t, orderBy), await rowsWithoutMoments(inst, theirs, t, orderBy), `${t}: the rows kivitendo's task_server.pl writes`);
  }
}

/**
 * kivitendo's own SL::Dev code (of the installation's tree) saves a customer, a part and a monthly
 * periodic sales order billed from `monthsBack` months ago on; `config` is Perl for further
 * attributes of the periodic invoice configuration.
 */
export function createPeriodicOrder(inst: KivitendoInstallation, client: string, opts: { monthsBack?: number; config?: string } = {}): void {
  const code = `
    require SL::InstanceConfiguration; $::instance_conf = SL::InstanceConfiguration->new;
    require SL::Request; require SL::Layout::None; require CGI;
    $::request = SL::Request->new(cgi => CGI->new({}), layout => SL::Layout::None->new);
    require SL::Dev::ALL; SL::Dev::ALL->import(':ALL');
    require SL::DB::Chart; require SL::DB::Unit; require DateTime;
    my $ar_chart = SL::DB::Manager::Chart->find_by(accno => '1400') or die "no AR chart\\n";
    my $unit     = SL::DB::Manager::Unit->find_by(name => 'psch')   or die "no unit\\n";
    my $customer = SL::Dev::CustomerVendor::new_customer(name => 'Twin Customer')->save;
    my $part     = SL::Dev::Part::new_part(partnumber => 'T4254', description => 'Fourty-two fifty-four', lastcost => 222.22, sellprice => 333.33, unit => $unit->name)->save;
    SL::Dev::Record::create_sales_order(
      save => 1, customer => $customer, transaction_description => '<%period_start_date%>',
      orderitems => [ SL::Dev::Record::create_order_item(part => $part, qty => 1, unit => $unit->name) ],
      periodic_invoices_config => { active => 1, ar_chart_id => $ar_chart->id, periodicity => 'm', order_value_periodicity => 'm',
                                    start_date => DateTime->today->truncate(to => 'month')->subtract(months => ${opts.monthsBack ?? 1}),
                                    ${opts.config ?? ''} },
    );`;
  const r = spawnSync(inst.perl, [path.join(REPO, 'test', 'harness', 'kivitendo-eval.pl'), inst.src, inst.configFile, String(inst.clients[client].id), Object.keys(inst.users)[0], code], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kivitendo's SL::Dev could not create the order in ${client}: ${r.stdout}${r.stderr}`);
}
