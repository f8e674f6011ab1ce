// The sendmail transport: kivitendo's command line (with its `<%if x%>…<%end%>` placeholders, as
// SL::Template::ShellCommand expands them) run through the shell, the message on stdin.
import { spawn } from 'node:child_process';

/**
 * Expands `<%if name%>…<%else%>…<%end%>` (also `<%if not name%>`, `<%end if%>`) and `<%name%>`.
 * Values must already be safe for a shell command line; unknown names expand to ''.
 */
export function expandShellCommand(command: string, vars: Record<string, string>): string {
  const value = (name: string) => vars[name] ?? '';
  const conditional = /<%if\s+(not\s+)?(\w+)\s*%>([\s\S]*?)(?:<%else%>([\s\S]*?))?<%end(?:if|\s+if)?%>/g;
  return command
    .replace(conditional, (_m, not: string | undefined, name: string, then: string, otherwise = '') =>
      (value(name) !== '' && value(name) !== '0') !== Boolean(not) ? then : otherwise,
    )
    .replace(/<%(\w+)%>/g, (_m, name: string) => value(name));
}

/** Pipes `message` into `sh -c command`; rejects with a one-line reason on failure or timeout. */
export function runSendmail(command: string, message: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`sendmail (${command}) did not finish within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString('utf8');
    });
    child.on('error', (e) => finish(new Error(`sendmail (${command}): ${e.message}`)));
    // A command that exits without reading stdin gives EPIPE; its exit status tells the real story.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      if (code === 0) return finish();
      const detail = stderr.trim().split('\n')[0] ?? '';
      const status = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      finish(new Error(`sendmail (${command}) ${status}${detail ? `: ${detail}` : ''}`));
    });
    child.stdin.end(message);
  });
}
