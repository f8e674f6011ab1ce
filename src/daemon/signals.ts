// Signals of the running daemon (spec task-server.md §2.7), with deliberate changes:
//  * SIGALRM: wake-up (installed at load time by ./alarm, routed here to the scheduler); never kills.
//  * SIGTERM and SIGINT: graceful stop — the scheduler stops taking jobs, running jobs get a grace
//    period, then the pid file is removed and the process exits 0. A second TERM/INT exits at once
//    (pid file removed too). Perl exits on INT immediately and dies on TERM, leaving the pid file.
//  * SIGHUP: re-read the configuration; an error is logged and the old configuration stays in use
//    (Perl re-runs the whole pre-flight and may exit 2 in the middle of a job).
import { setAlarmTarget } from './alarm';

export interface SignalHandlers {
  wake(): void;
  stop(signal: 'SIGTERM' | 'SIGINT', repeated: boolean): void;
  reload(): void;
}

export function installDaemonSignals(h: SignalHandlers): () => void {
  let stopping = false;
  const onStop = (signal: 'SIGTERM' | 'SIGINT') => {
    const repeated = stopping;
    stopping = true;
    h.stop(signal, repeated);
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onHup = () => h.reload();
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  setAlarmTarget(() => h.wake());
  return () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    setAlarmTarget(undefined);
  };
}
