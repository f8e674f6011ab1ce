// Start-up figures of the single executable: size, `--help` wall time, `start` until the pid file is
// written (the CLI returns), until the first poll finished, idle RSS, `stop`; how long an idle daemon
// takes to go after SIGTERM; the SIGALRM window of Node's own bootstrap (exec until our first
// statement installs the handler), found by signalling `--help` processes after 0, 5, 10, ... ms.
// Usage: npx tsx bench/startup.ts   (builds dist/ if needed, starts a throwaway PostgreSQL)
//        KTS_BINARY=/path/to/other/kivitendo-task-server npx tsx bench/startup.ts   (compare a build)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, cliEnv, DEFAULT_PID_FILE, ensureBinary, readIfExists, waitFor } from '../test/harness/cli';
import { createInstallation } from '../test/harness/installation';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

function timed(file: string, args: string[], cwd = '/'): { ms: number; status: number | null; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, { cwd, env: cliEnv(), encoding: 'utf8' });
  return { ms: ms(t0), status: r.status, out: r.stdout + r.stderr };
}

async function main() {
  const binary = process.env.KTS_BINARY ?? ensureBinary();
  const bundle = path.join(path.dirname(binary), 'kivitendo-task-server.js');
  console.log(`binary size           ${mib(fs.statSync(binary).size)} (bundle ${(fs.statSync(bundle).size / 1024).toFixed(0)} KiB)`);

  for (const [name, file, args] of [
    ['--help (binary)', binary, ['--help']],
    ['--help (node bundle)', process.execPath, [bundle, '--help']],
  ] as const) {
    timed(file, [...args]); // warm the page cache
    const runs = Array.from({ length: 10 }, () => timed(file, [...args]).ms);
    console.log(`${name.padEnd(21)} median ${median(runs).toFixed(0)} ms, min ${Math.min(...runs).toFixed(0)} ms (10 runs)`);
  }

  const inst = await createInstallation({ clients: [{ name: 'A' }, { name: 'B' }] });
  try {
    fs.mkdirSync(path.join(inst.root, 'scripts'));
    const exe = path.join(inst.root, 'scripts', 'kivitendo-task-server');
    fs.copyFileSync(binary, exe);
    fs.chmodSync(exe, 0o755);
    const log = path.join(inst.root, 'users', 'kivitendo-debug.log');
    const t0 = process.hrtime.bigint();
    const start = timed(exe, ['start']);
    if (start.status !== 0) throw new Error(`start failed: ${start.out}`);
    const pid = Number(readIfExists(DEFAULT_PID_FILE(inst.root))!.trim());
    console.log(`start → pid file      ${start.ms.toFixed(0)} ms (CLI returned, pre-flight passed, pid ${pid})`);
    const line = await waitFor('first poll', () => /first poll finished in (\d+) ms/.exec(readIfExists(log) ?? '') ?? undefined, 30_000);
    console.log(`start → first poll    ${ms(t0).toFixed(0)} ms (daemon: sweep of 2 clients took ${line[1]} ms)`);
    await sleep(3000);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => /^\s*(.*)$/m.exec(status.split(`${name}:`)[1] ?? '')![1];
    // VmRSS counts the pages of the 96 MiB executable it touched (RssFile, shared with the page
    // cache); RssAnon is the daemon's own memory.
    console.log(`idle RSS after 3 s    ${field('VmRSS')} = RssAnon ${field('RssAnon')} + RssFile ${field('RssFile')} (VmSize ${field('VmSize')})`);
    const stop = timed(exe, ['stop']);
    console.log(`stop                  ${stop.ms.toFixed(0)} ms (exit ${stop.status})`);

    // Idle daemon: `stop` wall time (the CLI's own start-up included) and SIGTERM → process gone.
    const stops: number[] = [];
    const terms: number[] = [];
    for (let i = 0; i < 5; i++) {
      if (timed(exe, ['start']).status !== 0) throw new Error('start failed');
      await sleep(1500);
      stops.push(timed(exe, ['stop']).ms);
      if (timed(exe, ['start']).status !== 0) throw new Error('start failed');
      const p = Number(readIfExists(DEFAULT_PID_FILE(inst.root))!.trim());
      await sleep(1500);
      const t1 = process.hrtime.bigint();
      process.kill(p, 'SIGTERM');
      while (alive(p)) await sleep(5);
      terms.push(ms(t1));
    }
    console.log(`idle stop             median ${median(stops).toFixed(0)} ms, min ${Math.min(...stops).toFixed(0)} ms (5 runs; CLI start-up included)`);
    console.log(`idle SIGTERM → gone   median ${median(terms).toFixed(0)} ms, max ${Math.max(...terms).toFixed(0)} ms (5 runs, polled every 5 ms)`);

    // SIGALRM window: a process signalled before its first statement dies of it.
    const killedAfter = async (delayMs: number) =>
      new Promise<boolean>((resolve) => {
        const c = spawn(exe, ['--help'], { stdio: 'ignore', env: cliEnv() });
        const t = setTimeout(() => c.kill('SIGALRM'), delayMs);
        c.on('close', (_code, sig) => (clearTimeout(t), resolve(sig === 'SIGALRM')));
      });
    const rows: string[] = [];
    let lastKill = -1;
    // Until three delays in a row killed none (the window depends on the machine's load).
    for (let d = 0, quiet = 0; d <= 1000 && quiet < 3; d += 10) {
      let k = 0;
      for (let i = 0; i < 5; i++) if (await killedAfter(d)) k++;
      rows.push(`${d}:${k}`);
      if (k) lastKill = d;
      quiet = k ? 0 : quiet + 1;
    }
    console.log(`SIGALRM window        killed when sent ≤ ${lastKill} ms after spawn (delay ms:kills of 5: ${rows.join(' ')})`);
  } finally {
    inst.remove();
    inst.pg.stop();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
