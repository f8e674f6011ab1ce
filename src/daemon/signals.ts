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

export interface DaemonSignals {
  /** From now on the signals go to h; what arrived before is delivered now. */
  route(h: SignalHandlers): void;
  uninstall(): void;
}

/**
 * Installed just before the pid file is created: from then on TERM, INT and HUP must never take
 * Node's default action (killed by the signal, the pid file left behind), also not while the rest
 * of the start-up runs. Until route() a stop is remembered (a second one too) and a reload is
 * remembered unless a stop came, then both are delivered in route() — as SIGALRM is by ./alarm.
 * (Before that, during the pre-flight's wait for the database, a stop still ends the process at once.)
 */
export function installDaemonSignals(): DaemonSignals {
  let handlers: SignalHandlers | undefined;
  // The first two stops (a second one means "exit now"); later ones change nothing.
  const stops: ('SIGTERM' | 'SIGINT')[] = [];
  let reloadPending = false;
  const onStop = (signal: 'SIGTERM' | 'SIGINT') => {
    const repeated = stops.length > 0;
    if (stops.length < 2) stops.push(signal);
    handlers?.stop(signal, repeated);
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onHup = () => {
    if (handlers) handlers.reload();
    else reloadPending = true;
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  return {
    route(h) {
      handlers = h;
      setAlarmTarget(() => h.wake());
      if (stops.length) stops.forEach((signal, i) => h.stop(signal, i > 0));
      else if (reloadPending) h.reload();
      reloadPending = false;
    },
    uninstall() {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      setAlarmTarget(undefined);
    },
  };
}
