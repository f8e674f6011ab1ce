// systemd's notification protocol (Type=notify, WatchdogSec=) without a native add-on. The protocol
// is a datagram on the Unix socket $NOTIFY_SOCKET; Node's dgram speaks only UDP and net only
// streams, so a small Perl helper (Perl's core Socket module; Perl is on every kivitendo host) sends
// them: it lives as long as the daemon, reading one message per line on its stdin. A helper that
// lives on matters: systemd attributes a notification to the unit by the sender's cgroup, and
// `systemd-notify`, a process that exits at once, loses that race (systemd-notify(1)); the unit
// therefore says NotifyAccess=all. The helper exits when the daemon's end of the pipe closes.
import { spawn, type ChildProcess } from 'node:child_process';

const HELPER = String.raw`use strict; use Socket;
my $path = $ENV{NOTIFY_SOCKET}; $path =~ s/^\@/\0/;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
my $to = pack_sockaddr_un($path);
while (my $line = <STDIN>) {
  chomp $line; $line =~ s/\\n/\n/g;
  defined(send($s, $line, 0, $to)) or print STDERR "cannot send to $ENV{NOTIFY_SOCKET}: $!\n";
}`;

export interface SystemdNotifier {
  /** The watchdog interval systemd asked for (WATCHDOG_USEC), ms; undefined: no watchdog. */
  readonly watchdogMs?: number;
  send(fields: Record<string, string | number>): void;
  close(): void;
}

/** A notifier when started by systemd with Type=notify ($NOTIFY_SOCKET set), else undefined. */
export function systemdNotifier(env: NodeJS.ProcessEnv, perl: string | null, warn: (m: string) => void): SystemdNotifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return undefined;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogMs = forUs && usec > 0 ? usec / 1000 : undefined;
  let helper: ChildProcess | undefined = spawn(perl || 'perl', ['-e', HELPER], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env: { PATH: env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: socket },
  });
  const fail = (why: string) => {
    warn(`Cannot notify systemd ($NOTIFY_SOCKET is set, Type=notify): ${why}; systemd will take the service for failed`);
    helper = undefined;
  };
  helper.on('error', (e) => fail(`the helper '${perl || 'perl'}' cannot be started: ${e.message}`));
  helper.stdin!.on('error', () => undefined);
  helper.stderr!.setEncoding('utf8').on('data', (d: string) => warn(`systemd notification helper: ${d.trim()}`));
  helper.unref();
  for (const s of [helper.stdin, helper.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  return {
    watchdogMs,
    send(fields) {
      const text = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, ' ')}`).join('\\n');
      helper?.stdin!.write(text + '\n');
    },
    close() {
      helper?.stdin!.end();
      helper = undefined;
    },
  };
}
