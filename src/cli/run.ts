// One CLI call: parse, find ROOT, chdir, dispatch. Returns the exit code; Fatal and UsageError become
// one line (no stack trace).
import { ConfigError, pidFilePath, resolveConfigPath } from '../config/config';
import { childReporter, isSea } from '../daemon/detach';
import { Fatal, oneLine } from '../daemon/errors';
import { parseArgs, UsageError, type CliOptions } from './args';
import { reload, restart, start, status, stop, type Context } from './control';
import { kivitendoDir } from './root';
import { PROGRAM, usage, versionLine } from './usage';

function write(stream: 'stdout' | 'stderr', text: string) {
  process[stream].write(text.endsWith('\n') ? text : text + '\n');
}

function rootFor(opts: CliOptions): string {
  return kivitendoDir({
    flag: opts.kivitendoDir,
    env: process.env.KIVITENDO_DIR,
    invokedAs: isSea() ? process.argv0 : process.argv[1],
    realPath: isSea() ? process.execPath : process.argv[1],
    cwd: process.cwd(),
    pathEnv: process.env.PATH,
  });
}

function context(opts: CliOptions): Context {
  const root = rootFor(opts);
  try {
    process.chdir(root);
  } catch {
    throw new Fatal(`Cannot change directory to ${root}`);
  }
  let configPath: string;
  try {
    configPath = resolveConfigPath(root, opts.configFile);
  } catch (e) {
    // No config file at all: status/stop can still answer (the pid file would carry the default name).
    if (!(e instanceof ConfigError) || !['status', 'stop'].includes(opts.command)) throw new Fatal(`Error: ${e instanceof Error ? e.message : e}`);
    configPath = 'config/kivitendo.conf';
  }
  const pidFile = pidFilePath({ kivitendoDir: root, configPath });
  if (opts.printPidFile) write('stdout', `PIDFILE=${pidFile}`);
  return { opts, root, configPath, explicitConfig: Boolean(opts.configFile), pidFile };
}

export async function runCli(argv: string[]): Promise<number> {
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    write('stderr', `${PROGRAM}: ${e.message}`);
    write('stdout', usage());
    return 2;
  }
  try {
    switch (opts.command) {
      case 'help':
        write('stdout', usage());
        return 0;
      case 'version':
        write('stdout', versionLine());
        return 0;
    }
    const ctx = context(opts);
    switch (opts.command) {
      case 'status':
        return status(ctx);
      case 'stop':
        return await stop(ctx);
      case 'check':
        return await (await import('./check')).check(ctx);
      case 'list':
        return await (await import('./list')).list(ctx);
      case 'reload':
        return await reload(ctx);
      case 'restart':
        return await restart(ctx);
      case 'start':
      case 'debug':
        return await start(ctx);
    }
  } catch (e) {
    if (e instanceof Fatal) {
      if (opts.daemonChild) {
        const r = childReporter();
        for (const l of e.message.split('\n')) (e.stream === 'stdout' ? r.out : r.err)(l);
      } else {
        write(e.stream, e.message);
      }
      return e.exitCode;
    }
    const line = `Error: ${oneLine(e)}`;
    if (opts.daemonChild) childReporter().err(line);
    else write('stderr', line);
    return 1;
  }
}

/** Exits after stdout/stderr are flushed. */
export function exitWith(code: number): void {
  process.exitCode = code;
  const done = () => process.exit(code);
  if (process.stdout.writableLength || process.stderr.writableLength) setTimeout(done, 50);
  else done();
}
