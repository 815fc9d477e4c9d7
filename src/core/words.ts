/** "1 file", "2 files": a count with its noun, for messages people read (never "file(s)"). */
export function counted(count: number, noun: string, plural = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : plural}`;
}
