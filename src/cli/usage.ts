// The usage text. Program name and command set as task_server.pl (Daemon::Generic); `install` is
// gone (boot/ has the templates), `status` is listed, new options are documented.
import { VERSION } from '../version';

export const PROGRAM = 'kivitendo-background-jobs';

export function usage(defaultConfig = 'config/kivitendo.conf'): string {
  return `Usage: ${PROGRAM} [ -c file ] [ -f ] [ --run-job=<id> [ --client=<id|name> ] ] [ --kivitendo-dir=<dir> ] { start | stop | reload | restart | status | check | list | help | version | debug } 
 -c file               Use this configuration file (instead of ${defaultConfig})
 -f                    Stay in the foreground (do not detach)
 --run-job=<id>        Run the job with the database ID <id> once, whether it is
                       active or due or not, then exit (always in the foreground;
                       works while the daemon is running)
 --client=<id|name>    With --run-job or list: only in this client (default: every
                       client with a task server user)
 --all, --failed       With list: inactive jobs too; only jobs whose last run failed
 --json                With list: JSON for scripts
 --kivitendo-dir=<dir> The kivitendo installation (default: $KIVITENDO_DIR, else
                       the parent of the directory holding this program when that
                       is called scripts/, else /var/www/kivitendo-erp)
 start                 Start the daemon unless it is running already; the exit
                       code says whether it came up
 stop                  Stop the running daemon
 reload                Make the running daemon re-read its configuration file;
                       start one if none is running
 restart               Stop the daemon if it is running, then start it
 status                Report whether the daemon is running (exit code 0 running,
                       1 dead but pid file left, 3 not running) and what it does:
                       uptime, last poll, running jobs, outages, memory
 check                 Check the configuration, the databases and the due jobs,
                       and report the daemon state
 list                  Every job of every client, sorted by next run: how it runs
                       here, schedule, last run and its status, failures in 24 h
 help                  Display this usage info
 version               Display the version of ${PROGRAM}
 debug                 Start the daemon in the foreground (same as -f start)
`;
}

export function versionLine(): string {
  return `${PROGRAM} - version ${VERSION}`;
}
