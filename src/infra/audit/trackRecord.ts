import { stat } from 'node:fs/promises';
import { parseAuditLine } from '../../core/audit/audit';
import { TrackRecordReducer, type ChangeOutcome } from '../../core/metrics/trackRecord';
import { forEachLine, isMissing } from './lines';

/**
 * Each task class's record from one repository's audit log, for autonomy rules. Reads only what was appended
 * since the last call (a gate asks often; the log only grows), and never a line that is not whole yet.
 */
export class TrackRecordReader {
  private readonly reducer = new TrackRecordReducer();
  private offset = 0;
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly auditFile: string) {}

  async read(limit: number): Promise<Record<string, ChangeOutcome[]>> {
    this.reading = this.reading.then(() => this.catchUp());
    await this.reading;
    return this.reducer.byClass(limit);
  }

  private async catchUp(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.auditFile)).size;
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    if (size < this.offset) this.offset = 0; // a repaired or replaced log: read it again
    if (size === this.offset) return;
    let next = this.offset;
    await forEachLine(
      this.auditFile,
      (bytes, _lineNumber, offset) => {
        // A line is whole when a newline follows it (before the size read above).
        if (offset + bytes.length >= size) return;
        const event = parseAuditLine(bytes.toString('utf8'));
        if (event) this.reducer.add(event);
        next = offset + bytes.length + 1;
      },
      this.offset,
      size,
    );
    this.offset = next;
  }
}
