// kivitendo-task-server: drop-in replacement of kivitendo's scripts/task_server.pl.
// The SIGALRM handler must exist before anything else runs (Node's default action terminates).
import './daemon/alarm';
import { exitWith, runCli } from './cli/run';
import { dropWebRequestEnvironment } from './daemon/environment';

// Started by kivitendo's web UI, the process carries the web request's CGI variables (the user's
// session cookie among them): none of it may reach the daemon or its jobs.
dropWebRequestEnvironment();

runCli(process.argv.slice(2)).then(exitWith, (e: unknown) => {
  process.stderr.write(`Error: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
  exitWith(1);
});
