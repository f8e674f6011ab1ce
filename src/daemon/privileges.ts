// [task_server] run_as (spec task-server.md §3.2): switch to that user before anything runs a job or
// creates the pid file. Differences from task_server.pl (§14.16): the user's supplementary groups are
// set too (Perl keeps root's), and a run_as naming root is not "user does not exist" — it is simply a
// no-op for a process that already runs as root.
import { execFileSync } from 'node:child_process';
import { Fatal } from './errors';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  groups: number[];
}

/** The passwd entry of `name` (getent, so NSS/LDAP users work) plus its groups (id -G). */
export function lookupUser(name: string): PasswdEntry | undefined {
  if (!/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(name)) return undefined;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    return undefined; // exit 2: no such user
  }
  const f = line.split(':');
  if (f.length < 7 || f[0] !== name) return undefined;
  const entry: PasswdEntry = { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5], groups: [Number(f[3])] };
  try {
    const ids = execFileSync('id', ['-G', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter(Number.isInteger);
    if (ids.length) entry.groups = ids;
  } catch {
    /* primary group only */
  }
  return entry;
}

const reason = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EPERM' ? 'Operation not permitted' : (e as Error).message;
};

/** Switches gid, supplementary groups and uid to run_as. Throws Fatal (exit 1) with kivitendo's texts. */
export function dropPrivileges(runAs: string): PasswdEntry | undefined {
  if (!runAs) return undefined;
  const user = lookupUser(runAs);
  if (!user) throw new Fatal(`Error: Cannot drop privileges to ${runAs}: user does not exist`, 1);
  const uid = process.getuid!();
  if (uid === user.uid && process.getgid!() === user.gid) return user; // already that user
  try {
    process.setgid!(user.gid);
    if (uid === 0) process.setgroups!(user.groups);
  } catch (e) {
    throw new Fatal(`Error: Cannot drop group privileges to ${runAs} (group ID ${user.gid}): ${reason(e)}`, 1);
  }
  try {
    process.setuid!(user.uid);
  } catch (e) {
    throw new Fatal(`Error: Cannot drop user privileges to ${runAs} (user ID ${user.uid}): ${reason(e)}`, 1);
  }
  // Programs the jobs start (mail, converters) expect these to match the user.
  process.env.USER = process.env.LOGNAME = user.name;
  if (user.home) process.env.HOME = user.home;
  return user;
}

/**
 * The one-line warning for a daemon (or check) running as root with run_as empty: jobs then run as
 * root, and the pid file and debug log are root's, so the web server's user can neither send the
 * wake-up (SIGALRM) nor append to the debug log. The SysV and upstart templates start as root.
 */
export const RUN_AS_ROOT_WARNING =
  "Warning: [task_server] run_as is empty and the task server runs as root: jobs run as root, and the pid file and debug log belong to root, so the web server can neither wake the task server nor write its debug log; set run_as to the web server's user (e.g. www-data)";

/** run_as empty and this process (or the given uid) is root. */
export function runsAsRootWithoutRunAs(runAs: string, uid = process.getuid?.()): boolean {
  return runAs === '' && uid === 0;
}
