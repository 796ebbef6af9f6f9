// The live line on stderr: rewritten in place on a terminal, printed as plain
// lines (every 5th update) when stderr is a file or pipe so logs stay readable.
import type { LiveStats } from './load.js';

export function progressLine(stepLabel: string, s: LiveStats): string {
  const rps = s.windowS > 0 ? s.ok / s.windowS : 0;
  const p50 = s.hist.count ? (s.hist.percentile(50) / 1000).toFixed(1) : '-';
  const p99 = s.hist.count ? (s.hist.percentile(99) / 1000).toFixed(1) : '-';
  return (
    `[${stepLabel}] ${s.phase.padEnd(7)} ${s.elapsedS.toFixed(1).padStart(6)}s  ` +
    `ok ${s.ok}  rps ${rps.toFixed(1)}  p50 ${p50} ms  p99 ${p99} ms  errors ${s.errors}  in-flight ${s.inFlight}`
  );
}

export class ProgressPrinter {
  private updates = 0;
  private readonly tty: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(stream.isTTY);
  }

  update(line: string): void {
    this.updates++;
    if (this.tty) this.stream.write(`\r\x1b[2K${line}`);
    else if (this.updates % 5 === 0) this.stream.write(`${line}\n`);
  }

  /** Ends the in-place line before ordinary output continues. */
  finish(): void {
    if (this.tty && this.updates > 0) this.stream.write('\r\x1b[2K');
    this.updates = 0;
  }
}
