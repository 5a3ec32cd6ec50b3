/** One line of a deployment log, with its sequence number (the SSE event id). */
export interface LogLine {
  seq: number;
  text: string;
}

/** The lines under one `===== title =====` heading; the lines before the first heading have none. */
export interface LogSection {
  /** Position in the log, stable while lines are added (a key for rendering). */
  index: number;
  title: string | null;
  lines: string[];
}

const HEADING = /^===== (.+?) =====\s*$/;

/** The title of a heading line (`===== docker build =====` → `docker build`), else undefined. */
export function headingOf(text: string): string | undefined {
  return HEADING.exec(text)?.[1];
}

/**
 * A deployment log split into its sections, fed in order. Lines at or below the last sequence
 * number taken are dropped, so a stream that resumes (Last-Event-ID) or repeats itself after a
 * reconnect never shows a line twice.
 */
export class LogBook {
  readonly sections: LogSection[] = [];
  lastSeq = 0;

  /** Adds a line; answers whether it was new. */
  add(line: LogLine): boolean {
    if (line.seq <= this.lastSeq) return false;
    this.lastSeq = line.seq;
    const title = headingOf(line.text);
    if (title !== undefined) {
      this.sections.push({ index: this.sections.length, title, lines: [] });
      return true;
    }
    let last = this.sections[this.sections.length - 1];
    if (!last) {
      last = { index: 0, title: null, lines: [] };
      this.sections.push(last);
    }
    last.lines.push(line.text);
    return true;
  }

  get lineCount(): number {
    return this.sections.reduce((n, s) => n + s.lines.length + (s.title === null ? 0 : 1), 0);
  }
}

/** A `line` event: its data is the line's text, its id the line's sequence number. */
export function lineOfEvent(data: string, lastEventId: string): LogLine | undefined {
  const seq = Number(lastEventId);
  if (!Number.isInteger(seq) || seq <= 0) return undefined;
  return { seq, text: data };
}
