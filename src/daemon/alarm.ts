// Imported first by main.ts: installs the SIGALRM handler before any other module is evaluated.
// Node's default action for SIGALRM is to terminate, and kivitendo's web UI sends SIGALRM to the
// daemon at arbitrary times (spec task-server.md §2.7, §11.2). Until the scheduler runs, a wake-up is
// remembered and delivered when a target is set.
let target: (() => void) | undefined;
let pending = false;

process.on('SIGALRM', () => {
  if (target) target();
  else pending = true;
});

/** Routes SIGALRM to fn (the scheduler's wake()); a wake-up that arrived earlier is delivered now. */
export function setAlarmTarget(fn: (() => void) | undefined): void {
  target = fn;
  if (fn && pending) {
    pending = false;
    fn();
  }
}
