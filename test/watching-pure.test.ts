// `list`, `status`, /healthz and metrics_listen: the pure parts (no database, no process).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { filterJobs, formatSpan, formatTable, nextRunOf, runsHow, sortByNextRun, toJson, type ListedJob } from '../src/cli/listFormat';
import { formatDaemonState } from '../src/cli/statusFormat';
import { ConfigError, parseMetricsListen } from '../src/config/config';
import { health, HEALTH_STALE_MS } from '../src/daemon/health';
import type { DaemonState } from '../src/daemon/stateFile';
import type { ListedJobRow } from '../src/db/backgroundJobs';

const NOW = new Date(2026, 11, 5, 18, 0, 0);

function row(over: Partial<ListedJobRow>): ListedJobRow {
  return {
    id: 1, type: 'interval', package_name: 'Test', active: true, cron_spec: '0 3 * * *', node_id: null,
    last_run_at: null, next_run_at: '2026-12-05 21:12:00', last_status: null, last_error: null, failures_24h: 0, ...over,
  };
}
const job = (over: Partial<ListedJobRow>, clientId = 1): ListedJob => ({ clientId, clientName: `C${clientId}`, job: row(over), runs: { how: 'native' } });

describe('list: next run', () => {
  test('interval, once without schedule, once done, inactive, parked', () => {
    assert.deepEqual(nextRunOf(row({})), { kind: 'at', at: new Date(2026, 11, 5, 21, 12, 0) });
    assert.deepEqual(nextRunOf(row({ type: 'once', cron_spec: null, next_run_at: null })), { kind: 'now' });
    assert.deepEqual(nextRunOf(row({ type: 'once', last_run_at: '2026-12-05 10:00:00' })), { kind: 'never', why: 'done' });
    assert.deepEqual(nextRunOf(row({ active: false })), { kind: 'never', why: 'inactive' });
    assert.deepEqual(nextRunOf(row({ next_run_at: 'infinity' })), { kind: 'never', why: 'parked' });
    assert.deepEqual(nextRunOf(row({ next_run_at: null })), { kind: 'never', why: 'unscheduled' });
  });

  test('spans: two units at most, as systemctl list-timers', () => {
    assert.equal(formatSpan(3 * 3600_000 + 12 * 60_000 + 5000), '3 h 12 min');
    assert.equal(formatSpan(65_000), '1 min 5 s');
    assert.equal(formatSpan(12_400), '12 s');
    assert.equal(formatSpan(2 * 86400_000 + 4 * 3600_000 + 1000), '2 d 4 h');
    assert.equal(formatSpan(3600_000 + 5000), '1 h');
    assert.equal(formatSpan(0), '0 s');
  });

  test('sorted by next run: due now first, then by time, not scheduled last', () => {
    const jobs = [
      job({ id: 1, next_run_at: '2026-12-06 03:00:00' }),
      job({ id: 2, active: false }),
      job({ id: 3, type: 'once', cron_spec: null, next_run_at: null }),
      job({ id: 4, next_run_at: '2026-12-05 18:30:00' }, 2),
    ];
    assert.deepEqual(sortByNextRun(jobs).map((j) => j.job.id), [3, 4, 1, 2]);
  });

  test('--all and --failed', () => {
    const jobs = [job({ id: 1 }), job({ id: 2, active: false, last_status: 'failure' }), job({ id: 3, last_status: 'failure' })];
    assert.deepEqual(filterJobs(jobs, { all: false, failed: false }).map((j) => j.job.id), [1, 3]);
    assert.deepEqual(filterJobs(jobs, { all: true, failed: true }).map((j) => j.job.id), [2, 3]);
    assert.deepEqual(filterJobs(jobs, { all: false, failed: true }).map((j) => j.job.id), [3]);
  });
});

describe('list: how it runs here', () => {
  test('one word for each reason routeJobPackage gives', () => {
    assert.deepEqual(runsHow({ kind: 'unavailable', reason: "unknown job package 'Foo'" }), { how: 'cannot run', reason: 'unknown', detail: "unknown job package 'Foo'" });
    assert.equal((runsHow({ kind: 'unavailable', reason: "job package X is not supported ..., and running kivitendo's Perl code is switched off ([task_server] perl = 0)" }) as { reason: string }).reason, 'perl-off');
    assert.equal((runsHow({ kind: 'unavailable', reason: "... and kivitendo's SL/BackgroundJob/X.pm is not in /srv/kivi" }) as { reason: string }).reason, 'no-module');
    assert.equal((runsHow({ kind: 'unavailable', reason: 'something new' }) as { reason: string }).reason, 'unavailable');
    assert.deepEqual(runsHow({ kind: 'perl', file: '/x', forced: false }), { how: 'perl' });
  });
});

describe('list: table and JSON', () => {
  test('one aligned line per job with every column', () => {
    const jobs = [
      { ...job({ id: 7, package_name: 'CreatePeriodicInvoices', last_run_at: '2026-12-05 03:00:00', last_status: 'failure', failures_24h: 2 }), lastDurationMs: 1500 },
      { ...job({ id: 9, type: 'once', cron_spec: null, next_run_at: null, package_name: 'CsvImport' }, 2), runs: { how: 'cannot run', reason: 'no-module', detail: 'x' } as const },
    ];
    const text = formatTable(sortByNextRun(jobs), NOW);
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0], /^NEXT\s+LEFT\s+CLIENT\s+JOB\s+PACKAGE\s+RUNS\s+SCHEDULE\s+LAST\s+STATUS\s+TOOK\s+FAILED\/24H$/);
    assert.match(lines[1], /^now\s+due\s+2 C2\s+9\s+CsvImport\s+cannot run: no-module\s+once\s+-\s+-\s+-\s+0$/);
    assert.match(lines[2], /^2026-12-05 21:12:00\s+in 3 h 12 min\s+1 C1\s+7\s+CreatePeriodicInvoices\s+native\s+0 3 \* \* \*\s+2026-12-05 03:00:00 \(15 h ago\)\s+failure\s+1\.5 s\s+2$/);
    assert.equal(lines[lines.length - 1], '2 jobs listed.');
    // Columns line up: every row's LEFT starts where the header's does.
    const col = lines[0].indexOf('LEFT');
    assert.equal(lines[2].slice(col, col + 2), 'in');
  });

  test('JSON carries machine-readable times and the reason', () => {
    const [j] = toJson([{ ...job({ id: 7 }), runs: { how: 'cannot run', reason: 'unknown', detail: "unknown job package 'X'" } }], NOW) as Record<string, unknown>[];
    assert.equal(j.next_run_in_s, 3 * 3600 + 12 * 60);
    assert.equal(j.next_run_local, '2026-12-05 21:12:00');
    assert.equal(j.runs, 'cannot run');
    assert.equal(j.runs_reason, 'unknown');
    assert.equal(j.last_duration_s, null);
  });
});

describe('health', () => {
  const started = NOW.getTime() - 600_000;
  test('ok after a recent poll; 503 reasons otherwise', () => {
    const now = NOW.getTime();
    assert.deepEqual(health({ lastSweepEndedAt: now - 5000 }, now, started), { ok: true });
    assert.match((health({ lastSweepEndedAt: now - HEALTH_STALE_MS - 1000 }, now, started) as { reason: string }).reason, /^scheduler loop stuck: last poll finished 91 s ago$/);
    assert.match((health({ lastSweepEndedAt: now - 1000, authOutage: { since: now - 60_000, error: 'connection refused' } }, now, started) as { reason: string }).reason, /^auth database unreachable since .*: connection refused$/);
    assert.match((health({}, now, now - 1000) as { reason: string }).reason, /first poll not finished/);
    assert.match((health({}, now, started) as { reason: string }).reason, /no poll has finished in the 600 s since start-up/);
  });
});

describe('status', () => {
  test('running jobs, outages, Perl parent, memory', () => {
    const now = NOW.getTime();
    const s: DaemonState = {
      format: 1, pid: 42, version: '0.1.0', nodeId: 'web1', startedAt: now - 3 * 3600_000, writtenAt: now - 2000,
      rssBytes: 60 * 1048576, heapUsedBytes: 12 * 1048576, metricsListen: '127.0.0.1:9464',
      perlParents: [{ pid: 77, rssBytes: 183 * 1048576, runs: 0, idleSinceMs: now - 120_000 }],
      sweeps: 10, jobsRun: 3, lastSweepEndedAt: now - 4000, lastSweepMs: 30, lastSweepPolled: 2, clients: 3,
      outages: [{ clientId: 3, client: 'Gamma', since: now - 600_000, error: 'connection refused' }],
      running: [
        { clientId: 1, client: 'Alpha', jobId: 7, package: 'CreatePeriodicInvoices', startedAt: now - 125_000, how: 'native' },
        { clientId: 2, client: 'Beta', jobId: 9, package: 'CsvImport', startedAt: now - 12_000, how: 'perl', perlPid: 4567 },
      ],
      lastRuns: {},
    };
    const out = formatDaemonState(s, now);
    assert.match(out[0], /^  Up 3 h \(since .*\), version 0\.1\.0, node web1$/);
    assert.equal(out[1], '  Last poll finished 4 s ago (2 of 3 clients polled, 0.03 s); 3 job runs since start');
    assert.ok(out.includes('  Running now: client 1 (Alpha) job 7 CreatePeriodicInvoices for 2 min 5 s (native)'));
    assert.ok(out.includes('  Running now: client 2 (Beta) job 9 CsvImport for 12 s (Perl pid 4567)'));
    assert.ok(out.some((l) => /^  Outage: client 3 \(Gamma\) unreachable since .*: connection refused$/.test(l)));
    assert.ok(out.includes('  Preloaded Perl parent: pid 77, RSS 183.0 MiB, idle for 2 min'));
    assert.ok(out.includes('  Memory: RSS 60.0 MiB, JS heap 12.0 MiB (as of 2 s ago)'));
    assert.ok(!out.some((l) => l.includes('Problem')));
    const stuck = formatDaemonState({ ...s, lastSweepEndedAt: now - 200_000, writtenAt: now - 100_000 }, now);
    assert.ok(stuck.some((l) => /^  Problem: scheduler loop stuck/.test(l)));
    assert.ok(stuck.some((l) => /^  Problem: this state is 1 min 40 s old/.test(l)));
  });
});

describe('[task_server] metrics_listen', () => {
  test('off by default; a port alone is loopback', () => {
    assert.equal(parseMetricsListen(undefined), undefined);
    assert.equal(parseMetricsListen(''), undefined);
    assert.equal(parseMetricsListen('0'), undefined);
    assert.deepEqual(parseMetricsListen('9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseMetricsListen('localhost:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseMetricsListen('[::1]:9464'), { host: '::1', port: 9464 });
    assert.deepEqual(parseMetricsListen('127.0.0.2:80'), { host: '127.0.0.2', port: 80 });
  });
  test('every-address wildcards and host names are refused with one line naming the key; an explicit address is taken', () => {
    for (const v of ['0.0.0.0:9464', ':9464', '*:9464', '[::]:9464']) {
      assert.throws(() => parseMetricsListen(v), (e: Error) => e instanceof ConfigError && /^\[task_server\] metrics_listen = .*: refusing .* on every address/.test(e.message) && !e.message.includes('\n'));
    }
    assert.throws(() => parseMetricsListen('monitor.example.com:9464'), /metrics_listen = monitor\.example\.com:9464: 'monitor\.example\.com' is not an IP address/);
    assert.throws(() => parseMetricsListen('127.0.0.1:99999'), /port 99999 is out of range/);
    assert.throws(() => parseMetricsListen('127.0.0.1'), /expected PORT, ADDRESS:PORT/);
    assert.deepEqual(parseMetricsListen('192.168.1.5:9464'), { host: '192.168.1.5', port: 9464 });
  });
});
