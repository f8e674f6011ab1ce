// Opt-in HTTP endpoints of the running daemon ([task_server] metrics_listen): GET /metrics in the
// Prometheus text format (prom-client) and GET /healthz (200 / 503 with one line). Both are fed by
// the scheduler's events and its snapshot; nothing here queries a database.
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { perlParentStartCount, perlParentStates } from '../jobs/perl/preload';
import type { JobFinished, Scheduler, SweepFinished } from '../scheduler/scheduler';
import { formatListen } from '../config/config';
import { health } from './health';

const P = 'kivitendo_task_server_';

/** The registry with every metric of the daemon, wired to the scheduler's events. */
export function createMetrics(scheduler: Scheduler, startedAt: number): Registry {
  const registry = new Registry();
  // Not prom-client's collectDefaultMetrics: its GC observer and event-loop histogram cost the
  // daemon several MiB over 10,000 runs (bench/memory.ts --metrics); the memory is what admins watch.
  const memory = (name: string, help: string, read: (m: NodeJS.MemoryUsage) => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read(process.memoryUsage())); } });
  memory('process_resident_memory_bytes', 'Resident memory size in bytes', (m) => m.rss);
  memory('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes', (m) => m.heapUsed);
  memory('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes', (m) => m.heapTotal);
  new Gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds', registers: [registry] }).set(Math.round(startedAt / 1000));
  const runs = new Counter({ name: `${P}job_runs_total`, help: 'Job runs by client, package, how they ran and outcome', labelNames: ['client_id', 'client', 'package', 'how', 'status'], registers: [registry] });
  const failures = new Counter({ name: `${P}job_failures_total`, help: 'Failed job runs by client and package', labelNames: ['client_id', 'client', 'package'], registers: [registry] });
  const duration = new Histogram({
    name: `${P}job_duration_seconds`, help: 'Wall time of job runs', labelNames: ['package', 'how'], registers: [registry],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
  });
  const latency = new Histogram({
    name: `${P}job_start_latency_seconds`, help: 'From next_run_at (due) to the start of the run', registers: [registry],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300],
  });
  const poll = new Histogram({ name: `${P}poll_duration_seconds`, help: 'Wall time of one pass over the clients (polls only)', registers: [registry], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60] });
  const perlRuns = new Counter({ name: `${P}perl_runs_total`, help: "Runs of kivitendo's own Perl packages", labelNames: ['package', 'status'], registers: [registry] });
  scheduler.events.on('job-finished', (f: JobFinished) => {
    const pkg = f.run.package ?? '';
    runs.inc({ client_id: String(f.run.clientId), client: f.run.client, package: pkg, how: f.run.how, status: f.status });
    if (f.status === 'failure') failures.inc({ client_id: String(f.run.clientId), client: f.run.client, package: pkg });
    duration.observe({ package: pkg, how: f.run.how }, f.durationMs / 1000);
    if (f.startLatencyMs !== undefined) latency.observe(f.startLatencyMs / 1000);
    if (f.run.how === 'perl') perlRuns.inc({ package: pkg, status: f.status });
  });
  scheduler.events.on('sweep', (s: SweepFinished) => poll.observe(s.durationMs / 1000));

  const gauge = (name: string, help: string, value: () => number | undefined) =>
    new Gauge({
      name: P + name, help, registers: [registry],
      collect() {
        const v = value();
        if (v === undefined) this.reset();
        else this.set(v);
      },
    });
  gauge('last_poll_timestamp_seconds', 'When the last pass over the clients finished (Unix time)', () => {
    const t = scheduler.snapshot().lastSweepEndedAt;
    return t === undefined ? undefined : t / 1000;
  });
  gauge('clients', 'Enabled clients (with a task server user)', () => scheduler.snapshot().clients);
  gauge('clients_in_outage', 'Clients whose database is unreachable now', () => scheduler.snapshot().outages.length);
  gauge('auth_db_up', '1 while the auth database answers, 0 in an outage', () => (scheduler.snapshot().authOutage ? 0 : 1));
  gauge('jobs_running', 'Jobs running now', () => scheduler.snapshot().running.length);
  gauge('healthy', '1 when /healthz answers 200', () => (health(scheduler.snapshot(), Date.now(), startedAt).ok ? 1 : 0));
  gauge('perl_parents', 'Preloaded Perl parents running now', () => perlParentStates().length);
  new Counter({
    name: `${P}perl_parent_starts_total`, help: 'Preloaded Perl parents started (after the first: restarts after idle, SIGHUP or a crash)', registers: [registry],
    collect() {
      this.reset();
      this.inc(perlParentStartCount());
    },
  });
  return registry;
}

/** Serves /metrics and /healthz; resolves once listening, rejects with a one-line reason. */
export function serveMetrics(listen: { host: string; port: number }, registry: Registry, healthNow: () => ReturnType<typeof health>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/healthz') {
      const h = healthNow();
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' }).end(h.ok ? 'ok\n' : `${h.reason}\n`);
      return;
    }
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found: try /metrics or /healthz\n');
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`[task_server] metrics_listen = ${formatListen(listen)}: cannot listen: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EADDRNOTAVAIL' ? 'no such address on this host' : e.message}`)),
    );
    server.listen(listen.port, listen.host, () => {
      server.unref();
      resolve(server);
    });
  });
}
