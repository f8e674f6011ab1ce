// What the running daemon publishes about itself: the state file for `status` (always) and, when
// [task_server] metrics_listen is set, /metrics and /healthz. Both read the scheduler's own state.
import type http from 'node:http';
import { formatListen, type Config } from '../config/config';
import { perlParentStates } from '../jobs/perl/preload';
import type { Logger } from '../log/logger';
import type { Scheduler } from '../scheduler/scheduler';
import { VERSION } from '../version';
import { health, loopStuck } from './health';
import { systemdNotifier } from './sdNotify';
import { processRss, startStateFile, stateFilePath, type DaemonState } from './stateFile';

export interface Watching {
  /** Pre-flight passed and the pid file is written: systemd's READY=1 (Type=notify). */
  ready(): void;
  /** A stop was requested: systemd's STOPPING=1. */
  stopping(): void;
  close(): void;
}

export async function startWatching(p: { config: Config; scheduler: Scheduler; pidFile: string; nodeId: string; log: Logger }): Promise<Watching> {
  const startedAt = Date.now();
  const listen = p.config.taskServer.metricsListen;
  let server: http.Server | undefined;
  if (listen) {
    // Loaded only when asked for: prom-client is not evaluated by a daemon that does not serve metrics.
    const { createMetrics, serveMetrics } = await import('./metrics');
    const registry = createMetrics(p.scheduler, startedAt);
    server = await serveMetrics(listen, registry, () => health(p.scheduler.snapshot(), Date.now(), startedAt));
    p.log.info(`Serving /metrics and /healthz on http://${formatListen(listen)}/`);
  }
  const collect = (): DaemonState => {
    const mem = process.memoryUsage();
    return {
      format: 1,
      pid: process.pid,
      version: VERSION,
      nodeId: p.nodeId,
      startedAt,
      writtenAt: Date.now(),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      perlParents: perlParentStates().map((pp) => ({ ...pp, rssBytes: processRss(pp.pid) })),
      metricsListen: listen ? formatListen(listen) : undefined,
      ...p.scheduler.snapshot(),
    };
  };
  const state = startStateFile(stateFilePath(p.pidFile), collect, (m) => p.log.warn(m));
  const touch = () => state.touch();
  for (const e of ['sweep', 'job-started', 'job-finished']) p.scheduler.events.on(e, touch);
  const systemd = systemdNotifier(process.env, p.config.taskServer.perl, (m) => p.log.warn(m));
  const sdStatus = () => {
    const s = p.scheduler.snapshot();
    systemd?.send({ STATUS: `${s.clients} clients, ${s.running.length} jobs running, ${s.outages.length} in outage${s.authOutage ? ', auth database unreachable' : ''}` });
  };
  if (systemd) p.scheduler.events.on('sweep', sdStatus);
  // The watchdog is fed only while the loop sweeps: a hung loop is restarted by systemd.
  const watchdog = systemd?.watchdogMs
    ? setInterval(() => {
        if (!loopStuck(p.scheduler.snapshot(), Date.now(), startedAt)) systemd.send({ WATCHDOG: 1 });
      }, systemd.watchdogMs / 2).unref()
    : undefined;
  return {
    ready() {
      systemd?.send({ READY: 1, MAINPID: process.pid, STATUS: 'running' });
    },
    stopping() {
      systemd?.send({ STOPPING: 1, STATUS: 'stopping' });
    },
    close() {
      for (const e of ['sweep', 'job-started', 'job-finished']) p.scheduler.events.off(e, touch);
      p.scheduler.events.off('sweep', sdStatus);
      if (watchdog) clearInterval(watchdog);
      systemd?.close();
      state.close();
      server?.close();
    },
  };
}
