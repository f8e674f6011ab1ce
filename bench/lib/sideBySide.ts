// Our daemon and kivitendo's scripts/task_server.pl running at the same time on one installation,
// for benchmarks whose samples alternate between them (ours, kivitendo's, ours, …) so that the load
// of a shared machine hits both alike. Each server gets a config file of its own with a node id of
// its own and only_run_tasks_for_this_node, so each runs only the jobs given its node id.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DAEMON_V8_FLAGS } from '../../src/daemon/detach';
import { readIfExists, spawnCli } from '../../test/harness/cli';
import type { KivitendoInstallation } from '../../test/harness/kivitendo';

export const OUR_NODE = 'kts-bench-ours';
export const THEIR_NODE = 'kts-bench-kivitendo';

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export interface BenchServer {
  name: string;
  node: string;
  pid: number;
  /** Resolves once the server sleeps, where a SIGALRM wakes it (task_server.pl ignores it while it works). */
  untilAsleep(): Promise<void>;
  /** SIGALRM, as the web UI sends it. */
  wake(): void;
  stop(): Promise<void>;
}

/** The installation's config with this node's settings appended, as config/<name>.conf. */
function nodeConfig(inst: KivitendoInstallation, name: string, node: string, extra: string): string {
  const file = path.join('config', `${name}.conf`);
  const text = fs.readFileSync(inst.configFile, 'utf8') + `\n[task_server]\nnode_id = ${node}\nonly_run_tasks_for_this_node = 1\ndebug = 1\n${extra}`;
  fs.writeFileSync(path.join(inst.root, file), text);
  return file;
}

/** task_server.pl's "Sleeping" debug lines of one pid (the installation's debug log, global_level DEBUG1 or more). */
function sleepingLines(inst: KivitendoInstallation, pid: number): number {
  const log = readIfExists(path.join(inst.root, 'users', 'kivitendo-debug.log')) ?? '';
  return log.split(`[${pid}] debug1: task server: Sleeping`).length - 1;
}

/** kivitendo's task_server.pl in the foreground; its modules are loaded by a first job run (a Test job). */
export async function startKivitendoServer(inst: KivitendoInstallation, client: string, extraConfig = ''): Promise<BenchServer> {
  const config = nodeConfig(inst, 'kivitendo-bench', THEIR_NODE, extraConfig);
  const [{ id: warm }] = await inst.query<{ id: number }>(client, `INSERT INTO background_jobs (type, package_name, active, data, node_id) VALUES ('once', 'Test', true, '', $1) RETURNING id`, [THEIR_NODE]);
  const pl: ChildProcess = spawn(inst.perl, ['scripts/task_server.pl', '-c', config, 'debug'], { cwd: inst.root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  pl.stdout!.on('data', (d) => (out = (out + d).slice(-4000)));
  pl.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  const check = () => {
    if (pl.exitCode !== null) throw new Error(`task_server.pl exited: ${out}`);
  };
  for (;;) {
    const [job] = await inst.query(client, 'SELECT last_run_at FROM background_jobs WHERE id = $1', [warm]);
    if (job.last_run_at) break;
    check();
    await sleep(50);
  }
  // The "Sleeping" lines seen; after a wake-up the next one says it sleeps again.
  let seen = 0;
  let awake = true;
  const server: BenchServer = {
    name: 'task_server.pl',
    node: THEIR_NODE,
    pid: pl.pid!,
    async untilAsleep() {
      if (!awake) return;
      while (sleepingLines(inst, pl.pid!) <= seen) {
        check();
        await sleep(20);
      }
      seen = sleepingLines(inst, pl.pid!);
      awake = false;
      await sleep(300); // from the debug line to sleep(), where SIGALRM wakes it
    },
    wake() {
      awake = true;
      process.kill(pl.pid!, 'SIGALRM');
    },
    async stop() {
      pl.kill('SIGTERM');
      await sleep(500);
      if (pl.exitCode === null) pl.kill('SIGKILL');
    },
  };
  await server.untilAsleep();
  return server;
}

/** Our daemon in the foreground (binary, or the sources when binary is undefined). */
export async function startOurServer(inst: KivitendoInstallation, binary: string | undefined, extraConfig = ''): Promise<BenchServer> {
  const config = nodeConfig(inst, 'ours-bench', OUR_NODE, extraConfig);
  const s = spawnCli(['-f', '-c', config, 'start', '--kivitendo-dir', inst.root], { binary, cwd: inst.root, env: { NODE_OPTIONS: DAEMON_V8_FLAGS || undefined } });
  s.child.stderr!.on('data', () => (s.out.stderr = s.out.stderr.slice(-4000)));
  const pidFile = path.join(inst.root, 'users', 'pid', `${config.replace(/\//g, '.')}.pid`);
  for (let i = 0; i < 600 && !fs.existsSync(pidFile); i++) {
    if (s.child.exitCode !== null) throw new Error(`our daemon exited: ${s.out.stderr}`);
    await sleep(50);
  }
  await sleep(1000);
  return {
    name: 'kivitendo-task-server',
    node: OUR_NODE,
    pid: s.child.pid!,
    async untilAsleep() {
      // SIGALRM is never ignored here
    },
    wake() {
      process.kill(s.child.pid!, 'SIGALRM');
    },
    async stop() {
      s.child.kill('SIGTERM');
      await s.exited;
    },
  };
}

/** One line about the machine: CPUs and load average, for figures taken on a shared machine. */
export function machineLine(): string {
  return `${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}
