/** Text safe for a terminal: control characters (escape sequences from artifacts, logs, tags) shown escaped; newline and tab kept. */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
