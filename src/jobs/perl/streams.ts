// The streams of a Perl run: what a package prints on stdout/stderr goes to the server's log line by
// line, the result comes back on its own channel. A package may print anything — 600 MB without a
// newline — so what is kept is bounded per line and per run, the rest is read and dropped (the pipe
// must be drained, or the child blocks), and the log says what was cut: the daemon's memory stays
// flat whatever a package prints.
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';

/** Longest line kept of a package's output; the rest of the line is dropped. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Output kept per run (stdout and stderr together); beyond it lines are dropped. */
export const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;
/** Longest result line (the job's data travels in it); a longer one fails the run. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(n < 1024 * 1024 ? 2 : 0)} MiB`;

/** One run's output budget, shared by its stdout and stderr. */
export class OutputBudget {
  kept = 0;
  dropped = 0;
  constructor(
    private onLine: (stream: string, line: string) => void,
    readonly maxLineBytes = MAX_LINE_BYTES,
    readonly maxOutputBytes = MAX_OUTPUT_BYTES,
  ) {}

  /** Reads stream to its end, passing each line (bounded) to onLine. */
  follow(stream: Readable | null | undefined, name: string): void {
    if (!stream) return;
    let parts: Buffer[] = [];
    let partsLen = 0;
    let cut = 0; // bytes of the current line beyond maxLineBytes
    const emit = () => {
      const text = new StringDecoder('utf8').write(Buffer.concat(parts, partsLen)).replace(/\r$/, '');
      const note = cut ? ` [line cut: ${cut} more bytes dropped]` : '';
      const bytes = partsLen;
      parts = [];
      partsLen = 0;
      cut = 0;
      this.line(name, text + note, bytes);
    };
    stream.on('data', (chunk: Buffer | string) => {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      while (buf.length) {
        const nl = buf.indexOf(10);
        const piece = nl < 0 ? buf : buf.subarray(0, nl);
        const room = this.maxLineBytes - partsLen;
        if (piece.length <= room) {
          parts.push(Buffer.from(piece)); // a copy: a subarray would keep the whole chunk alive
          partsLen += piece.length;
        } else {
          if (room > 0) parts.push(Buffer.from(piece.subarray(0, room)));
          partsLen += Math.max(room, 0);
          cut += piece.length - Math.max(room, 0);
        }
        if (nl < 0) break;
        emit();
        buf = buf.subarray(nl + 1);
      }
    });
    stream.on('end', () => {
      if (partsLen || cut) emit();
    });
    stream.on('error', () => undefined);
  }

  private line(name: string, text: string, bytes: number) {
    if (this.kept >= this.maxOutputBytes) {
      this.dropped += bytes;
      return;
    }
    this.kept += bytes;
    this.onLine(name, text);
    if (this.kept >= this.maxOutputBytes) {
      this.onLine(name, `[output cut: this run printed more than ${mib(this.maxOutputBytes)}; further lines are dropped]`);
    }
  }

  /** One line on what was dropped, or undefined. */
  summary(): string | undefined {
    return this.dropped ? `[output cut: ${this.dropped} bytes of further lines were dropped]` : undefined;
  }
}

/**
 * Collects the result line of the control channel, at most MAX_ANSWER_BYTES. `complete` is set
 * the moment the whole line is in: the report that arrives first wins over a time limit that
 * fires in the milliseconds after.
 */
export class AnswerChannel {
  private parts: Buffer[] = [];
  private len = 0;
  complete = false;
  tooLong = false;

  constructor(stream: Readable, readonly maxBytes = MAX_ANSWER_BYTES) {
    stream.on('data', (chunk: Buffer | string) => {
      if (this.complete || this.tooLong) return;
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const nl = buf.indexOf(10);
      const piece = nl < 0 ? buf : buf.subarray(0, nl);
      if (this.len + piece.length > this.maxBytes) {
        this.tooLong = true;
        this.parts = [];
        return;
      }
      this.parts.push(Buffer.from(piece));
      this.len += piece.length;
      if (nl >= 0) this.complete = true;
    });
    stream.on('error', () => undefined);
  }

  /** The parsed result line; undefined when none (or no valid JSON) arrived. */
  answer<T>(): T | undefined {
    const text = Buffer.concat(this.parts, this.len).toString('utf8').trim();
    if (!text) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined;
    }
  }
}
